"""The README's main job: the smoke spec generates a pack that passes its own blocking health
checks and replays bit for bit (slow: about two minutes on two cores)."""

from __future__ import annotations

from pathlib import Path

import pytest

from esper_agents import cli

SMOKE = Path(__file__).resolve().parents[2] / "datasets" / "smoke.toml"


@pytest.mark.slow
def test_smoke_pack_is_healthy_and_replays(tmp_path: Path, capsys) -> None:
    out = tmp_path / "smoke"
    assert (
        cli.main(["generate", "--spec", str(SMOKE), "--out", str(out), "--workers", "2", "--no-progress"])
        == 0
    )
    assert cli.main(["health", "--pack", str(out)]) == 0, capsys.readouterr().out
    assert cli.main(["validate", "--pack", str(out), "--episodes", "3"]) == 0
    assert "3 of 3 replayed episodes identical" in capsys.readouterr().out
