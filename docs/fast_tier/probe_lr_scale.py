"""Probe: does the fast tier rank the schedules as "tiny" does once it trains at a multiple of the
instance's learning rate, chosen so that never growing learns as fast per epoch as at "tiny"?

    python docs/fast_tier/probe_lr_scale.py run optimizers x1,x2,x3,x4,x6 1000000-1000049 wait OUT.jsonl
    python docs/fast_tier/probe_lr_scale.py run slow x3,x2,x4 1000050-1000099 fidelity OUT.jsonl
    python docs/fast_tier/probe_lr_scale.py report [OUT.jsonl ...]

(``report`` without files reads the committed ``probe_lr_scale.episodes.jsonl.gz``, the two runs
above with x2, x3 and x4 for the second; its findings are in probe_lr_scale.md.)

An epoch of the fast tier is 4 optimizer steps (1,024 examples at batch 256) where "tiny"'s is 31
(8,000 images at batch 256), so at one learning rate it learns less per epoch: WAIT on ``slow``
ends at 52.2 there and 60.0 at "tiny", and every seed's extra capacity pays more (probe_price.md:
the fast tier's growth gains are about 1.7x "tiny"'s). Variant ``x<m>`` trains the host and its
seeds at m times the instance's learning rate (the distribution's ``learning_rate`` values scaled;
instance ``k`` draws the same fields otherwise, so the same task).

``report``:

1. *calibration, on WAIT alone*: per (optimizer, learning rate) cell of the instances, the RMS
   difference between the fast tier's mean WAIT validation curve and "tiny"'s (the ``optimizers``
   and ``slow`` references at "tiny" pooled), averaged over the cells both played; the multiple
   that minimizes it is the one chosen, before any ranking is looked at;
2. *validation*: for each variant that played the fidelity schedules, the Spearman of the
   schedules' mean scores (and final accuracies) against ``slow`` at "tiny" (36 instances) and
   against ``impaired`` at "tiny" (5 seeds), with bias-corrected 95% bootstrap intervals.
"""

from __future__ import annotations

import collections
import gzip
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
RESULTS = ROOT / "benchmarks/results"
TINY = {d: RESULTS / f"micro_{d}/micro_fidelity_tiny.episodes.jsonl" for d in ("optimizers", "slow")}
IMPAIRED = RESULTS / "growth_headroom.episodes.jsonl"
EPISODES = Path(__file__).with_name("probe_lr_scale.episodes.jsonl.gz")
#: Skipped at "tiny" on the distribution, compared against ``impaired`` (bar 4's 16 schedules).
EVERY_BLOCK = ("now:widen_4x", "now:widen_2x")


