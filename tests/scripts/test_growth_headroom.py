"""benchmarks/growth_headroom.py (the README's growth headroom table) end to end, at the "test" fidelity."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "growth_headroom.py"


def test_growth_headroom_runs_resumes_and_reports(tmp_path: Path, monkeypatch, capsys) -> None:
    schedules = ["now:widen_4x@0", "hold-then-prune:widen_4x", "heuristic:capacity", "static"]
    argv = [str(SCRIPT), "--config", "impaired", "--fidelity", "test", "--max-epochs", "3", "--seeds", "2",
            "--workers", "1", "--out", str(tmp_path), "--schedules", *schedules]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    assert done.value.code == 0
    result = json.loads((tmp_path / "growth_headroom.json").read_text())
    names = [r["schedule"] for r in result["summary"]]
    assert names[:4] == ["wait", "now:widen_4x@0", "hold-then-prune:widen_4x", "heuristic:capacity"]
    assert any(n.startswith("static-x") for n in names)  # the static reference of the best-score schedule
    for row in result["summary"]:
        assert len(row["seeds"]) == 2
        assert ("delta_vs_wait" in row) == (row["schedule"] != "wait")
    grown = next(r for r in result["summary"] if r["schedule"] == "now:widen_4x@0")
    assert grown["size_ratio"]["mean"] > 1.0 and grown["score"]["mean"] < grown["final_val_accuracy"]["mean"]
    static = next(r for r in result["summary"] if r["schedule"].startswith("static-x"))
    assert static["size_ratio"]["mean"] == pytest.approx(
        float(static["schedule"][len("static-x") :]), rel=0.05
    )
    assert (tmp_path / "growth_headroom.png").stat().st_size > 0
    assert result["table"] in (tmp_path / "growth_headroom.md").read_text()
    episodes = (tmp_path / "growth_headroom.episodes.jsonl").read_text().splitlines()
    assert len(episodes) == len(result["episodes"]) == 2 * len(names)
    # A second run finds every episode cached and runs none.
    capsys.readouterr()
    with pytest.raises(SystemExit):
        runpy.run_path(str(SCRIPT), run_name="__main__")
    assert "episodes to run" not in capsys.readouterr().out
    assert len((tmp_path / "growth_headroom.episodes.jsonl").read_text().splitlines()) == len(episodes)


def test_growth_headroom_rejects_unknown_schedules(tmp_path: Path, monkeypatch) -> None:
    argv = [str(SCRIPT), "--config", "impaired", "--schedules", "now:teleport", "--out", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as err:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    assert err.value.code == 2
