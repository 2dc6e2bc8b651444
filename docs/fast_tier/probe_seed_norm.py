"""Probe: does the fast tier rank schedules more like "tiny" once its seeds' normalisation is not
degenerate on the MLP host's 1x1 features?

    python docs/fast_tier/probe_seed_norm.py run 1000000-1000006 0,1 group,layer OUT.jsonl [DISTRIBUTION [headroom]]
    python docs/fast_tier/probe_seed_norm.py report OUT.jsonl   # or the committed probe_seed_norm.episodes.jsonl.gz

A widening seed's new channels are ``relu(GroupNorm(conv(x)))``, and the ``norm`` blueprint is a
``GroupNorm``, with up to 8 groups (:func:`esper_env.blueprints._groups`). On the CNN hosts a group
holds its channels x the feature map's pixels. On the MLP host the feature map is 1x1, so a group
holds 1-3 values: at 8 channels (``widen_2x`` on an 8-wide block) each group is one value, which
normalises to 0, and the new channels are a constant; at 16 each pair normalises to (+1, -1).
``layer`` plays the same episodes with one group (a LayerNorm over the channels; the same
parameter count, so the same rent). ``group`` is ``Esper-Micro-v2`` as registered.

``run``: the 16 fidelity schedules (``headroom``: those of ``micro_tier.py headroom``, heuristics
and curve probes included) on the distribution's instances (``optimizers`` by default; ranges
``A-B[,C-D...]``), the given reset seeds and variants; episodes already in OUT are kept, not rerun. ``report``: per variant, the Spearman
correlation of the schedules' mean score and mean final accuracy against ``optimizers`` at "tiny"
(the instances played there) and against ``impaired`` at "tiny" (recorded, 5 seeds), and the
per-schedule accuracy gains. See probe_seed_norm.md.
"""

from __future__ import annotations

import gzip
import json
import sys
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe_fidelity_rent import tiny_reference

TINY = ROOT / "benchmarks/results/micro_optimizers/micro_fidelity_tiny.episodes.jsonl"
RECORDED = ROOT / "benchmarks/results/growth_headroom.episodes.jsonl"


def episode(task: tuple[str, int, int, str, str]) -> dict:
    import micro_tier

    import esper_env.blueprints

    name, k, seed, variant, distribution = task
    if variant == "layer":
        esper_env.blueprints._groups = lambda channels, max_groups=8: 1
    e = micro_tier.run_episode(name, k, seed, distribution)
    if name != "wait":  # WAIT's curve feeds the curve rule of the headroom report
        e.pop("val_accuracy_curve")
    return e | {"variant": variant, "distribution": distribution}


def names(schedules: str = "fidelity") -> list[str]:
    if schedules == "headroom":
        import micro_tier

        return [s.name for s in micro_tier.library()] + list(micro_tier.HEURISTICS) + [
            s.name for s in micro_tier.curve_probes()]  # fmt: skip
    tiny = {json.loads(line)["schedule"] for line in TINY.read_text().splitlines()}
    return sorted(tiny)


def run(
    instances: str,
    seeds: str,
    variants: str,
    out: Path,
    distribution: str = "optimizers",
    schedules: str = "fidelity",
) -> None:
    ks = [k for r in instances.split(",") for a, b in [map(int, r.split("-"))] for k in range(a, b + 1)]
    done = {(e["schedule"], e["instance"], e["seed"], e["variant"])
            for e in map(json.loads, out.read_text().splitlines())} if out.exists() else set()  # fmt: skip
    tasks = [(n, k, s, v, distribution) for v in variants.split(",") for k in ks
             for s in map(int, seeds.split(",")) for n in names(schedules) if (n, k, s, v) not in done]  # fmt: skip
    # One process per variant's patch: a worker that patched stays patched, so the pools are separate.
    with out.open("a") as log:
        for v in variants.split(","):
            with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
                for e in pool.map(episode, [t for t in tasks if t[3] == v], chunksize=8):
                    log.write(json.dumps(e) + "\n")


def means(eps: list[dict], field: str) -> dict[str, float]:
    per: dict[str, dict[object, list[float]]] = defaultdict(lambda: defaultdict(list))
    for e in eps:
        per[e["schedule"]][e.get("instance")].append(100 * e[field])
    return {n: float(np.mean([np.mean(v) for v in ks.values()])) for n, ks in per.items()}


def rho(a: dict[str, float], b: dict[str, float]) -> float:
    common = sorted(set(a) & set(b))
    return float(spearmanr([a[n] for n in common], [b[n] for n in common]).statistic)


def report(path: Path) -> None:
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    eps = [json.loads(line) for line in text.splitlines()]
    tiny = tiny_reference(instances={e["instance"] for e in eps})
    full = {e["instance"] for e in tiny}
    recorded = [json.loads(line) for line in RECORDED.read_text().splitlines()]
    recorded = [e for e in recorded if e.get("config") == "impaired"]
    variants = sorted({e["variant"] for e in eps})
    n_sched = len({e["schedule"] for e in tiny})
    print(
        f"`optimizers` at tiny: {len(full)} instances x 1 seed, {n_sched} schedules; `impaired` at tiny: 5 seeds.\n"
    )
    print("| seed norm | fast instances x seeds | vs `optimizers`/tiny: score | accuracy | same instances: score | "
          "accuracy | vs `impaired`/tiny: score | accuracy |\n|---|---|---:|---:|---:|---:|---:|---:|")  # fmt: skip
    for v in variants:
        mine = [e for e in eps if e["variant"] == v]
        same = [e for e in mine if e["instance"] in full]
        n_k, n_s = len({e["instance"] for e in mine}), len({e["seed"] for e in mine})
        cells = [rho(means(x, f), means(ref, f)) for x, ref in ((mine, tiny), (same, tiny), (mine, recorded))
                 for f in ("score", "final_val_accuracy")]  # fmt: skip
        print(f"| {v} | {n_k} x {n_s} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")
    print("\nFinal accuracy minus WAIT's (x100), per schedule:\n")
    print("| schedule | " + " | ".join(f"fast, {v}" for v in variants) + " | `optimizers`/tiny |")
    print("|---|" + "---:|" * (len(variants) + 1))
    acc = {v: means([e for e in eps if e["variant"] == v], "final_val_accuracy") for v in variants}
    ta = means(tiny, "final_val_accuracy")
    for n in sorted(ta, key=lambda n: -ta[n]):
        print(f"| {n} | " + " | ".join(f"{acc[v][n] - acc[v]['wait']:+.1f}" for v in variants)
              + f" | {ta[n] - ta['wait']:+.1f} |")  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(sys.argv[2], sys.argv[3], sys.argv[4], Path(sys.argv[5]), *sys.argv[6:8])
    else:
        report(Path(sys.argv[2]))
