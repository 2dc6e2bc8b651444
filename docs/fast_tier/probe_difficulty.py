"""Probe behind the ``difficulty`` distribution: which hidden fields change what pays within an
(optimizer, learning rate) cell of ``optimizers``, and what a mixture of them leaves to rules.

    python docs/fast_tier/probe_difficulty.py run "/label_noise=0.3/spread=1.0/blobs=32/blobs=2" 64 OUT.jsonl
    python docs/fast_tier/probe_difficulty.py report OUT.jsonl

``run``: each variant ("" is ``optimizers`` itself; ``FIELD=V`` replaces one field, several joined
by ``|``) on training instances 0..N-1, reset seed 0, seven schedules. ``report``: the mean score
per cell and schedule, then mixtures of variants re-scored under rents (score = accuracy - rent x
log2 of the size ratio, exact), with the single best, the in-sample per-instance best, the best
per (lr, rent) cell and the best per (optimizer, lr, rent) cell. See probe_difficulty.md.
"""

from __future__ import annotations

import json
import math
import sys
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

SCHEDULES = ("wait", "now:widen_4x@0", "now:widen_4x@1", "now:widen_4x@2", "now:widen_4x", "from5:widen_4x@0",
             "from12:widen_4x@0")  # fmt: skip
MIXTURES = (("",), ("", "blobs=2", "blobs=32"), ("", "blobs=32"))
RENTS = ((0.06,), (0.0, 0.06, 0.12), (0.0, 0.03, 0.06), (0.03,))


def episode(task: tuple[tuple[str, ...], str, int]) -> dict:
    import micro_tier

    sets, name, k = task
    dist = micro_tier.custom_distribution("optimizers", sets)
    e = micro_tier.run_episode(name, k, 0, dist)
    f = dist.draw(k)
    e.pop("val_accuracy_curve")
    return e | {"cell": f"{f.optimizer} {f.learning_rate:g}", "variant": "|".join(sets)}


def run(variants: str, n: int, out: Path) -> None:
    tasks = [
        (tuple(v.split("|")) if v else (), s, k)
        for v in variants.split("/")
        for k in range(n)
        for s in SCHEDULES
    ]
    with out.open("a") as log, ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        for e in pool.map(episode, tasks, chunksize=8):
            log.write(json.dumps(e) + "\n")


def mixture(eps: list[dict], variants: tuple[str, ...], rents: tuple[float, ...]) -> str:
    score: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    cell: dict[tuple[str, int], tuple[str, float]] = {}
    for e in eps:
        if e["variant"] in variants:
            k = (e["variant"], e["instance"])
            rent = rents[(e["instance"] * 7 + variants.index(e["variant"])) % len(rents)]
            score[k][e["schedule"]] = 100 * (e["final_val_accuracy"] - rent * math.log2(e["size_ratio"]))
            cell[k] = (e["cell"], rent)
    ks = list(score)
    means = {s: np.mean([score[k][s] for k in ks]) for s in SCHEDULES}
    single = max(means, key=means.get)
    vb = np.mean([max(score[k].values()) for k in ks])

    def per_cell(of) -> float:
        groups: dict[tuple, list] = defaultdict(list)
        for k in ks:
            groups[of(k)].append(k)
        return sum(max(sum(score[k][s] for k in g) for s in SCHEDULES) for g in groups.values()) / len(ks)

    seen = per_cell(lambda k: (cell[k][0].split()[1], cell[k][1]))
    oracle = per_cell(lambda k: cell[k])
    gap, seen, oracle = vb - means[single], seen - means[single], oracle - means[single]
    name = " + ".join(v or "optimizers" for v in variants)
    return (f"| {name} | {rents} | {means['wait']:.1f} | {single} {means[single]:.1f} | {vb:.1f} ({gap:.1f}) "
            f"| {seen:+.1f} ({seen / gap:.0%}) | {oracle:+.1f} ({oracle / gap:.0%}) |")  # fmt: skip


def report(path: Path) -> None:
    eps = [json.loads(line) for line in path.read_text().splitlines()]
    by: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for e in eps:
        by[e["cell"], e["variant"]][e["schedule"]].append(100 * e["score"])
    print("| cell | variant | " + " | ".join(SCHEDULES) + " |\n|---|---|" + "---:|" * len(SCHEDULES))
    for (c, v), d in sorted(
        by.items(), key=lambda x: (x[0][0].split()[0], float(x[0][0].split()[1]), x[0][1])
    ):
        m = [float(np.mean(d[s])) for s in SCHEDULES]
        best = int(np.argmax(m))
        print(
            f"| {c} | {v or 'optimizers'} | "
            + " | ".join(f"**{x:.1f}**" if i == best else f"{x:.1f}" for i, x in enumerate(m))
            + " |"
        )
    print(
        "\n| mixture | rents | WAIT | single best | per-instance best (gap) | best per (lr, rent) cell | "
        "best per (optimizer, lr, rent) cell |\n|---|---|---:|---|---:|---:|---:|"
    )
    for variants in MIXTURES:
        for rents in RENTS:
            print(mixture(eps, variants, rents))


if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
    else:
        report(Path(sys.argv[2]))
