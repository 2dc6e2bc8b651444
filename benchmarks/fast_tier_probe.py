"""Feasibility probe for the fast tier (issue 22), part 1: speed against ``impaired`` at "tiny".

    nice -n 10 python benchmarks/fast_tier_probe.py speed [--rounds 25] [--reps 4] [--out FILE]

All set-ups run in lockstep in one process on one torch thread: each round steps the baseline
(``gymnasium.make("Esper-SynthCIFAR-v1", config="impaired", fidelity="tiny")``) once in a WAIT
episode and once in a grown one, then every candidate ``--reps`` times in each, so machine load
hits all of them alike. A grown episode germinates ``widen_4x`` in slot 0 at epoch 1 and advances
it to FOSSILIZED as fast as the gates allow (``from1:widen_4x@0``). Resets are timed as part of
the episode. Prints per-step milliseconds, steps/s ratios against the baseline, the final
validation accuracy of each, and the profile split of each candidate's engine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from _fast_tier_prototype import FastEsperEnv, Instance

import esper_env  # noqa: F401  (registers the ids)
from esper_agents.policies.schedules import Schedule, grow
from esper_env.configs import Fidelity

WAIT = Schedule("wait", "wait")
GROWN = grow("widen_4x", (0,), start=1)


def candidates() -> dict[str, Any]:
    f8 = Fidelity("micro8", 512, 256, 256, 8)
    f8v = Fidelity("micro8v128", 512, 128, 128, 8)
    f16 = Fidelity("micro16", 512, 256, 256, 16)
    f4 = Fidelity("micro4", 1024, 256, 256, 4)
    f4v = Fidelity("micro4v128", 512, 128, 128, 4)
    narrow = (8, 16, 32)
    mlp = (32, 32, 32)
    return {
        "cnn8 8-16-32 b64": lambda: FastEsperEnv(Instance("cnn", narrow, 0.01, batch_size=64), f8),
        "cnn8 8-16-32 b128": lambda: FastEsperEnv(Instance("cnn", narrow, 0.01, batch_size=128), f8),
        "mlp8 32-32-32 b64": lambda: FastEsperEnv(Instance("mlp", mlp, 0.05, batch_size=64), f8),
        "mlp8 32-32-32 b128": lambda: FastEsperEnv(Instance("mlp", mlp, 0.05, batch_size=128), f8),
        "mlp8 32-32-32 b128 val128": lambda: FastEsperEnv(Instance("mlp", mlp, 0.05, batch_size=128), f8v),
        "mlp8 32-32-32 b256": lambda: FastEsperEnv(Instance("mlp", mlp, 0.05, batch_size=256), f8),
        "mlp16 32-32-32 b128": lambda: FastEsperEnv(Instance("mlp", mlp, 0.05, batch_size=128), f16),
        # the teacher task at 4x4 (48 inputs), 1,024 training images: the candidate of docs/FAST_TIER.md
        "teacher mlp4 b128": lambda: FastEsperEnv(
            Instance("mlp", mlp, 0.05, batch_size=128, train_images=1024, dataset="teacher"), f4
        ),
        "teacher mlp4 b256": lambda: FastEsperEnv(
            Instance("mlp", mlp, 0.05, batch_size=256, train_images=1024, dataset="teacher"), f4
        ),
        "teacher mlp4 b512": lambda: FastEsperEnv(
            Instance("mlp", mlp, 0.1, batch_size=512, train_images=1024, dataset="teacher"), f4
        ),
        "teacher mlp4 b1024": lambda: FastEsperEnv(
            Instance("mlp", mlp, 0.1, batch_size=1024, train_images=1024, dataset="teacher"), f4
        ),
        # the cluster task (the proposed tier): 1,024 images, 4 / 1 optimizer steps per epoch; 512 images, val 128
        "clusters mlp4 b256": lambda: FastEsperEnv(
            Instance("mlp", mlp, 0.1, batch_size=256, train_images=1024, dataset="clusters"), f4
        ),
        "clusters mlp4 b1024": lambda: FastEsperEnv(
            Instance("mlp", mlp, 0.1, batch_size=1024, train_images=1024, dataset="clusters"), f4
        ),
        "clusters mlp4 512 b512 val128": lambda: FastEsperEnv(
            Instance("mlp", mlp, 0.1, batch_size=512, train_images=512, dataset="clusters"), f4v
        ),
    }


class Runner:
    """One env running one schedule forever (a new episode, seed+1, when one ends); times every call."""

    def __init__(self, env: gym.Env, schedule: Schedule) -> None:
        self.env, self.schedule = env, schedule
        self.seed, self.seconds, self.steps, self.finals = 0, 0.0, 0, []
        self._reset()

    def _reset(self) -> None:
        t = time.perf_counter()
        self.env.reset(seed=self.seed)
        self.seconds += time.perf_counter() - t
        self.seed += 1

    def step(self) -> None:
        u = self.env.unwrapped
        t = time.perf_counter()
        action = self.schedule.action(u, u.engine.history.epoch).to_array()
        _, _, term, trunc, info = self.env.step(action)
        self.seconds += time.perf_counter() - t
        self.steps += 1
        if term or trunc:
            self.finals.append((info["final_val_accuracy"], info["score"]))
            self._reset()

    @property
    def ms_per_step(self) -> float:
        return 1000 * self.seconds / max(self.steps, 1)


def profile(make: Any, epochs: int = 20) -> dict[str, float]:
    """Milliseconds per epoch in train / validate (with / without counterfactuals) / observation."""
    env = make()
    u = env.unwrapped
    out: dict[str, list[float]] = defaultdict(list)
    for schedule in (WAIT, GROWN):
        env.reset(seed=0)
        for _ in range(epochs):
            a = schedule.action(u, u.engine.history.epoch)
            u._execute(a)
            e = u.engine
            t0 = time.perf_counter()
            e.train_epoch()
            t1 = time.perf_counter()
            e.evaluate(e.data.val_x, e.data.val_y, [])
            t2 = time.perf_counter()
            e.validate()
            t3 = time.perf_counter()
            u._observation()
            t4 = time.perf_counter()
            e._advance_timers()
            e._record(1.0, 0.5, 1.0, 0.5)
            key = schedule.name
            out[f"{key} train"].append(t1 - t0)
            out[f"{key} validate (no counterfactual)"].append(t2 - t1)
            out[f"{key} validate + counterfactuals"].append(t3 - t2)
            out[f"{key} observation"].append(t4 - t3)
    return {k: 1000 * float(np.mean(v)) for k, v in out.items()}


def speed(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(1)
    base = {
        s.name: Runner(gym.make("Esper-SynthCIFAR-v1", config="impaired", fidelity="tiny"), s)
        for s in (WAIT, GROWN)
    }
    makers = {k: v for k, v in candidates().items() if not args.only or any(o in k for o in args.only)}
    cands = {(n, s.name): Runner(m(), s) for n, m in makers.items() for s in (WAIT, GROWN)}
    for r in range(args.rounds):
        for run in base.values():
            run.step()
        for _ in range(args.reps):
            for run in cands.values():
                run.step()
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
    rows = []
    for (name, sched), run in cands.items():
        b = base[sched]
        rows.append({
            "setup": name, "episode": sched, "ms_per_step": run.ms_per_step, "steps": run.steps,
            "baseline_ms_per_step": b.ms_per_step, "ratio": b.ms_per_step / run.ms_per_step,
            "final_val_acc": float(np.mean([f[0] for f in run.finals])) if run.finals else None,
            "score": float(np.mean([f[1] for f in run.finals])) if run.finals else None,
            "episodes": len(run.finals),
        })  # fmt: skip
    prof = {name: profile(m) for name, m in makers.items()} if args.profile else {}
    return {"baseline": {k: {"ms_per_step": v.ms_per_step, "steps": v.steps} for k, v in base.items()},
            "rows": rows, "profile": prof}  # fmt: skip


def markdown(res: dict[str, Any]) -> str:
    b = res["baseline"]
    lines = [
        (
            f"baseline impaired/tiny: WAIT {b['wait']['ms_per_step']:.0f} ms/step ({b['wait']['steps']} steps), "
            f"grown {b[GROWN.name]['ms_per_step']:.0f} ms/step ({b[GROWN.name]['steps']} steps)"
        ),
        "",
        "| set-up | episode | ms/step | steps | x faster than tiny | final val acc | score | episodes |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        acc = "-" if r["final_val_acc"] is None else f"{100 * r['final_val_acc']:.1f}"
        sc = "-" if r["score"] is None else f"{100 * r['score']:.1f}"
        lines.append(
            f"| {r['setup']} | {r['episode']} | {r['ms_per_step']:.1f} | {r['steps']} | {r['ratio']:.1f} "
            f"| {acc} | {sc} | {r['episodes']} |"
        )
    if res["profile"]:
        lines += ["", "| set-up | part | ms/epoch |", "|---|---|---:|"]
        for name, parts in res["profile"].items():
            lines += [f"| {name} | {k} | {v:.2f} |" for k, v in parts.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["speed"])
    p.add_argument("--rounds", type=int, default=25)
    p.add_argument("--reps", type=int, default=4)
    p.add_argument(
        "--only", nargs="*", default=[], help="run only the set-ups whose name contains one of these"
    )
    p.add_argument("--no-profile", dest="profile", action="store_false")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    res = speed(args)
    res["command"] = " ".join(sys.argv)
    print(markdown(res))
    if args.out:
        args.out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
