"""Run a benchmark suite, resumably: :func:`run_bench`.

The phases, each of which picks up where a killed run stopped::

    OUT/bench.json                  the suite's settings (a different suite in the same OUT is refused)
    OUT/pack/                       the offline pack (esper generate; resumes episode by episode)
    OUT/offline/<run>/              each offline training run (a finished one, summary.json, is kept)
    OUT/online/<run>/               each online run (esper train-online's directory; resumes from checkpoints)
    OUT/episodes/<run>.jsonl        one line per evaluation episode (finished episodes are kept)
    OUT/results.{md,csv,json,png}   the report (:mod:`esper_agents.bench.report`)

A trained agent has ``Suite.train_seeds`` training runs, ``<agent>`` and ``<agent>-seed<i>``
(:func:`~esper_agents.bench.suites.run_name`), each with its own seed; every run is evaluated on
the same episodes, and the report gives the spread across them. A scripted agent runs once.

Evaluation episodes run greedily on the suite's evaluation seeds, which are checked against every
training reset seed (the pack's episodes and the online envs' first resets) before anything is
evaluated: they never overlap. On a suite with held-out instances (``Suite.eval_split``) each
evaluation episode pins its instance, and the pack's instances are checked against the held-out
ones the same way (the online envs draw from the training split, which the suite keeps apart).

The pack's episodes, the training runs and the evaluation episodes run on a backend
(:data:`~esper_agents.generation.backends.BACKENDS`), one torch thread per task: ``local`` trains
the agents one after the other in this process (``workers=1``) or ``workers`` at a time in
processes, and runs episodes in ``workers`` processes; ``ray``
runs each training run and each episode as a Ray task (joining ``$RAY_ADDRESS`` when set, a local
Ray of ``workers`` CPUs otherwise; OUT must then be on a filesystem every node sees). Both resume
the same way, from what OUT holds, and give the same results.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from esper_agents.bench.families import FAMILY_IMPLEMENTATIONS, family_of
from esper_agents.bench.suites import FAMILIES, Suite, parse_run
from esper_agents.common.io import append_jsonl, read_jsonl, repair_jsonl, write_json
from esper_agents.generation.backends import BACKENDS, Backend

__all__ = [
    "check_instance_separation", "check_seed_separation", "evaluate_episode", "run_bench", "train_agent",
    "training_instances", "training_seconds", "training_seeds",
]  # fmt: skip


#: The ``bench.json`` entries that may change in a run directory: the evaluation set, when one
#: set's seeds (and instances) begin the other's (``--eval-episodes``). Its episodes are kept by seed.
_EVALUATION_KEYS = frozenset({"eval_seeds", "eval_instances"})


def _check_out(suite: Suite, out: Path) -> None:
    """Record ``suite``'s settings in ``out/bench.json``, or refuse a directory of other settings;
    a longer or shorter evaluation of the same seeds is the same run (its record is updated)."""
    out.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in suite.to_json().items() if k != "agents"}
    path = out / "bench.json"
    if path.exists():
        old = json.loads(path.read_text())
        if old == settings:
            return
        changed = sorted(k for k in settings.keys() | old.keys() if settings.get(k) != old.get(k))
        if not set(changed) <= _EVALUATION_KEYS or not all(
            _one_begins_the_other(old.get(k), settings.get(k)) for k in changed
        ):
            raise ValueError(
                f"{out} holds a bench run with other settings ({', '.join(changed)} differ); "
                "use another --out, or delete it to start over"
            )
    write_json(path, settings)


def _one_begins_the_other(a: list[int] | None, b: list[int] | None) -> bool:
    if a is None or b is None:
        return False
    n = min(len(a), len(b))
    return a[:n] == b[:n]


# ------------------------------------------------------------------------------------------ seeds


def training_seeds(suite: Suite, pack: str | os.PathLike | None) -> dict[str, list[int]]:
    """The reset seeds every training run used: the pack's episodes and those each family's
    training uses (the online envs' first resets)."""
    seeds: dict[str, list[int]] = {}
    if pack is not None:
        from esper_agents.generation.packs import iter_records

        seeds["pack"] = sorted({int(r.metadata.random_seed) for r in iter_records(pack)})
    for family in {family_of(a).name: family_of(a) for a in suite.agents}.values():
        seeds.update(family.training_seeds(suite))
    return seeds


def check_seed_separation(suite: Suite, seeds: dict[str, list[int]]) -> None:
    """``ValueError`` if an evaluation seed of ``suite`` is also a training reset seed."""
    evaluation = set(suite.eval_seeds)
    for source, used in seeds.items():
        shared = sorted(evaluation & set(used))
        if shared:
            raise ValueError(
                f"evaluation seeds {shared} of suite {suite.name!r} were used for training ({source}); "
                f"move eval_seed ({suite.eval_seed}) past the training seeds"
            )


def training_instances(pack: str | os.PathLike | None) -> list[int]:
    """The task instances the pack's episodes were played on (none on an id without instances)."""
    if pack is None:
        return []
    from esper_agents.generation.packs import iter_records

    return sorted({int(r.metadata.instance) for r in iter_records(pack) if r.metadata.instance is not None})


def check_instance_separation(suite: Suite, instances: Iterable[int]) -> None:
    """``ValueError`` if a held-out instance of ``suite`` was also played in training."""
    held_out = suite.eval_instances
    if held_out is None:
        return
    shared = sorted(set(held_out) & set(instances))
    if shared:
        raise ValueError(
            f"held-out instances {shared[:10]} of suite {suite.name!r} were used for training (pack); "
            f"the pack must draw from the training split only"
        )


# ------------------------------------------------------------------------------------------ training


def _make_pack(suite: Suite, out: Path, workers: int, backend: str, progress: bool,
               log: Callable[[str], None]) -> Path:  # fmt: skip
    from esper_agents.generation.orchestrator import generate

    result = generate(
        suite.pack_spec(), out / "pack", workers=workers, backend=backend, progress=progress, log=log
    )
    if result.new_episodes:
        log(result.summary())
    return result.path


def train_agent(suite: Suite, agent: str, out: Path, pack: Path | None, device: str, progress: bool = False,
                log: Callable[[str], None] | None = None) -> str:  # fmt: skip
    """Train (or resume, or skip a finished) ``agent`` of ``suite`` into ``out``, in whatever process
    this runs; return the agent's name."""
    family_of(agent).train(suite, agent, out, pack=pack, device=device, progress=progress,
                           log=log or (lambda message: None))  # fmt: skip
    return agent


def _train(suite: Suite, out: Path, pack: Path | None, device: str, backend: Backend, progress: bool,
           log: Callable[[str], None]) -> None:  # fmt: skip
    """Every agent's training runs: in this process one after the other on one local worker (its
    logs and progress bars on this terminal), else each a task of the backend (local processes or
    Ray), ``cores`` at a time."""
    families = {a: family_of(a) for a in suite.agents}
    ordered = [
        run
        for name in FAMILIES  # scripted, offline, fitted-q, online
        for a in suite.agents
        if families[a] is FAMILY_IMPLEMENTATIONS[name] and name != "scripted"
        for run in suite.runs(a)
    ]
    if not backend.remote and backend.cores <= 1:
        for run in ordered:
            train_agent(suite, run, out, pack, device, progress, log)
        return
    gpus = 1.0 / max(backend.cores, 1) if device == "cuda" and not backend.remote else float(device == "cuda")
    tasks = [(suite, run, out, pack, device) for run in ordered]
    log(f"[{suite.name}] {len(tasks)} training runs as tasks on {backend.cores} cores")
    for run in backend.map(train_agent, tasks, gpus=gpus):
        log(f"[{suite.name}] trained {run}")


def training_seconds(agent: str, out: Path) -> float | None:
    """Wall seconds the agent's training took (0 for scripted agents; None where unknown)."""
    return family_of(agent).training_seconds(agent, out)


# ------------------------------------------------------------------------------------------ evaluation


def _episode_row(run: str, seed: int, info: dict[str, Any], ops: Iterable[str], rewards: Sequence[float],
                 illegal: int, seconds: float, instance: int | None = None) -> dict[str, Any]:  # fmt: skip
    size = (info["host_params"] + info["seed_params"]) / info["base_host_params"]
    where = {} if instance is None else {"instance": int(instance)}  # only on a suite with held-out instances
    agent, index = parse_run(run)
    trained = {} if index == 0 else {"run": run, "train_index": index}  # one-seed rows stay as they were
    return {**where, **trained,
        "agent": agent, "seed": int(seed), "final_val_accuracy": float(info["final_val_accuracy"]),
        "test_accuracy": float(info["test_accuracy"]), "score": float(info["score"]), "size_ratio": float(size),
        "seeds_created": int(info["seeds_created"]), "seeds_fossilized": int(info["seeds_fossilized"]),
        "seeds_pruned": int(info["seeds_pruned"]), "illegal": int(illegal), "return": float(np.sum(rewards)),
        "length": len(rewards), "ops": dict(Counter(ops)), "seconds": seconds,
    }  # fmt: skip


def evaluate_episode(suite: Suite, out: Path, agent: str, seed: int, device: str = "cpu") -> dict[str, Any]:
    """One greedy evaluation episode of ``agent`` (a training run's name) on reset seed ``seed``
    (and, on a suite with held-out instances, the instance of that seed pinned), as a JSON row."""
    import torch

    from esper_agents.common.rollout import run_episode

    torch.set_num_threads(1)
    started = time.perf_counter()
    family = family_of(agent)
    env = family.make_env(suite, agent, out, device)
    instance = suite.eval_instance(seed)
    options = None if instance is None else {"instance": instance}
    episode = run_episode(env, family.make_agent(agent, env, out, seed, device), seed=seed, options=options)
    env.close()
    if instance is not None and episode.instance != instance:
        raise RuntimeError(
            f"evaluation episode of seed {seed} ran on instance {episode.instance}, not {instance}"
        )
    ops, rewards, illegal = family.executed(env, episode)
    seconds = time.perf_counter() - started
    return _episode_row(agent, seed, episode.info, ops, rewards, illegal, seconds, instance)


def _load_episodes(path: Path, repair: bool = False) -> dict[int, dict[str, Any]]:
    """The finished episodes of one agent by seed; a line cut by a kill (the last one) is dropped
    (and, with ``repair``, removed from the file, so that appends stay one row per line)."""
    return {int(row["seed"]): row for row in (repair_jsonl(path) if repair else read_jsonl(path))}


def _evaluate(suite: Suite, runs: Sequence[str], out: Path, backend: Backend, device: str,
              progress: bool) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """Every run's evaluation episodes (resumed), by run name."""
    from tqdm.auto import tqdm

    folder = out / "episodes"
    folder.mkdir(exist_ok=True)
    done = {r: _load_episodes(folder / f"{r}.jsonl", repair=True) for r in runs}
    todo = [(r, s) for r in runs for s in suite.eval_seeds if s not in done[r]]
    bar = tqdm(total=len(todo), desc=f"{suite.name}: evaluation episodes", disable=not progress)

    def record(row: dict[str, Any]) -> None:
        run = row.get("run", row["agent"])
        done[run][row["seed"]] = row
        append_jsonl(folder / f"{run}.jsonl", row)
        bar.set_postfix_str(f"{run} seed {row['seed']}: {100 * row['final_val_accuracy']:.1f}%")
        bar.update(1)

    tasks = [(suite, out, a, s, device) for a, s in todo]
    gpus = 1.0 / max(backend.cores, 1) if device == "cuda" else 0.0  # episodes share the GPU
    for row in backend.map(evaluate_episode, tasks, gpus=gpus):
        record(row)
    bar.close()
    return {r: [done[r][s] for s in suite.eval_seeds] for r in runs}


# ------------------------------------------------------------------------------------------ the run


def _run(suite: Suite, out: Path, runner: Backend, backend: str, workers: int, device: str, progress: bool,
         log: Callable[[str], None]) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """The pack, the training runs and the evaluation episodes (each resumed from what OUT holds)."""
    needs_pack = any(family_of(a).needs_pack for a in suite.agents)
    pack = _make_pack(suite, out, workers, backend, progress, log) if needs_pack else None
    seeds = training_seeds(suite, pack)
    check_seed_separation(suite, seeds)
    record: dict[str, Any] = {"training": seeds, "evaluation": suite.eval_seeds}
    if suite.eval_instances is not None:
        check_instance_separation(suite, training_instances(pack))
        env = suite.settings
        record["training_split"] = {"start_level": env.start_level, "num_levels": env.num_levels}
        record["evaluation_instances"] = suite.eval_instances
    write_json(out / "seeds.json", record)
    for family in {family_of(a).name: family_of(a) for a in suite.agents}.values():
        family.prepare(suite, out, workers, log)
    _train(suite, out, pack, device, runner, progress, log)
    runs = [r for a in suite.agents for r in suite.runs(a)]
    log(
        f"[{suite.name}] evaluating {len(runs)} runs of {len(suite.agents)} agents on seeds {suite.eval_seeds}"
    )
    return _evaluate(suite, runs, out, runner, device, progress)


def run_bench(
    suite: Suite,
    out: str | os.PathLike,
    *,
    workers: int = 2,
    backend: str = "local",
    device: str = "auto",
    progress: bool = True,
    report_only: bool = False,
    results: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
    command: str | None = None,
) -> dict[str, Any]:
    """Run (or resume) ``suite`` into ``out`` and write its report; return the report's JSON.

    The report goes to ``results`` (default ``out``). ``report_only`` trains and evaluates
    nothing: it reports the agents whose evaluation episodes are all there. ``backend`` (a name of
    :data:`~esper_agents.generation.backends.BACKENDS`) runs the pack, the training runs and the
    evaluation episodes (see the module docstring). ``command``, the command line that ran it, goes
    into the report's provenance header.
    """
    from esper_agents.bench.report import write_report

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends are: {', '.join(BACKENDS)}")
    for agent in suite.agents:
        family_of(agent)  # an unknown name fails here, before anything runs
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    out = Path(out).absolute()  # tasks of a remote backend may run in another working directory
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} exists and is not a directory")
    _check_out(suite, out)
    started = time.perf_counter()
    if report_only:
        runs = [r for a in suite.agents for r in suite.runs(a)]
        episodes = {r: list(_load_episodes(out / "episodes" / f"{r}.jsonl").values()) for r in runs}
        episodes = {r: rows for r, rows in episodes.items() if len(rows) == suite.eval_episodes}
    else:
        runner = BACKENDS[backend](workers)
        finished = False
        try:
            episodes = _run(suite, out, runner, backend, workers, device, progress, log)
            finished = True
        finally:
            runner.close(abort=not finished)
    train = {a: training_seconds(a, out) for a in episodes}
    report_dir = out if results is None else Path(results)
    report_dir.mkdir(parents=True, exist_ok=True)
    report = write_report(suite, episodes, train, report_dir, command=command)
    log(report["table"])
    seconds = time.perf_counter() - started
    log(f"[{suite.name}] wrote {report_dir / 'results'}.{{md,csv,json,png}} in {seconds:.0f} s")
    return report
