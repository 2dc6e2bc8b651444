"""``esper bench --backend``: the bench's training runs and evaluation episodes go through a backend
(:mod:`esper_agents.generation.backends`). In-process, a stand-in remote backend gets every unit of
work and gives the local backend's table; (``slow``) the smoke suite on a local Ray gives the local
backend's table, and a rerun resumes without redoing anything."""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from esper_agents.bench import runner
from esper_agents.bench.runner import evaluate_episode, run_bench, train_agent
from esper_agents.bench.suites import get_suite
from esper_agents.cli import main
from esper_agents.generation.backends import BACKENDS, LocalBackend

#: The columns that measure time, not the agents.
_CLOCK = ("train_seconds", "eval_seconds", "wall_seconds")
#: Both anchors, a random agent and an offline learner: the smoke suite's cheap families.
AGENTS = ("wait", "random", "heuristic:capacity", "bc")


def _table(out: Path) -> list[dict[str, str]]:
    with (out / "results.csv").open() as f:
        return [{k: v for k, v in row.items() if k not in _CLOCK} for row in csv.DictReader(f)]


class _Recording(LocalBackend):
    """A stand-in remote backend: runs its tasks in this process and records which functions ran."""

    remote = True
    calls: ClassVar[list[tuple[str, Any]]] = []

    def map(
        self, fn: Callable[..., Any], tasks: Sequence[tuple[Any, ...]], gpus: float = 0.0
    ) -> Iterator[Any]:
        for task in tasks:
            self.calls.append((fn.__name__, task[2] if fn is evaluate_episode else task[1]))
        return super().map(fn, tasks, gpus)


def test_the_bench_routes_training_runs_and_episodes_through_the_backend(
    nano_fidelity: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    smoke = get_suite("smoke")
    settings = smoke.settings.replace(fidelity=nano_fidelity, max_epochs=5)
    suite = dataclasses.replace(smoke, settings=settings, offline_steps=50, agents=AGENTS)
    quiet = {"workers": 1, "device": "cpu", "progress": False, "log": lambda message: None}
    run_bench(suite, tmp_path / "local", **quiet)
    monkeypatch.setitem(runner.BACKENDS, "recording", _Recording)  # type: ignore[index]
    _Recording.calls = []
    run_bench(suite, tmp_path / "remote", backend="recording", **quiet)
    assert ("train_agent", "bc") in _Recording.calls  # the learner trained as a task
    assert not [c for c in _Recording.calls if c[0] == "train_agent" and c[1] != "bc"]  # scripted: nothing
    episodes = sorted(c[1] for c in _Recording.calls if c[0] == "evaluate_episode")
    assert episodes == sorted(AGENTS * suite.eval_episodes)
    assert _table(tmp_path / "remote") == _table(tmp_path / "local")
    _Recording.calls = []
    run_bench(suite, tmp_path / "remote", backend="recording", **quiet)  # resumed: nothing left to evaluate
    assert [c[0] for c in _Recording.calls] == ["train_agent"]  # bc's task returns at once (trained)
    assert _table(tmp_path / "remote") == _table(tmp_path / "local")
    assert train_agent.__module__ == "esper_agents.bench.runner"  # a module-level task Ray can import


def test_an_unknown_backend_is_refused_naming_the_valid_ones(tmp_path: Path) -> None:
    suite = dataclasses.replace(get_suite("smoke"), agents=("wait",))
    with pytest.raises(ValueError, match="'nope'.*local, ray"):
        run_bench(suite, tmp_path, backend="nope", progress=False, log=lambda message: None)
    assert list(BACKENDS) == ["local", "ray"]


@pytest.mark.slow
def test_smoke_bench_on_a_local_ray_gives_the_local_table(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # a local Ray of --workers CPUs
    common = ["bench", "--suite", "smoke", "--agents", *AGENTS, "--workers", "2", "--no-progress"]
    try:
        assert main([*common, "--out", str(tmp_path / "local")]) == 0
        assert main([*common, "--backend", "ray", "--out", str(tmp_path / "ray")]) == 0
        trained = {p: p.stat().st_mtime_ns for p in (tmp_path / "ray").glob("offline/*/summary.json")}
        episodes = {p: p.read_text() for p in (tmp_path / "ray").glob("episodes/*.jsonl")}
        assert main([*common, "--backend", "ray", "--out", str(tmp_path / "ray")]) == 0  # resumed
    finally:
        monkeypatch.undo()
    local, ray = _table(tmp_path / "local"), _table(tmp_path / "ray")
    assert [r["agent"] for r in ray] == list(AGENTS)
    assert ray == local  # scores, accuracies, intervals: all but the wall-clock columns
    assert trained and all(p.stat().st_mtime_ns == t for p, t in trained.items())  # not trained again
    assert episodes and all(p.read_text() == text for p, text in episodes.items())  # no episode rerun
