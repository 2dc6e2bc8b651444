"""Run a benchmark suite, resumably: :func:`run_bench`.

The phases, each of which picks up where a killed run stopped::

    OUT/bench.json                  the suite's settings (a different suite in the same OUT is refused)
    OUT/pack/                       the offline pack (esper generate; resumes episode by episode)
    OUT/offline/<algo>/             each offline agent (a finished one, summary.json, is kept)
    OUT/online/<algo>/              each online run (esper train-online's directory; resumes from checkpoints)
    OUT/episodes/<agent>.jsonl      one line per evaluation episode (finished episodes are kept)
    OUT/results.{md,csv,json,png}   the report (:mod:`esper_agents.bench.report`)

Evaluation episodes run greedily on the suite's evaluation seeds, which are checked against every
training reset seed (the pack's episodes and the online envs' first resets) before anything is
evaluated: they never overlap. Episodes run in ``workers`` processes, one torch thread each.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from esper_agents.bench.suites import Suite, agent_family
from esper_env.env import torch_threads

__all__ = ["check_seed_separation", "evaluate_episode", "run_bench", "training_seeds"]

_WAIT_INDEX = 0  # CompactActions index 0 is WAIT (checked in make_agent)


def _write_json(path: Path, data: Any) -> None:
    """Write ``data`` atomically (a kill never leaves half a file)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def _check_out(suite: Suite, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in suite.to_json().items() if k != "agents"}
    path = out / "bench.json"
    if path.exists():
        old = json.loads(path.read_text())
        if old != settings:
            changed = sorted(k for k in settings.keys() | old.keys() if settings.get(k) != old.get(k))
            raise ValueError(
                f"{out} holds a bench run with other settings ({', '.join(changed)} differ); "
                "use another --out, or delete it to start over"
            )
    else:
        _write_json(path, settings)


# ------------------------------------------------------------------------------------------ seeds


def training_seeds(suite: Suite, pack: str | os.PathLike | None) -> dict[str, list[int]]:
    """The reset seeds every training run used: the pack's episodes and the online envs' first
    resets (later online episodes continue each env's RNG, with no reset seed)."""
    seeds: dict[str, list[int]] = {}
    if pack is not None:
        from esper_agents.generation.packs import iter_records

        seeds["pack"] = sorted({int(r.metadata.random_seed) for r in iter_records(pack)})
    if any(agent_family(a) == "online" for a in suite.agents):
        seeds["online"] = list(range(suite.train_seed, suite.train_seed + suite.n_envs))
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


# ------------------------------------------------------------------------------------------ training


def _make_pack(suite: Suite, out: Path, workers: int, progress: bool, log: Callable[[str], None]) -> Path:
    from esper_agents.generation.orchestrator import generate

    result = generate(suite.pack_spec(), out / "pack", workers=workers, progress=progress, log=log)
    if result.new_episodes:
        log(result.summary())
    return result.path


def _quiet_d3rlpy() -> None:
    """d3rlpy logs every config and epoch through structlog: keep its warnings only."""
    import logging

    import d3rlpy  # noqa: F401  (its import configures structlog; reconfigure after it)
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def _train_offline(suite: Suite, algo: str, pack: Path, out: Path, device: str, progress: bool) -> None:
    from esper_agents.offline.datasets import load_pack
    from esper_agents.offline.train import train_offline

    _quiet_d3rlpy()
    summary = out / "offline" / algo / "summary.json"
    if summary.exists() and json.loads(summary.read_text()).get("steps") == suite.offline_steps:
        return
    records, source = load_pack(pack)
    d3rlpy_device = "cuda:0" if device == "cuda" else "cpu:0"
    # One torch thread, like the env's default: torch's default (a thread per core) runs 15-25x
    # slower as soon as anything else shares the cores (measured: IQL, 100 steps, 6 s against 104 s).
    with torch_threads(1):
        train_offline(algo, records, suite.offline_steps, out / "offline" / algo, seed=suite.train_seed,
                      show_progress=progress, source=source, device=d3rlpy_device)  # fmt: skip


