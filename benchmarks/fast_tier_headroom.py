"""Feasibility probe for the fast tier (issue 22), part 2: signal and headroom on an instance distribution.

    nice -n 10 python benchmarks/fast_tier_headroom.py run --instances 24 --seeds 2 --out DIR
    python benchmarks/fast_tier_headroom.py report --out DIR
    nice -n 10 python benchmarks/fast_tier_headroom.py fidelity --seeds 3 --out DIR

``run`` plays a library of scripted schedules on instances ``0..N-1`` of
:func:`_fast_tier_prototype.draw_instance` (teacher task, MLP host on 1x1 maps, 4x4 inputs) with
reset seeds ``0..S-1``, recording per epoch the validation accuracy and the network's size, so the
score at each instance's own horizon and rent is computed afterwards (one JSON line per episode,
resumable). ``report`` prints WAIT, the heuristics, the single best schedule (chosen on the even
instances, scored on the odd ones) and the virtual best (per odd instance, chosen on one reset
seed and scored on the other), with 95% bootstrap intervals over instances. ``fidelity`` runs the
growth-headroom schedules on the default instance (``impaired``-like narrow host) for the
Spearman correlation against the recorded ``impaired``/"tiny" results.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _fast_tier_prototype import FastEsperEnv, Instance, draw_instance

from esper_agents.policies import get_policy
from esper_agents.policies.schedules import Schedule, get_schedule, grow
from esper_env.configs import Fidelity
from esper_env.lifecycle import Op
from esper_env.wrappers import CompactActions

FID = Fidelity("micro4", 1024, 256, 256, 4)
MAX_EPOCHS = 20


def library() -> list[Schedule]:
    out = [Schedule("wait", "wait")]
    out += [grow(b, (s,), start=1) for b in ("widen_4x", "widen_2x") for s in (0, 1, 2)]
    out += [grow(b, (0, 1, 2), start=1) for b in ("widen_2x", "conv_small", "norm", "lora")]
    out += [grow("widen_4x", (s,), start=10) for s in (0, 2)]
    out += [Schedule("churn:widen_4x", "churn", "widen_4x", (0,))]
    return out


HEURISTICS = ("heuristic:capacity", "rule:narrowest", "rule:hard-narrowest", "rule:hard-narrowest-rent")


class HardRule:
    """Observe 2 epochs; if training accuracy is below ``threshold`` widen (4x) the narrowest layer
    (slot 0 when all are equal), else never grow. Reads the host widths (not in today's observation)."""

    kind = "rule"

    def __init__(self, inst: Instance, threshold: float = 0.8, max_rent: float = 1.0) -> None:
        self.name = "rule:hard-narrowest" + ("-rent" if max_rent < 1 else "")
        self.max_rent = max_rent
        self.rent = inst.rent
        w = inst.widths
        slot = 0 if min(w) == max(w) else int(np.argmin(w))
        self.grow = grow("widen_4x", (slot,), start=2)
        self.threshold = threshold
        self.decided: bool | None = None

    def action(self, env: Any, epoch: int) -> Any:
        h = env.engine.history
        if self.decided is None and epoch >= 2:
            self.decided = h.train_accuracy[-1] < self.threshold and self.rent < self.max_rent
        if not self.decided:
            return Schedule("wait", "wait").action(env, epoch)
        return self.grow.action(env, epoch)


def narrowest_rule(inst: Instance) -> Schedule:
    """Widen (4x) the narrowest hidden layer from epoch 1 (ties: the first); WAIT if all are equal."""
    w = inst.widths
    if min(w) == max(w):
        return Schedule("rule:narrowest", "wait")
    return Schedule("rule:narrowest", "grow", "widen_4x", (int(np.argmin(w)),), 1)


def episode(
    inst: Instance, schedule: Schedule, seed: int, fid: Fidelity = FID, epochs: int = 0
) -> dict[str, Any]:
    torch.set_num_threads(1)
    env: Any = FastEsperEnv(inst, fid, max_epochs=epochs or MAX_EPOCHS, device="cpu", num_threads=1)
    base = env
    policy = None
    if schedule.kind == "heuristic":
        env = CompactActions(env)
        policy = get_policy(schedule.blueprint, epsilon=0.0, env=env)
    obs, info = env.reset(seed=seed)
    curve, sizes, actions = [], [], []
    t0 = time.perf_counter()
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
        obs, _, term, trunc, info = env.step(action)
        curve.append(float(info["val_accuracy"]))
        sizes.append(int(base._total_params()))
        done = term or trunc
    return {
        "instance": inst.index, "schedule": schedule.name, "seed": seed, "curve": curve, "sizes": sizes,
        "base": int(base._base_host_params), "actions": actions, "seconds": time.perf_counter() - t0,
    }  # fmt: skip


def score(e: dict[str, Any], rent: float, horizon: int) -> float:
    t = min(horizon, len(e["curve"])) - 1
    return e["curve"][t] - rent * float(np.log2(e["sizes"][t] / e["base"]))


def run(args: argparse.Namespace) -> None:
    path = args.out / "headroom.episodes.jsonl"
    fid = Fidelity("micro4v128", 512, 128, 128, 4) if args.full_batch else FID
    done = set()
    if path.exists():
        done = {
            (e["instance"], e["schedule"], e["seed"]) for e in map(json.loads, path.read_text().splitlines())
        }
    with path.open("a") as f:
        for k in range(args.instances):
            inst = draw_instance(k, dataset=args.dataset)
            if args.full_batch:  # the fastest set-up: 512 images, one optimizer step per epoch
                inst = replace(inst, train_images=512, batch_size=512)
            scheds = library() + [
                Schedule("heuristic:capacity", "heuristic", "capacity"),
                narrowest_rule(inst),
            ]
            for s in [*scheds, "hard", "hard-rent"]:
                for seed in range(args.seeds):
                    sch = (
                        HardRule(inst)
                        if s == "hard"
                        else HardRule(inst, max_rent=0.06)
                        if s == "hard-rent"
                        else s
                    )
                    if (k, sch.name, seed) in done:
                        continue
                    f.write(json.dumps(episode(inst, sch, seed, fid)) + "\n")
                    f.flush()
            print(f"instance {k}: {inst}", file=sys.stderr, flush=True)


def boot(values: np.ndarray, n: int = 2000) -> tuple[float, float, float]:
    rng = np.random.default_rng(0)
    means = rng.choice(values, (n, len(values))).mean(1)
    return float(values.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def fmt(t: tuple[float, float, float]) -> str:
    return f"{100 * t[0]:+.1f} ({100 * t[1]:+.1f} to {100 * t[2]:+.1f})"


def task(i: Instance) -> str:
    if i.dataset == "clusters":
        return f"{i.clusters} blobs/class, spread {i.spread}"
    return f"teacher width {i.teacher_width}"


def report(args: argparse.Namespace) -> str:
    eps = [json.loads(line) for line in (args.out / "headroom.episodes.jsonl").read_text().splitlines()]
    insts = sorted({e["instance"] for e in eps})
    info = {k: draw_instance(k, dataset=args.dataset) for k in insts}
    if args.full_batch:
        info = {k: replace(i, train_images=512, batch_size=512) for k, i in info.items()}
    seeds = sorted({e["seed"] for e in eps})
    s: dict[tuple[int, str, int], float] = {}
    for e in eps:
        i = info[e["instance"]]
        s[e["instance"], e["schedule"], e["seed"]] = score(e, i.rent, i.horizon)
    names = list(dict.fromkeys(e["schedule"] for e in eps))
    complete = [k for k in insts if all((k, n, sd) in s for n in names for sd in seeds)]
    train, held = complete[0::2], complete[1::2]

    def mean(k: int, n: str, sd: list[int] | None = None) -> float:
        return float(np.mean([s[k, n, x] for x in (sd or seeds)]))

    lib = [n for n in names if not n.startswith(("heuristic:", "rule:"))]
    train_means = {n: np.mean([mean(k, n) for k in train]) for n in lib}
    single = max(train_means, key=train_means.get)
    sb = np.array([mean(k, single) for k in held])
    vb = []
    for k in held:  # choose on one seed, score on the other (both ways, averaged)
        vals = []
        for a in seeds:
            others = [x for x in seeds if x != a]
            pick = max(lib, key=lambda n: s[k, n, a])
            vals.append(mean(k, pick, others))
        vb.append(float(np.mean(vals)))
    vb_a = np.array(vb)
    wait = np.array([mean(k, "wait") for k in held])
    lines = [
        f"instances: {len(complete)} complete ({len(train)} train, {len(held)} held out), seeds {seeds}",
        f"single best (chosen on train instances): `{single}`",
        "",
        "| policy (held-out instances) | mean score | vs WAIT, points (95% bootstrap) |",
        "|---|---:|---:|",
    ]
    rows = [("WAIT", wait), (f"single best `{single}`", sb), ("virtual best (chosen on other seed)", vb_a)]
    rows += [
        (h, np.array([mean(k, h) for k in held])) for h in HEURISTICS if all((k, h, 0) in s for k in held)
    ]
    rows += [(f"`{n}`", np.array([mean(k, n) for k in held])) for n in lib if n not in ("wait", single)]
    for label, v in rows:
        lines.append(f"| {label} | {100 * v.mean():.1f} | {fmt(boot(v - wait))} |")
    lines += ["", f"virtual best - single best: {fmt(boot(vb_a - sb))}"]
    for h in HEURISTICS:
        if all((k, h, 0) in s for k in held):
            hv = np.array([mean(k, h) for k in held])
            lines.append(f"{h} - single best: {fmt(boot(hv - sb))}; {h} - WAIT: {fmt(boot(hv - wait))}")
    best_count: dict[str, int] = {}
    for k in complete:
        b = max(lib, key=lambda n: mean(k, n))
        best_count[b] = best_count.get(b, 0) + 1
    lines += ["", "per-instance best schedule (mean of seeds), all complete instances: " + ", ".join(
        f"`{n}` {c}" for n, c in sorted(best_count.items(), key=lambda x: -x[1]))]  # fmt: skip
    lines += ["", "| instance | widths | lr | train | noise | task | rent | horizon | WAIT | best | best schedule |",
              "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for k in complete:
        i = info[k]
        b = max(lib, key=lambda n: mean(k, n))
        lines.append(
            f"| {k} | {'-'.join(map(str, i.widths))} | {i.learning_rate} | {i.train_images} | {i.label_noise} "
            f"| {task(i)} | {100 * i.rent:.0f} | {i.horizon} | {100 * mean(k, 'wait'):.1f} "
            f"| {100 * mean(k, b):.1f} | `{b}` |"
        )
    secs = np.mean([e["seconds"] / len(e["curve"]) for e in eps])
    lines += ["", f"mean wall time per env step over these episodes: {1000 * secs:.1f} ms"]
    return "\n".join(lines)


FIDELITY_SCHEDULES = (
    "wait", "now:conv_wide", "now:widen_2x", "now:widen_4x", "now:widen_4x@0", "now:widen_4x@1",
    "now:widen_4x@2", "from5:widen_4x@0", "from10:widen_4x@0", "from15:widen_4x@0",
    "hold-then-prune:widen_4x", "churn:widen_4x", "prune-at-23:widen_4x@0", "heuristic:capacity",
)  # fmt: skip


def fidelity(args: argparse.Namespace) -> str:
    from scipy.stats import spearmanr

    tiny: dict[str, list[float]] = {}
    for e in map(json.loads, Path(args.tiny).read_text().splitlines()):
        if e["config"] == "impaired" and e["schedule"] in FIDELITY_SCHEDULES:
            tiny.setdefault(e["schedule"], []).append(e["score"])
    out = []
    for label, inst in (
        ("clusters (32/class, spread 0.4) MLP 8-16-32", Instance(
            "mlp", (8, 16, 32), 0.1, batch_size=256, train_images=1024, dataset="clusters", clusters=32,
            spread=0.4, index=0, horizon=25)),
        ("clusters (8/class, spread 0.8) MLP 8-16-32", Instance(
            "mlp", (8, 16, 32), 0.1, batch_size=256, train_images=1024, dataset="clusters", clusters=8,
            spread=0.8, index=0, horizon=25)),
    ):  # fmt: skip
        fast = {}
        for name in FIDELITY_SCHEDULES:
            sch = get_schedule(name)
            eps = [episode(inst, sch, sd, epochs=25) for sd in range(args.seeds)]
            fast[name] = float(np.mean([score(e, 0.03, 25) for e in eps]))
        names = [n for n in FIDELITY_SCHEDULES if n in tiny]
        rho = spearmanr([np.mean(tiny[n]) for n in names], [fast[n] for n in names])
        out += [f"{label}: Spearman rho = {rho.statistic:.2f} (p = {rho.pvalue:.3f}) over {len(names)} schedules",
                "", "| schedule | impaired/tiny score (5 seeds, recorded) | fast score |", "|---|---:|---:|"]  # fmt: skip
        out += [f"| `{n}` | {100 * np.mean(tiny[n]):.1f} | {100 * fast[n]:.1f} |" for n in names]
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["run", "report", "fidelity"])
    p.add_argument("--instances", type=int, default=24)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("/tmp/fast"))
    p.add_argument("--full-batch", action="store_true", help="512 images, batch 512, 128 val images")
    p.add_argument("--dataset", default="clusters", choices=["clusters", "clusters-v1", "teacher"])
    p.add_argument("--tiny", default="benchmarks/results/growth_headroom.episodes.jsonl")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.what == "run":
        run(args)
    text = report(args) if args.what in ("run", "report") else fidelity(args)
    print(text)
    (args.out / f"{args.what if args.what != 'run' else 'report'}.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
