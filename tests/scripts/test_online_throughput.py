"""benchmarks/online_throughput.py (online loop against the env alone) end to end, at the tests' NANO
fidelity (registered as "nano" by the nano_fidelity fixture: the script runs in this process)."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

from esper_agents.online.algorithms import ONLINE_ALGORITHMS, PPO_DEFAULTS

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "online_throughput.py"
#: The quickest algorithm (compact actions, no LSTM) in the default suite; all three, both action sets, slow.
QUICK = next(a.name for a in ONLINE_ALGORITHMS.values() if a.action_set == "compact" and not a.recurrent)


@pytest.mark.parametrize(
    "algos",
    [
        pytest.param([QUICK], id="quick"),
        pytest.param(list(ONLINE_ALGORITHMS), id="all", marks=pytest.mark.slow),
    ],
)
def test_online_throughput_runs_and_reports(
    algos: list[str], tmp_path: Path, monkeypatch, capsys, nano_fidelity: str
) -> None:
    argv = [str(SCRIPT), "--fidelity", nano_fidelity, "--steps", "1", "--n-envs", "1", "--device", "cpu",
            "--algos", *algos, "--out", str(tmp_path)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(SCRIPT), run_name="__main__")
    result = json.loads((tmp_path / f"online_throughput_{nano_fidelity}_impaired.json").read_text())
    assert result["env_kwargs"] == {"config": "impaired", "fidelity": nano_fidelity}
    assert result["steps"] == result["warmup_steps"] == PPO_DEFAULTS["n_steps"]  # rounded up to one rollout
    assert list(result["algorithms"]) == algos
    out = capsys.readouterr().out
    for algo, row in result["algorithms"].items():
        assert row["env_steps_per_s"] > 0 and row["online_steps_per_s"] > 0
        assert row["online_over_env"] == pytest.approx(row["online_steps_per_s"] / row["env_steps_per_s"])
        shares = [row["env_share"], row["inference_buffer_share"], row["update_share"]]
        assert all(0 < share < 1 for share in shares) and sum(shares) == pytest.approx(1)
        assert row["env_in_loop_steps_per_s"] == pytest.approx(row["online_steps_per_s"] / row["env_share"])
        assert f"| {algo} |" in out


def test_online_throughput_rejects_unknown_algorithms(tmp_path: Path, monkeypatch) -> None:
    argv = [str(SCRIPT), "--algos", "dqn", "--out", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as err:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    assert err.value.code == 2
