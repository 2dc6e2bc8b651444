"""What the benchmark scripts share: their arguments, the provenance header, the episode runner.

The scripts import it as ``_common`` (Python puts a script's own folder first on ``sys.path``):

* arguments: ``--out`` (:func:`add_results_argument`), ``--fidelity`` and ``--config``
  (:func:`add_preset_arguments`, :func:`add_presets_argument`), ``--max-epochs``, ``--seeds`` and
  ``--workers`` (:func:`add_episode_arguments`), and :func:`require_positive`;
* :func:`provenance`, the one header of every result under ``benchmarks/results/`` (the commit,
  whether the code had uncommitted changes, the env id and version, torch and its threads, the
  command); ``tests/scripts/test_results_provenance.py`` fails on a result without it, or on
  one that names an env version other than the newest of its env id;
* :func:`run_episode`, one episode of a scripted growth schedule
  (:mod:`esper_agents.policies.schedules`) with every figure the growth benchmarks report, and
  :func:`run_all`, which runs such episodes in a process pool and caches each as one JSON line,
  so that a killed run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import esper_env
from esper_agents.generation.provenance import result_header
from esper_agents.policies import get_policy
from esper_agents.policies.schedules import Schedule
from esper_env.configs import ENVIRONMENT_CONFIGS, FIDELITIES, EnvironmentConfig, get_config
from esper_env.hosts import HOST_SPECS, build_host, count_parameters, register_host
from esper_env.lifecycle import Op
from esper_env.rewards import REWARD_MODES, benchmark_score, relabel
from esper_env.wrappers import CompactActions

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
RESULTS = BENCHMARKS / "results"


# ---------------------------------------------------------------------------------------- env ids


def env_version(env_id: str) -> int:
    """The version number of ``env_id`` (``Esper-SynthCIFAR-v2`` -> 2)."""
    name, _, version = env_id.rpartition("-v")
    if not name or not version.isdigit():
        raise ValueError(f"env id {env_id!r} does not end in -v<N>")
    return int(version)


def current_env_id(env_id: str) -> str:
    """The newest registered version of ``env_id``'s family (``Esper-SynthCIFAR-v0`` -> ``-v2``)."""
    family = env_id.rpartition("-v")[0]
    versions = [e for e in esper_env.ENV_IDS if e.rpartition("-v")[0] == family]
    if not versions:
        raise ValueError(f"no registered env id like {env_id!r}; registered: {', '.join(esper_env.ENV_IDS)}")
    return max(versions, key=env_version)


#: The env the benchmarks run (and whose engine, hosts and data the engine-level ones time).
ENV_ID = current_env_id("Esper-SynthCIFAR-v2")
#: The fast tier's current id (``Esper-Micro-v3``).
MICRO_ID = current_env_id("Esper-Micro-v2")


# ---------------------------------------------------------------------------------------- arguments


def add_results_argument(parser: argparse.ArgumentParser, resumes: bool = False) -> None:
    """The ``--out DIR`` of a benchmark script: by default the git-ignored ``results/local/``, so
    that only an explicit ``--out benchmarks/results`` rewrites the committed figures."""
    action = "resumes and rewrites" if resumes else "rewrites"
    parser.add_argument("--out", type=Path, default=RESULTS / "local", metavar="DIR",
                        help=f"results directory; benchmarks/results {action} the committed figures")  # fmt: skip


def add_preset_arguments(parser: argparse.ArgumentParser, fidelity: str = "tiny") -> None:
    """``--fidelity`` and ``--config`` (one environment preset)."""
    parser.add_argument("--fidelity", default=fidelity, choices=FIDELITIES, help="fidelity preset")
    parser.add_argument("--config", default="baseline", choices=ENVIRONMENT_CONFIGS, metavar="PRESET",
                        help="environment preset, one of: %(choices)s")  # fmt: skip


def add_presets_argument(parser: argparse.ArgumentParser, default: Sequence[str]) -> None:
    """``--config`` taking several environment presets."""
    parser.add_argument("--config", nargs="+", default=list(default), choices=ENVIRONMENT_CONFIGS,
                        metavar="PRESET", help="environment presets, one of: %(choices)s")  # fmt: skip


def add_episode_arguments(parser: argparse.ArgumentParser, seeds: int = 5, seeds_help: str = "") -> None:
    """``--fidelity``, ``--max-epochs``, ``--seeds`` and ``--workers`` of the episode benchmarks."""
    parser.add_argument("--fidelity", default="tiny", choices=FIDELITIES, help="fidelity preset")
    parser.add_argument("--max-epochs", type=int, default=25, help="epoch budget of an episode")
    parser.add_argument("--seeds", type=int, default=seeds, help=seeds_help or "episodes per schedule")
    parser.add_argument(
        "--workers", type=int, default=2, help="episodes run in parallel (one torch thread each)"
    )


def require_positive(parser: argparse.ArgumentParser, args: argparse.Namespace, *names: str) -> None:
    """``parser.error`` naming the first of ``names`` that is not a positive integer."""
    for name in names:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")


