"""Generation run loop: a spec -> a pack, in parallel, resumable, adaptive.

:func:`generate` opens the pack (:class:`~esper_agents.generation.pack_writer.PackWriter`), plans round
0 (:mod:`~esper_agents.generation.planning`) unless the pack already records a plan, runs every
planned episode it lacks on a backend (:mod:`~esper_agents.generation.backends`) and writes each
one as it finishes. Then, while the spec's ``[adaptive]`` budget remains, each round runs the
health checks (:func:`esper_agents.generation.health.run_health_checks`) on everything generated
so far and, while blocking checks fail, plans ``round_size`` more episodes toward the cells the
failed checks name (for the op-share check, which names ops, the cells whose logged behavior
distribution puts the most mass on those ops). Every round's plan is written to
``PACK/plan/round-NNN.json`` before it runs, so a resumed run finishes exactly the episodes that
were planned. The throughput printed at the end is per core: per worker process, or per CPU of
the Ray cluster. The spec format is in :mod:`~esper_agents.generation.spec`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from esper_agents.generation.backends import BACKENDS, Backend
from esper_agents.generation.collector import EpisodeRecord
from esper_agents.generation.pack_writer import PackWriter
from esper_agents.generation.packs import PackError, read_plan
from esper_agents.generation.planning import EpisodeTask, adaptive_targets, plan_extra, plan_uniform, schedule
from esper_agents.generation.provenance import code_version, pack_header
from esper_agents.generation.spec import GenerationSpec, check_buildable, load_spec


@dataclass
class GenerationResult:
    path: Path
    planned: int
    episodes: int
    new_episodes: int
    new_transitions: int
    wall_seconds: float
    workers: int
    backend: str
    rounds: list[dict[str, Any]] = field(default_factory=list)
    cpu_seconds: float = 0.0

    @property
    def transitions_per_minute(self) -> float:
        return self.new_transitions / max(self.wall_seconds, 1e-9) * 60.0

    @property
    def transitions_per_minute_per_core(self) -> float:
        return self.transitions_per_minute / max(self.workers, 1)

    def summary(self) -> str:
        return (
            f"generated {self.new_episodes} episodes ({self.new_transitions} transitions) "
            f"in {self.wall_seconds:.1f} s "
            f"with {self.workers} worker(s) [{self.backend}]; pack {self.path} holds {self.episodes} of "
            f"{self.planned} planned episodes\n"
            f"throughput: {self.transitions_per_minute:.1f} transitions/min, "
            f"{self.transitions_per_minute_per_core:.1f} transitions/min per core"
            + (
                f" ({self.new_transitions / self.cpu_seconds * 60.0:.1f} per busy core-minute)"
                if self.cpu_seconds
                else ""
            )
        )


def _health_inputs(
    pack_path: Path, spec: GenerationSpec
) -> tuple[Any, dict[tuple[str, str], dict[str, float]]]:
    """The pack as a HealthInput, and each cell's mean behavior probability per op."""
    from esper_agents.generation.health.inputs import load_health_input
    from esper_agents.generation.packs import open_pack

    pack = open_pack(pack_path)
    ops = [name.split("(", 1)[0] for name in pack.action_names]
    op_names = sorted(set(ops))
    onehot = np.array([[o == name for name in op_names] for o in ops], dtype=np.float64)  # [n, n_ops]
    sums: dict[tuple[str, str], np.ndarray] = defaultdict(lambda: np.zeros(len(op_names)))
    steps: Counter[tuple[str, str]] = Counter()
    for rec in pack:
        cell = (rec.metadata.policy_id, rec.metadata.config_id)
        sums[cell] += (rec.arrays["behavior_probs"] @ onehot).sum(axis=0)
        steps[cell] += len(rec)
    mass = {c: dict(zip(op_names, (v / max(steps[c], 1)).tolist())) for c, v in sums.items()}
    return load_health_input(pack, expected_cells=len(spec.cells)), mass


def _run_health(pack_path: Path, spec: GenerationSpec) -> tuple[Any, dict] | None:
    """The health report of the pack so far and each cell's op mass, or None if the checks cannot run."""
    from esper_agents.generation.health.checks import run_health_checks

    try:
        data, mass = _health_inputs(pack_path, spec)
        return run_health_checks(data), mass
    except ValueError as err:  # e.g. too little data to cluster; the episodes on disk are unaffected
        print(f"warning: health checks failed to run ({err}); skipping adaptive allocation", file=sys.stderr)
        return None


