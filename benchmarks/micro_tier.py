"""The fast tier (``Esper-Micro``): headroom on held-out instances, throughput and fidelity.

    python benchmarks/micro_tier.py headroom --train 40 --heldout 60 --seeds 2 --out benchmarks/results

``headroom`` runs the schedule library (WAIT; widening each slot, early and late; the pointwise
residual seeds; harmful schedules) and the heuristics on training instances (``TRAIN_SPLIT``) and
held-out ones (``HELDOUT_SPLIT``), every instance from ``--seeds`` reset seeds, one episode per
line in ``micro_headroom.episodes.jsonl`` (a killed run resumes). The report gives, on held-out
instances, benchmark score means with 95% bootstrap intervals over instances: every schedule and
heuristic, the **single best** schedule (chosen on the training instances) and the **virtual
best** (per held-out instance, the schedule best on one reset seed, scored on the other, both
ways), and the issue's bars.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from _common import add_results_argument, provenance, require_positive

from esper_agents.policies import get_policy
from esper_agents.policies.schedules import Schedule, grow
from esper_env.instances import DISTRIBUTIONS, HELDOUT_SPLIT, TRAIN_SPLIT
from esper_env.lifecycle import AlphaSpeed, Op
from esper_env.wrappers import CompactActions

MICRO_ID = "Esper-Micro-v2"
MAX_EPOCHS = 25


def library() -> list[Schedule]:
    """The scripted schedules of the headroom table (blueprints that apply to the MLP hosts)."""
    out = [Schedule("wait", "wait")]
    out += [grow(b, (s,)) for b in ("widen_4x", "widen_2x") for s in (0, 1, 2)]
    out += [grow("widen_4x"), grow("widen_2x")]
    out += [grow("widen_4x", (s,), start=e) for s in (0, 1, 2) for e in (5, 12)]
    out += [grow(b) for b in ("mlp", "conv_small", "lora", "norm", "channel_attention")]
    out += [Schedule("hold-then-prune:widen_4x", "hold-then-prune", "widen_4x")]
    out += [Schedule("prune-at-23:widen_4x@0", "hold-then-prune", "widen_4x", (0,), prune_at=23,
                     prune_speed=AlphaSpeed.INSTANT)]  # fmt: skip
    out += [Schedule("churn:widen_4x", "churn", "widen_4x", (0,))]
    return out


HEURISTICS = ("heuristic:capacity", "heuristic:bottleneck")

_ENVS: dict[str, gym.Env] = {}


def _env(instances: str) -> gym.Env:
    if instances not in _ENVS:
        torch.set_num_threads(1)
        _ENVS[instances] = gym.make(
            MICRO_ID, instances=instances, max_epochs=MAX_EPOCHS, device="cpu", num_threads=1
        )
    return _ENVS[instances]


def run_episode(name: str, instance: int, seed: int, instances: str = "bottlenecks") -> dict[str, Any]:
    """One episode of schedule or heuristic ``name`` on ``instance`` from reset seed ``seed``."""
    env = _env(instances)
    base = env.unwrapped
    schedule = {s.name: s for s in library()}.get(name)
    policy, wrapped = None, env
    if schedule is None:
        wrapped = CompactActions(env)
        policy = get_policy(name.partition(":")[2], epsilon=0.0, env=wrapped)
    obs, info = wrapped.reset(seed=seed, options={"instance": instance})
    t0, curve, actions, done = time.perf_counter(), [], [], False
    while not done:
        if policy is not None:
            action: Any = int(np.argmax(policy.greedy_probs(obs, info["action_mask"])))
            a = wrapped.actions[action]
        else:
            a = schedule.action(base, int(info["epoch"]))
            action = a.to_array()
        if a.op != Op.WAIT:
            actions.append(f"{Op(a.op).name}({a.slot})@{info['epoch']}")
        obs, _, terminated, truncated, info = wrapped.step(action)
        curve.append(float(info["val_accuracy"]))
        done = terminated or truncated
    return {
        "schedule": name, "instance": instance, "seed": seed, "score": info["score"],
        "final_val_accuracy": info["final_val_accuracy"],
        "size_ratio": (info["host_params"] + info["seed_params"]) / info["base_host_params"],
        "val_accuracy_curve": curve, "actions": actions, "seconds": time.perf_counter() - t0,
    }  # fmt: skip


def key(e: dict[str, Any]) -> tuple[str, int, int]:
    return e["schedule"], int(e["instance"]), int(e["seed"])


def run_headroom(args: argparse.Namespace) -> dict[str, Any]:
    names = [s.name for s in library()] + list(HEURISTICS)
    train = [TRAIN_SPLIT.start_level + i for i in range(args.train)]
    heldout = [HELDOUT_SPLIT.start_level + i for i in range(args.heldout)]
    tasks = [(n, k, s) for k in train + heldout for s in range(args.seeds) for n in names]
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "micro_headroom.episodes.jsonl"
    done = {key(e): e for e in map(json.loads, cache.read_text().splitlines())} if cache.exists() else {}
    todo = [t for t in tasks if t not in done]
    print(f"{len(todo)} episodes to run ({len(tasks) - len(todo)} cached)", flush=True)
    with cache.open("a") as log, ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_episode, *t, args.instances) for t in todo]
        for i, f in enumerate(as_completed(futures)):
            e = f.result()
            done[key(e)] = e
            log.write(json.dumps(e) + "\n")
            if i % 200 == 0:
                log.flush()
                print(f"{i}/{len(todo)} episodes", flush=True)
    return report(done, names, train, heldout, args.seeds)


def bootstrap(values: np.ndarray, rng: np.random.Generator, n: int = 2000) -> tuple[float, float]:
    idx = rng.integers(0, len(values), (n, len(values)))
    means = values[idx].mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def report(
    done: dict[tuple[str, int, int], dict], names: list[str], train: list[int], heldout: list[int], seeds: int
) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    score = defaultdict(dict)  # name -> instance -> [score per seed]
    for (name, k, s), e in done.items():
        if name in names and s < seeds:
            score[name].setdefault(k, [0.0] * seeds)[s] = 100 * e["score"]

    def mean_over(name: str, ks: list[int]) -> np.ndarray:
        return np.array([np.mean(score[name][k]) for k in ks])

    schedules = [n for n in names if not n.startswith("heuristic:")]
    single = max(schedules, key=lambda n: mean_over(n, train).mean())
    vb = []
    for k in heldout:
        per = []
        for a in range(seeds):
            b = (a + 1) % seeds
            best = max(schedules, key=lambda n: score[n][k][a])
            per.append(score[best][k][b])
        vb.append(np.mean(per))
    vb = np.array(vb)
    rows = {n: mean_over(n, heldout) for n in names}
    wait = rows["wait"]
    heur = max((n for n in names if n.startswith("heuristic:")), key=lambda n: rows[n].mean())
    out: dict[str, Any] = {
        "held_out_means": {n: float(v.mean()) for n, v in rows.items()},
        "held_out_ci": {n: bootstrap(v, rng) for n, v in rows.items()},
        "single_best": single,
        "single_best_train_mean": float(mean_over(single, train).mean()),
        "virtual_best": float(vb.mean()),
        "vb_minus_sb": float((vb - rows[single]).mean()),
        "vb_minus_sb_ci": bootstrap(vb - rows[single], rng),
        "best_heuristic": heur,
        "heuristic_minus_wait": float((rows[heur] - wait).mean()),
        "heuristic_minus_wait_ci": bootstrap(rows[heur] - wait, rng),
        "heuristic_minus_sb": float((rows[heur] - rows[single]).mean()),
        "per_instance_best": {str(k): max(schedules, key=lambda n: np.mean(score[n][k])) for k in heldout},
    }
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    h = sub.add_parser("headroom", help="schedules and heuristics on training and held-out instances")
    h.add_argument("--train", type=int, default=40, help="training instances (single best chosen there)")
    h.add_argument("--heldout", type=int, default=60, help="held-out instances (scored)")
    h.add_argument(
        "--seeds", type=int, default=2, help="reset seeds per instance (>= 2 for the virtual best)"
    )
    h.add_argument("--workers", type=int, default=2)
    h.add_argument("--instances", default="bottlenecks", choices=DISTRIBUTIONS, help="instance distribution")
    add_results_argument(h, resumes=True)
    args = parser.parse_args(argv)
    require_positive(parser, args, "train", "heldout", "seeds", "workers")
    if args.command == "headroom":
        result = run_headroom(args)
        result = {"provenance": provenance(__file__, argv, MICRO_ID, 1), **result}
        (args.out / "micro_headroom.json").write_text(json.dumps(result, indent=1) + "\n")
        json.dump({k: v for k, v in result.items() if k != "per_instance_best"}, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
