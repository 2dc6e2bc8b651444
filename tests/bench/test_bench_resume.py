"""``esper bench --suite smoke`` killed (SIGKILL, process group) during online training, then resumed,
gives the table of an uninterrupted run: every column but the wall-clock ones."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

#: The columns that measure time, not the agents.
_CLOCK = ("train_seconds", "eval_seconds", "wall_seconds")


def _bench(out: Path) -> list[str]:
    return [sys.executable, "-m", "esper_agents.cli", "bench", "--suite", "smoke", "--out", str(out),
            "--workers", "2", "--no-progress"]  # fmt: skip


def _table(out: Path) -> list[dict[str, str]]:
    with (out / "results.csv").open() as f:
        return [{k: v for k, v in row.items() if k not in _CLOCK} for row in csv.DictReader(f)]


def _mid_online_training(out: Path) -> bool:
    """An online run has a checkpoint and no final model yet."""
    return any(
        not (run / "model.zip").exists() and any((run / "checkpoints").glob("model_*_steps.zip"))
        for run in out.glob("online/*")
    )


@pytest.mark.slow
def test_a_bench_killed_during_online_training_gives_the_uninterrupted_table(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    ref = tmp_path / "ref"
    done = subprocess.run(_bench(ref), capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    out = tmp_path / "killed"
    proc = subprocess.Popen(_bench(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 1200  # a hang guard only, not a speed check
    while not _mid_online_training(out) and proc.poll() is None:
        assert time.monotonic() < deadline, "the bench never reached its online training"
        time.sleep(0.05)
    assert proc.poll() is None, "the bench ended before its online training was caught"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "results.csv").exists()
    done = subprocess.run(_bench(out), capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    assert _table(out) == _table(ref)
    for run in ref.glob("online/*"):
        assert (out / "online" / run.name / "episodes.csv").read_bytes() == (
            run / "episodes.csv"
        ).read_bytes()