def _train_online(suite: Suite, algo: str, out: Path, device: str, progress: bool) -> None:
    from esper_agents.online.train import train_online

    train_online(
        algo, suite.online_steps, out / "online" / algo, suite.settings, n_envs=suite.n_envs,
        seed=suite.train_seed, checkpoint_every=max(suite.online_steps // 5, 50),
        device=device, progress=progress,
    )  # fmt: skip


def _tensorboard_seconds(tb: Path) -> float | None:
    """Training time from TensorBoard event files: the sum of each file's first-to-last event
    span (one file per ``learn`` call, so a resumed run's pauses are not counted)."""
    try:
        from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    except ImportError:
        return None
    total, found = 0.0, False
    for path in sorted(tb.rglob("events.out.tfevents.*")):
        times = [e.wall_time for e in EventFileLoader(str(path)).Load()]
        if len(times) > 1:
            total, found = total + max(times) - min(times), True
    return total if found else None


def training_seconds(agent: str, out: Path) -> float | None:
    """Wall seconds the agent's training took (0 for scripted agents; None where unknown)."""
    family = agent_family(agent)
    if family == "scripted":
        return 0.0
    if family == "online":  # a finished run (an earlier bench, or esper train-online) returns at once
        return _tensorboard_seconds(out / "online" / agent / "tb")
    path = out / "offline" / agent / "summary.json"
    return json.loads(path.read_text()).get("seconds") if path.exists() else None


# ------------------------------------------------------------------------------------------ evaluation

_LOADED: dict[tuple[str, str], Any] = {}  # per worker process: agents loaded once


def make_agent(agent: str, env: Any, out: Path, seed: int, device: str) -> Callable[[np.ndarray], np.ndarray]:
    """The callable of a scripted or offline agent on masked observations of ``env``."""
    from esper_agents.offline.commands import behavior_agent

    n = env.n_actions
    if agent == "wait":
        from esper_env.lifecycle import Op

        assert env.get_wrapper_attr("actions")[_WAIT_INDEX].op == Op.WAIT
        return lambda obs: np.zeros(len(np.atleast_2d(obs)), dtype=np.int64)
    if agent == "random":
        rng = np.random.default_rng(seed)  # one stream per evaluation seed: resumable and reproducible

        def act(obs: np.ndarray) -> np.ndarray:
            return np.array([rng.choice(np.flatnonzero(o[-n:] > 0.5)) for o in np.atleast_2d(obs)])

        return act
    if agent.startswith("heuristic:"):
        return behavior_agent(agent.split(":", 1)[1], env)
    return _offline_learner(out, agent, device).predict


def _offline_learner(out: Path, agent: str, device: str) -> Any:
    key = (str(out), agent)
    if key not in _LOADED:
        from esper_agents.offline.saved import load_agent
        from esper_agents.offline.train import AGENT_DIR

        path = out / "offline" / agent / AGENT_DIR
        _LOADED[key] = load_agent(path, device="cuda:0" if device == "cuda" else "cpu:0")
    return _LOADED[key]


def _episode_row(agent: str, seed: int, info: dict[str, Any], ops: Iterable[str], rewards: Sequence[float],
                 illegal: int, seconds: float) -> dict[str, Any]:  # fmt: skip
    size = (info["host_params"] + info["seed_params"]) / info["base_host_params"]
    return {
        "agent": agent, "seed": int(seed), "final_val_accuracy": float(info["final_val_accuracy"]),
        "test_accuracy": float(info["test_accuracy"]), "score": float(info["score"]), "size_ratio": float(size),
        "seeds_created": int(info["seeds_created"]), "seeds_fossilized": int(info["seeds_fossilized"]),
        "seeds_pruned": int(info["seeds_pruned"]), "illegal": int(illegal), "return": float(np.sum(rewards)),
        "length": len(rewards), "ops": dict(Counter(ops)), "seconds": seconds,
    }  # fmt: skip


def evaluate_episode(suite: Suite, out: Path, agent: str, seed: int, device: str = "cpu") -> dict[str, Any]:
    """One greedy evaluation episode of ``agent`` on reset seed ``seed``, as a JSON row."""
    import torch

    from esper_agents.common.evaluation import action_names, make_eval_env
    from esper_agents.common.rollout import run_episode

    torch.set_num_threads(1)
    settings = suite.settings.replace(device=device, num_threads=1)
    started = time.perf_counter()
    if agent_family(agent) == "online":
        from esper_agents.online.envs import make_online_env
        from esper_agents.online.evaluate import run_online_episode
        from esper_agents.online.saved import load_online_model
        from esper_env.lifecycle import Op

        env = make_online_env(agent, settings)
        key = (str(out), agent)
        if key not in _LOADED:
            _LOADED[key] = load_online_model(out / "online" / agent / "model.zip", env, device=device)[1]
        ep = run_online_episode(_LOADED[key], agent, env, seed=seed)
        env.close()
        ops = [Op(int(o)).name for o in ep.actions]
        return _episode_row(agent, seed, ep.info, ops, ep.rewards, ep.illegal, time.perf_counter() - started)
    from esper_agents.offline.evaluate import agent_action_set

    offline = agent_family(agent) == "offline"
    action_set = agent_action_set(_offline_learner(out, agent, device)) if offline else "compact"
    env = make_eval_env(settings, action_set)
    record, illegal = run_episode(env, make_agent(agent, env, out, seed, device), seed=seed)
    names = action_names(env.n_actions)
    env.close()
    ops = [names[int(a)] for a in record.actions]
    return _episode_row(agent, seed, record.info, ops, record.rewards, illegal, time.perf_counter() - started)


def _load_episodes(path: Path) -> dict[int, dict[str, Any]]:
    """The finished episodes of one agent; a line cut by a kill (the last one) is dropped."""
    done: dict[int, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            done[int(row["seed"])] = row
    return done


def _evaluate(suite: Suite, agents: Sequence[str], out: Path, workers: int, device: str,
              progress: bool) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    from tqdm.auto import tqdm

    folder = out / "episodes"
    folder.mkdir(exist_ok=True)
    done = {a: _load_episodes(folder / f"{a}.jsonl") for a in agents}
    for a in agents:  # rewrite without a torn last line, so that appends stay one row per line
        (folder / f"{a}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in done[a].values()))
    todo = [(a, s) for a in agents for s in suite.eval_seeds if s not in done[a]]
    bar = tqdm(total=len(todo), desc=f"{suite.name}: evaluation episodes", disable=not progress)

    def record(row: dict[str, Any]) -> None:
        done[row["agent"]][row["seed"]] = row
        with (folder / f"{row['agent']}.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")
        bar.set_postfix_str(f"{row['agent']} seed {row['seed']}: {100 * row['final_val_accuracy']:.1f}%")
        bar.update(1)

    if workers == 1 or len(todo) <= 1:
        for a, s in todo:
            record(evaluate_episode(suite, out, a, s, device))
    elif todo:
        with ProcessPoolExecutor(min(workers, len(todo)), mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(evaluate_episode, suite, out, a, s, device) for a, s in todo]
            for future in as_completed(futures):
                record(future.result())
    bar.close()
    return {a: [done[a][s] for s in suite.eval_seeds] for a in agents}


# ------------------------------------------------------------------------------------------ the run


def run_bench(
    suite: Suite,
    out: str | os.PathLike,
    *,
    workers: int = 2,
    device: str = "auto",
    progress: bool = True,
    report_only: bool = False,
    results: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run (or resume) ``suite`` into ``out`` and write its report; return the report's JSON.

    The report goes to ``results`` (default ``out``). ``report_only`` trains and evaluates
    nothing: it reports the agents whose evaluation episodes are all there.
    """
    from esper_agents.bench.report import write_report

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    for agent in suite.agents:
        agent_family(agent)  # an unknown name fails before anything runs
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} exists and is not a directory")
    _check_out(suite, out)
    families = {agent_family(a) for a in suite.agents}
    started = time.perf_counter()
    if report_only:
        episodes = {a: list(_load_episodes(out / "episodes" / f"{a}.jsonl").values()) for a in suite.agents}
        episodes = {a: rows for a, rows in episodes.items() if len(rows) == suite.eval_episodes}
    else:
        pack = _make_pack(suite, out, workers, progress, log) if "offline" in families else None
        seeds = training_seeds(suite, pack)
        check_seed_separation(suite, seeds)
        _write_json(out / "seeds.json", {"training": seeds, "evaluation": suite.eval_seeds})
        for agent in suite.agents:
            if agent_family(agent) == "offline":
                log(f"[{suite.name}] offline agent {agent}: {suite.offline_steps} gradient steps on the pack")
                assert pack is not None
                _train_offline(suite, agent, pack, out, device, progress)
        for agent in suite.agents:
            if agent_family(agent) == "online":
                log(
                    f"[{suite.name}] online agent {agent}: {suite.online_steps} env steps on {suite.n_envs} env(s)"
                )
                _train_online(suite, agent, out, device, progress)
        log(f"[{suite.name}] evaluating {len(suite.agents)} agents on seeds {suite.eval_seeds}")
        episodes = _evaluate(suite, suite.agents, out, workers, device, progress)
    train = {a: training_seconds(a, out) for a in episodes}
    report_dir = out if results is None else Path(results)
    report_dir.mkdir(parents=True, exist_ok=True)
    report = write_report(suite, episodes, train, report_dir)
    log(report["table"])
    seconds = time.perf_counter() - started
    log(f"[{suite.name}] wrote {report_dir / 'results'}.{{md,csv,json,png}} in {seconds:.0f} s")
    return report