class Generation:
    """One run of :func:`generate` on an open pack: its plan, its backend, progress and counts."""

    def __init__(
        self,
        spec: GenerationSpec,
        writer: PackWriter,
        *,
        backend: str,
        workers: int,
        say: Callable[[str], None],
        start: float,
    ) -> None:
        self.spec = spec
        self.writer = writer
        self.backend = backend
        self.workers = workers
        self.say = say
        self.start = start
        self.new_episodes = 0
        self.new_transitions = 0
        self.cpu_seconds = 0.0
        self.done_ids: set[str] = set()
        self.planned: list[EpisodeTask] = []
        self.bar: Any = None
        self.runner: Backend | None = None
        self.version = ""

    def run(self, progress: bool) -> GenerationResult:
        """Finish the recorded rounds, then plan and run the adaptive ones; see the module docstring."""
        writer = self.writer
        rounds = read_plan(writer.root)
        if not rounds:
            tasks0 = plan_uniform(self.spec)
            writer.write_plan_round(
                {"round": 0, "kind": "uniform", "episodes": [t.to_dict() for t in tasks0]}
            )
            rounds = read_plan(writer.root)
        self.planned = [EpisodeTask.from_dict(d) for r in rounds for d in r["episodes"]]
        self.done_ids = writer.completed_ids()
        unknown = self.done_ids - {t.episode_id for t in self.planned}
        if unknown:
            raise PackError(f"{writer.root}: holds episodes the plan does not list: {sorted(unknown)[:5]}")
        if self.done_ids:
            self.say(
                f"resuming {writer.root}: {len(self.done_ids)} of {len(self.planned)} planned episodes "
                "already written"
            )
        runner = self.runner = BACKENDS[self.backend](self.workers)
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=len(self.planned), initial=len(self.done_ids), unit="ep", dynamic_ncols=True,
                            file=sys.stderr)  # fmt: skip
        self.version = code_version()
        try:
            for r in rounds:
                self.run_tasks([EpisodeTask.from_dict(d) for d in r["episodes"]])
            rounds = self.adaptive_rounds(rounds)
        finally:
            if self.bar is not None:
                self.bar.close()
            runner.close()
        return GenerationResult(
            path=writer.root, planned=len(self.planned), episodes=len(writer.completed_ids()),
            new_episodes=self.new_episodes, new_transitions=self.new_transitions,
            wall_seconds=time.perf_counter() - self.start, workers=runner.cores, backend=self.backend,
            rounds=[{k: v for k, v in r.items() if k != "episodes"} | {"episodes": len(r["episodes"])}
                    for r in rounds],
            cpu_seconds=self.cpu_seconds,
        )  # fmt: skip

    def adaptive_rounds(self, rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Plan and run adaptive rounds while the budget lasts; returns every round recorded."""
        spec, writer, ad = self.spec, self.writer, self.spec.adaptive
        extra = sum(len(r["episodes"]) for r in rounds[1:])
        while ad.enabled and len(rounds) <= ad.max_rounds and extra < ad.budget:
            checked = _run_health(writer.root, spec)
            if checked is None:
                break
            report, mass = checked
            targets, reasons = adaptive_targets(report, spec, mass)
            n = min(ad.round_size, ad.budget - extra)
            tasks = plan_extra(spec, self.planned, targets, n, len(rounds))
            status = "passed" if report.passed else f"failed: {', '.join(c.name for c in report.errors)}"
            if not tasks:
                self.say(f"health checks {status}; no cell to target, adaptive allocation done")
                break
            self.say(f"health checks {status}; round {len(rounds)}: {len(tasks)} extra episodes toward "
                     f"{len(targets)} "
                     f"cells ({'; '.join(reasons)})")  # fmt: skip
            writer.write_plan_round({
                "round": len(rounds), "kind": "adaptive", "reasons": reasons,
                "health": {"passed": report.passed, "errors": [c.name for c in report.errors],
                           "warnings": [c.name for c in report.warnings]},
                "targets": [list(c) for c in targets], "episodes": [t.to_dict() for t in tasks],
            })  # fmt: skip
            rounds = read_plan(writer.root)
            self.planned.extend(tasks)
            extra += len(tasks)
            if self.bar is not None:
                self.bar.total = len(self.planned)
                self.bar.refresh()
            self.run_tasks(tasks)
        return rounds

    def run_tasks(self, tasks: list[EpisodeTask]) -> None:
        """Run the tasks not yet written, longest first, writing each episode as it finishes."""
        todo = schedule(self.spec, [t for t in tasks if t.episode_id not in self.done_ids])
        if not todo:
            return
        assert self.runner is not None, "run_tasks runs inside run()"
        by_id = {t.episode_id: t for t in todo}
        with contextlib.closing(self.runner.results(todo, self.spec.env)) as stream:
            for record in stream:
                self.write(record, by_id[record.episode_id])

    def write(self, record: EpisodeRecord, task: EpisodeTask) -> None:
        """Commit one episode to the pack and count it."""
        record.metadata.extra["code_version"] = self.version
        self.writer.write_episode(record, task=task.to_dict())
        self.done_ids.add(record.episode_id)
        self.new_episodes += 1
        self.new_transitions += len(record)
        self.cpu_seconds += record.metadata.wall_seconds
        if self.bar is not None:
            minutes = max(time.perf_counter() - self.start, 1e-9) / 60.0
            rate = f"{self.new_episodes / minutes:.1f} ep/min, {self.new_transitions / minutes:.0f} transitions/min"
            self.bar.set_postfix_str(rate, refresh=False)
            self.bar.update(1)


def generate(
    spec: GenerationSpec | str | os.PathLike,
    out: str | os.PathLike,
    *,
    workers: int = 1,
    backend: str = "local",
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> GenerationResult:
    """Generate (or resume) the pack ``out`` from ``spec``; see the module docstring."""
    if not isinstance(spec, GenerationSpec):
        spec = load_spec(spec)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends are: {', '.join(BACKENDS)}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    say = log or (lambda msg: print(msg, file=sys.stderr))
    start = time.perf_counter()
    check_buildable(spec)  # before anything is written: a spec that cannot run leaves no pack behind
    with PackWriter.open(out, pack_header(spec), force=force) as writer:
        return Generation(spec, writer, backend=backend, workers=workers, say=say, start=start).run(progress)