def _read(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def fidelity_schedules() -> list[str]:
    """The 14 schedules every ``slow`` instance played at "tiny"."""
    per: dict[int, set[str]] = collections.defaultdict(set)
    for e in _read(TINY["slow"]):
        per[e["instance"]].add(e["schedule"])
    return sorted(set.intersection(*per.values()))


def scaled(dist_name: str, variant: str):
    from esper_env.instances import get_distribution

    if not variant.startswith("x"):
        raise ValueError(f"a variant is x<multiple>, got {variant!r}")
    m = float(variant[1:])
    d = get_distribution(dist_name)
    return replace(d, name=f"{d.name}-{variant}", learning_rate=tuple(lr * m for lr in d.learning_rate))


def episode(task: tuple[str, str, int, int, str]) -> dict:
    import micro_tier

    dist_name, name, k, seed, variant = task
    e = micro_tier.run_episode(name, k, seed, scaled(dist_name, variant))
    return e | {"variant": variant, "distribution": dist_name}


def run(dist_name: str, variants: str, instances: str, schedules: str, out: Path) -> None:
    a, b = (int(x) for x in instances.split("-"))
    names = ["wait"] if schedules == "wait" else fidelity_schedules() + list(EVERY_BLOCK)
    done = (
        {(e["distribution"], e["variant"], e["schedule"], e["instance"], e["seed"]) for e in _read(out)}
        if out.exists()
        else set()
    )
    tasks = [(dist_name, n, k, s, v) for v in variants.split(",") for k in range(a, b + 1) for s in (0, 1)
             for n in names if (dist_name, v, n, k, s) not in done]  # fmt: skip
    for v in variants.split(","):
        scaled(dist_name, v)
    print(f"{len(tasks)} episodes", flush=True)
    with out.open("a") as log, ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        for i, e in enumerate(pool.map(episode, tasks, chunksize=4)):
            log.write(json.dumps(e) + "\n")
            log.flush()
            if (i + 1) % 100 == 0:
                print(f"{i + 1}/{len(tasks)}", flush=True)


def _cell_curves(episodes: list[dict], dist_name: str) -> dict[tuple[str, float], np.ndarray]:
    """Mean WAIT validation curve per (optimizer, instance learning rate) cell."""
    from esper_env.instances import get_distribution

    d = get_distribution(dist_name)
    cells: dict[tuple[str, float], list] = collections.defaultdict(list)
    for e in episodes:
        if e["schedule"] == "wait":
            i = d.draw(e["instance"])
            cells[i.optimizer, i.learning_rate].append(e["val_accuracy_curve"])
    return {c: np.mean(v, axis=0) for c, v in cells.items()}


def report(paths: list[Path]) -> None:
    import micro_tier

    tiny_cells: dict[tuple[str, float], list] = collections.defaultdict(list)
    for d, p in TINY.items():
        for c, curve in _cell_curves(_read(p), d).items():
            tiny_cells[c].append(curve)
    tiny_mean = {c: np.mean(v, axis=0) for c, v in tiny_cells.items()}
    fast: dict[tuple[str, str], list[dict]] = collections.defaultdict(list)
    # x1 is the tier as registered (Esper-Micro-v3): its committed headroom episodes, held-out only.
    for d in TINY:
        fast[d, "x1"] = [
            e | {"variant": "x1", "distribution": d}
            for e in _read(RESULTS / f"micro_{d}/micro_headroom.episodes.jsonl")
            if e["instance"] >= 1_000_000
        ]
    for p in paths:
        for e in _read(p):
            fast[e["distribution"], e["variant"]].append(e)

    print(
        "## 1. Calibration on WAIT: RMS (accuracy points) between the fast tier's and tiny's mean WAIT curves\n"
    )
    print("| variant (distribution) | cells | mean RMS | per cell (optimizer, lr): fast final / tiny final |")
    print("|---|---:|---:|---|")
    for (d, v), eps in sorted(fast.items()):
        cells = _cell_curves(eps, d)
        common = sorted(c for c in cells if c in tiny_mean)
        if not common:
            continue
        rms = [float(np.sqrt(np.mean((cells[c] - tiny_mean[c]) ** 2))) * 100 for c in common]
        detail = ", ".join(f"{o} {lr:g}: {cells[o, lr][-1] * 100:.0f}/{tiny_mean[o, lr][-1] * 100:.0f}"
                           for o, lr in common)  # fmt: skip
        print(f"| {v} ({d}) | {len(common)} | {np.mean(rms):.1f} | {detail} |")

    names = fidelity_schedules()
    refs = {
        "`slow` at tiny (36 instances)": (names, [e for e in _read(TINY["slow"]) if e["schedule"] in names]),
        "`impaired` at tiny (5 seeds)": (
            names + list(EVERY_BLOCK),
            [e for e in _read(IMPAIRED) if e.get("config") == "impaired"],
        ),
    }
    print("\n## 2. Validation: Spearman of the schedules' mean scores against tiny\n")
    print(
        "| variant | instances x seeds | reference | score rho [95% BC interval] | accuracy rho | WAIT | best schedule |"
    )
    print("|---|---|---|---|---:|---:|---|")
    played = {
        v: eps
        for (d, v), eps in sorted(fast.items())
        if d == "slow" and set(names) <= {e["schedule"] for e in eps}
    }
    for v, eps in played.items():
        d = "slow"
        means = micro_tier._means(eps)
        best = max(means, key=means.get)
        units = len({(e["instance"], e["seed"]) for e in eps})
        for label, (compared, ref) in refs.items():
            c = micro_tier._correlate(eps, ref, compared, v)
            lo, hi = c["rho_ci"]
            print(f"| {v} ({d}) | {units} | {label} | {c['rho']:.2f} [{lo:.2f}, {hi:.2f}] | "
                  f"{c['rho_accuracy']:.2f} | {means['wait']:.1f} | {best} {means[best]:.1f} |")  # fmt: skip

    tiny = micro_tier._means(refs["`slow` at tiny (36 instances)"][1])
    per = {v: micro_tier._means(eps) for v, eps in played.items()}
    print("\n## The pairs: each schedule's mean score, `slow` at tiny and the fast tier per variant\n")
    print("| schedule | tiny | " + " | ".join(per) + " |")
    print("|---|---:|" + "---:|" * len(per))
    for n in sorted(names, key=lambda n: -tiny[n]):
        print(f"| {n} | {tiny[n]:.1f} | " + " | ".join(f"{m[n]:.1f}" for m in per.values()) + " |")


if __name__ == "__main__":
    if sys.argv[1:2] == ["run"]:
        run(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], Path(sys.argv[6]))
    elif sys.argv[1:2] == ["report"]:
        report([Path(p) for p in sys.argv[2:]] or [EPISODES])
    else:
        sys.exit(__doc__)
