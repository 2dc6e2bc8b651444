"""The scripts in examples/ run end to end at the smallest settings and print a final accuracy in [0, 1].

The PPO scripts run in this process (runpy) at the tests' NANO fidelity (the CleanRL-style one on the
fast tier, a few hundred env steps); the CQL script, which imports d3rlpy and so the old ``gym``
package, runs in a fresh interpreter, where its import banner would show.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SMALL = ["--fidelity", "test", "--max-epochs", "3", "--config", "impaired"]
#: In this process only: "nano" is registered by the nano_fidelity fixture.
NANO_SMALL = ["--fidelity", "nano", "--max-epochs", "3", "--config", "impaired"]
#: The CleanRL-style example: two updates of 2 envs x 32 steps on the fast tier, 2 held-out instances.
CLEANRL_SMALL = ["--total-timesteps", "128", "--num-envs", "2", "--num-steps", "32", "--eval-episodes", "2"]
#: (script, its smallest arguments): one PPO rollout of 50 env steps; 20 CQL gradient steps.
CASES = [
    pytest.param("cleanrl_ppo_masked.py", [*CLEANRL_SMALL, "--out", "{tmp}"], id="cleanrl-ppo-masked"),
    pytest.param("maskable_ppo_compact.py", [*NANO_SMALL, "--steps", "50", "--n-envs", "1"], id="maskable-ppo"),
    pytest.param("recurrent_ppo.py", [*NANO_SMALL, "--steps", "50", "--n-envs", "1"], id="recurrent-ppo"),
    pytest.param("d3rlpy_cql_pack.py", [*SMALL, "--steps", "20", "--out", "{tmp}"], id="cql"),
    # Each case takes 15-25 s on two cores; this variant of the CQL script is left to `pytest -m slow`
    # so that the default suite spends about a minute on the examples.
    pytest.param("d3rlpy_cql_pack.py", [*SMALL, "--steps", "20", "--out", "{tmp}", "--masked"],
                 id="cql-masked", marks=pytest.mark.slow),
]  # fmt: skip


def _run_in_process(script: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python script args`` in this process (runpy, ``__main__``), its output captured."""
    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    with (
        pytest.MonkeyPatch.context() as patch,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        patch.chdir(cwd)
        patch.setattr(sys, "argv", [str(script), *args])
        try:
            runpy.run_path(str(script), run_name="__main__")
        except SystemExit as exit_:
            code = exit_.code
    returncode = code if isinstance(code, int) else (0 if code is None else 1)
    return subprocess.CompletedProcess([str(script), *args], returncode, out.getvalue(), err.getvalue())


FINAL = re.compile(r"^final_val_accuracy=(\S+) test_accuracy=(\S+)$", re.MULTILINE)


def test_every_example_is_tested() -> None:
    assert {case.values[0] for case in CASES} == {p.name for p in EXAMPLES.glob("*.py")}


@pytest.mark.parametrize(("script", "args"), CASES)
def test_example_runs_and_prints_final_accuracy(
    script: str, args: list[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    args = [a.replace("{tmp}", str(tmp_path / "out")) for a in args]
    if script == "cleanrl_ppo_masked.py" or "nano" in args:
        if "nano" in args:
            request.getfixturevalue("nano_fidelity")
        done = _run_in_process(EXAMPLES / script, args, tmp_path)
    else:
        done = subprocess.run(
            [sys.executable, str(EXAMPLES / script), *args],
            check=False, cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    found = FINAL.findall(done.stdout)
    assert len(found) == 1, f"{script} printed no final accuracy line:\n{done.stdout}"
    val, test = (float(x) for x in found[0])
    assert 0.0 <= val <= 1.0 and 0.0 <= test <= 1.0
    assert "Gym has been unmaintained" not in done.stderr  # esper_agents hides the old gym's banner
    if script == "d3rlpy_cql_pack.py":
        assert (tmp_path / "out" / "pack" / "pack.json").is_file()


CLEANRL_SCALARS = {
    "charts/episodic_return", "charts/episodic_score", "charts/episodic_length", "charts/SPS",
    "charts/learning_rate", "charts/illegal_actions", "losses/value_loss", "losses/policy_loss", "losses/entropy",
    "losses/approx_kl", "losses/clipfrac", "losses/explained_variance", "eval/score",
}  # fmt: skip


def _cleanrl_final_score(out: Path, cwd: Path) -> float:
    """Runs the CleanRL-style example into ``out``; checks its files; returns its final eval score."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # 256 steps: 4 updates, and the 2 envs end an episode (25 steps) so episode scalars are logged.
    args = ["--total-timesteps", "256", "--num-envs", "2", "--num-steps", "32", "--eval-episodes", "2"]
    done = _run_in_process(
        EXAMPLES / "cleanrl_ppo_masked.py", [*args, "--eval-every", "2", "--out", str(out)], cwd
    )
    assert done.returncode == 0, f"the CleanRL example failed:\n{done.stdout}\n{done.stderr}"
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [line["illegal_actions"] for line in lines if "illegal_actions" in line] == [0]  # the masks hold
    lines = [line for line in lines if "eval_score_mean" in line]
    # Before training, after update 2 (of 4), after training.
    assert [line["global_step"] for line in lines] == [0, 128, 256]
    assert all(line["eval_episodes"] == 2 for line in lines)
    score = lines[-1]["eval_score_mean"]
    assert math.isfinite(score) and -1.0 <= score <= 1.0

    events = EventAccumulator(str(out))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert CLEANRL_SCALARS <= tags, f"missing scalars: {sorted(CLEANRL_SCALARS - tags)}"
    assert [e.step for e in events.Scalars("eval/score")] == [0, 128, 256]
    assert all(-1.0 <= e.value <= 1.0 for e in events.Scalars("charts/episodic_score"))

    with (out / "eval.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["global_step"]) for r in rows] == [0, 128, 256]
    assert float(rows[-1]["eval_score_mean"]) == pytest.approx(score, abs=1e-6)
    return score


def test_cleanrl_example_logs_its_curve_and_is_deterministic(tmp_path: Path) -> None:
    """TensorBoard scalars and eval.csv are written, and the same seed gives the same eval score."""
    first = _cleanrl_final_score(tmp_path / "a", tmp_path)
    assert _cleanrl_final_score(tmp_path / "b", tmp_path) == first