# ---------------------------------------------------------------------------------------- provenance


def provenance(
    script: str | Path, argv: Sequence[str] | None, env_id: str | None, torch_threads: int
) -> dict[str, Any]:
    """The header of a result (:func:`esper_agents.generation.provenance.result_header`), its
    ``command`` ``script`` run with ``argv`` (default: this process's arguments)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        where = Path(script).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        where = str(script)
    if env_id is not None:
        env_version(env_id)  # a ValueError for an id without a version
    return result_header(shlex.join(["python", where, *args]), env_id, torch_threads)


# ---------------------------------------------------------------------------------------- episodes


def _cnn_parameters(channels: tuple[int, ...], num_classes: int) -> int:
    """Parameters of a conv3x3-BN block stack with a linear head (HostCNN's kind)."""
    n, c_in = 0, 3
    for c in channels:
        n += 9 * c_in * c + 2 * c
        c_in = c
    return n + c_in * num_classes + num_classes


def scaled_host(architecture: str, size: float, num_classes: int = 10) -> str:
    """Register (once) and name a CNN host like ``architecture``, ``size`` x its parameters wide."""
    spec = HOST_SPECS[architecture]
    if spec.kind != "cnn":
        raise ValueError(f"static references need a CNN host, {architecture!r} is a {spec.kind}")
    target = size * _cnn_parameters(spec.channels, num_classes)
    widths = (tuple(max(1, round(c * m)) for c in spec.channels) for m in np.linspace(1.0, 8.0, 1401))
    channels = min(widths, key=lambda ch: abs(_cnn_parameters(ch, num_classes) - target))
    name = f"{architecture}-x{size:.2f}"
    register_host(name, replace(spec, channels=channels))
    assert count_parameters(build_host(name, num_classes)) == _cnn_parameters(channels, num_classes)
    return name


def play_schedule(
    env: gym.Env,
    schedule: Schedule,
    seed: int,
    *,
    options: dict | None = None,
    on_step: Callable[[dict], None] | None = None,
) -> tuple[dict, list[float], list[str]]:
    """Play one episode of ``schedule`` in ``env`` from ``reset(seed=seed, options=options)``.

    A ``heuristic`` schedule runs the behavior policy it names greedily through ``CompactActions``;
    the others act from the env's exact legality. Returns the last info, the validation accuracy
    after every epoch and the non-WAIT actions (``"GERMINATE(0)@3"``); ``on_step`` sees every
    step's info.
    """
    base = env.unwrapped
    policy = None
    if schedule.kind == "heuristic":
        env = CompactActions(env)
        policy = get_policy(schedule.blueprint, epsilon=0.0, env=env)
    obs, info = env.reset(seed=seed, options=options)
    curve: list[float] = []
    actions: list[str] = []
    done = False
    while not done:
        if policy is not None:
            action: Any = int(np.argmax(policy.greedy_probs(obs, info["action_mask"])))
            a = env.actions[action]
        else:
            a = schedule.action(base, int(info["epoch"]))
            action = a.to_array()
        if a.op != Op.WAIT:
            actions.append(f"{Op(a.op).name}({a.slot})@{info['epoch']}")
        obs, _, terminated, truncated, info = env.step(action)
        curve.append(float(info["val_accuracy"]))
        if on_step is not None:
            on_step(info)
        done = terminated or truncated
    return info, curve, actions


def run_episode(
    config: str, schedule: Schedule, seed: int, fidelity: str, max_epochs: int, seed_lr: float | None
) -> dict:
    """One episode of ``schedule`` on ``config`` from reset seed ``seed``, on one torch thread.

    The record: final validation and test accuracy, size ratio to the preset's host, benchmark
    score, seed counts, the undiscounted return under every reward mode, the validation accuracy
    per epoch, the non-WAIT actions and the wall time.
    """
    torch.set_num_threads(1)
    cfg: EnvironmentConfig = get_config(config)
    if seed_lr is not None:
        cfg = replace(cfg, seed_lr_multiplier=seed_lr)
    if schedule.kind == "static":
        cfg = replace(cfg, architecture=scaled_host(cfg.architecture, schedule.size))
    env = gym.make(ENV_ID, config=cfg, fidelity=fidelity, max_epochs=max_epochs, device="cpu", num_threads=1)
    returns = dict.fromkeys(REWARD_MODES, 0.0)  # the undiscounted return under every reward mode

    def add_returns(info: dict) -> None:
        for mode in REWARD_MODES:
            returns[mode] += float(relabel(info["reward_components"], mode))

    t0 = time.perf_counter()
    info, curve, actions = play_schedule(env, schedule, seed, on_step=add_returns)
    env.close()
    total = info["host_params"] + info["seed_params"]
    reference = count_parameters(build_host(get_config(config).architecture, 10))
    size = total / reference  # static hosts are measured against the preset's own host
    return {
        "config": config,
        "schedule": schedule.name,
        "seed": seed,
        "final_val_accuracy": info["final_val_accuracy"],
        "test_accuracy": info["test_accuracy"],
        "size_ratio": size,
        "score": benchmark_score(info["final_val_accuracy"], total, reference),
        "seeds_created": info["seeds_created"],
        "seeds_fossilized": info["seeds_fossilized"],
        "seeds_pruned": info["seeds_pruned"],
        "termination_reason": info["termination_reason"],
        "returns": returns,
        "val_accuracy_curve": curve,
        "actions": actions,
        "seconds": time.perf_counter() - t0,
    }


def episode_key(config: str, schedule: str, seed: int) -> str:
    """The cache key of one episode."""
    return f"{config}|{schedule}|{seed}"


def load_episodes(cache: Path) -> dict[str, dict]:
    """The episodes cached in ``cache`` (one JSON line each), by :func:`episode_key`."""
    done: dict[str, dict] = {}
    if cache.exists():
        for line in cache.read_text().splitlines():
            e = json.loads(line)
            done[episode_key(e["config"], e["schedule"], e["seed"])] = e
    return done


def run_all(
    tasks: Sequence[tuple[str, Schedule, int]],
    cache: Path,
    done: dict[str, dict],
    *,
    fidelity: str,
    max_epochs: int,
    workers: int,
    seed_lr: float | None = None,
) -> None:
    """Run the ``(config, schedule, seed)`` tasks not in ``done``, appending each to ``cache``.

    ``workers`` 1 runs them in this process (no pickling: also for tests and debugging); more
    runs them in as many spawned processes.
    """
    todo = [t for t in tasks if episode_key(t[0], t[1].name, t[2]) not in done]
    if not todo:
        return
    print(f"{len(todo)} episodes to run ({len(tasks) - len(todo)} cached) on {workers} worker(s)", flush=True)
    run_args = [(c, s, seed, fidelity, max_epochs, seed_lr) for c, s, seed in todo]
    with cache.open("a") as log:

        def record(e: dict) -> None:
            done[episode_key(e["config"], e["schedule"], e["seed"])] = e
            log.write(json.dumps(e) + "\n")
            log.flush()
            print(f"{e['config']:<9} {e['schedule']:<26} seed {e['seed']} final {e['final_val_accuracy']:.3f} "
                  f"size {e['size_ratio']:.2f}x ({e['seconds']:.0f} s)", flush=True)  # fmt: skip

        if workers == 1:
            for a in run_args:
                record(run_episode(*a))
            return
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            for f in as_completed([pool.submit(run_episode, *a) for a in run_args]):
                record(f.result())


# ---------------------------------------------------------------------------------------- sweeps


def sweep_key(record: dict[str, Any], field: str) -> tuple[str, str, int]:
    """A sweep record's key: ``(algo, config, record[field])`` (config ``-`` for a scripted episode)."""
    return record["algo"], record["config"], record[field]


def load_sweep(cache: Path, field: str) -> dict[tuple[str, str, int], dict[str, Any]]:
    """The records of a sweep's JSON-lines ``cache`` (none if it does not exist yet), by :func:`sweep_key`."""
    from esper_agents.common.io import read_jsonl

    return {sweep_key(r, field): r for r in (read_jsonl(cache) if cache.exists() else [])}


def run_sweep(
    cache: Path,
    done: dict[tuple[str, str, int], dict[str, Any]],
    field: str,
    jobs: Sequence[tuple[Callable[..., dict[str, Any]], Sequence[tuple]]],
    workers: int,
) -> None:
    """Run each ``(function, argument tuples)`` of ``jobs`` in turn on ``workers`` processes
    (:class:`~esper_agents.generation.backends.LocalBackend`), recording every result in ``done``
    under :func:`sweep_key` and appending it to the JSON-lines ``cache`` as it arrives, so that a
    killed sweep resumes; a training run's held-out score is printed."""
    from esper_agents.common.io import append_jsonl
    from esper_agents.generation.backends import LocalBackend

    print(f"{sum(len(tasks) for _, tasks in jobs)} runs and scripted episodes to go", flush=True)
    backend = LocalBackend(workers)
    try:
        for function, tasks in jobs:
            for record in backend.map(function, tasks):
                done[sweep_key(record, field)] = record
                append_jsonl(cache, record)
                if record["config"] != "-":
                    print(f"{record['algo']} {record['config']} {field} {record[field]}: held-out "
                          f"{mean_score(record['rows']):.1f}", flush=True)  # fmt: skip
    finally:
        backend.close()


def mean_score(rows: Sequence[dict[str, Any]]) -> float:
    """The mean benchmark score of evaluation rows, in points."""
    return 100 * sum(r["score"] for r in rows) / len(rows)


def format_ci(summary: dict[str, Any] | None, scale: float = 1.0) -> str:
    """``mean [lo, hi]`` of a :func:`~esper_agents.common.stats.bootstrap_ci` summary times ``scale``
    (``n/a`` for None)."""
    if summary is None:
        return "n/a"
    lo, hi = summary["ci95"]
    return f"{scale * summary['mean']:.1f} [{scale * lo:.1f}, {scale * hi:.1f}]"
