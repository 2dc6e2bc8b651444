"""Probe: which fast-tier knob brings its schedule ranking closer to "tiny", judged against a
reference that is reliable enough to tell?

    python docs/fast_tier/probe_fidelity_knobs.py run 1000000-1000014 b64,b128,b64-layer OUT.jsonl
    python docs/fast_tier/probe_fidelity_knobs.py report OUT.jsonl [OUT2.jsonl ...]

An earlier probe (probe_fidelity_steps.md) found that more optimizer steps per epoch did not move
the fast tier's ranking toward "tiny", but judged it against 6 instances at "tiny", on which a
tier that learns nothing agreed as well. The reference now holds 15 or more held-out
``optimizers`` instances (``benchmarks/results/micro_optimizers/micro_fidelity_tiny.episodes.jsonl``)
with a split-half reliability of 0.83 (``micro_tier.py fidelity``), so it can rank the knobs.

Variants (``b<batch>[-layer]``): the ``optimizers`` distribution at host batch ``batch`` (256 is the
tier's: 4 optimizer steps per epoch; 64: 16; 128: 8), with the seeds' norm as registered
(``GroupNorm``) or ``-layer``: one group (probe_seed_norm.md). ``b256`` and ``b256-layer`` need no
run: ``report`` takes them from the committed headroom episodes and probe_seed_norm50's.

``report``: per variant, on the tiny reference's instances that the variant played (seeds 0 and
1), the Spearman correlation of the schedules' mean scores and final accuracies against "tiny"
with a 95% bias-corrected bootstrap interval (``micro_tier._correlate``), and the seconds per
episode. See probe_fidelity_knobs.md.
"""

from __future__ import annotations

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
TINY = ROOT / "benchmarks/results/micro_optimizers/micro_fidelity_tiny.episodes.jsonl"
HEADROOM = ROOT / "benchmarks/results/micro_optimizers/micro_headroom.episodes.jsonl"
SEED_NORM = ROOT / "docs/fast_tier/probe_seed_norm50.episodes.jsonl.gz"


def _read(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def reference() -> tuple[list[dict], list[str]]:
    """The tiny episodes of the schedules played on every complete instance, and those schedules.
    An instance is complete once it played the 14 schedules of the fidelity run (all 16 but the two
    that widen every block, skipped at "tiny"); one still running is left out."""
    tiny = _read(TINY)
    per: dict[int, set[str]] = {}
    for e in tiny:
        per.setdefault(e["instance"], set()).add(e["schedule"])
    complete = {k for k, s in per.items() if len(s) >= 14}
    names = sorted(set.intersection(*(per[k] for k in complete)))
    return [e for e in tiny if e["instance"] in complete and e["schedule"] in names], names


def parse(variant: str) -> tuple[int, bool]:
    batch, _, norm = variant.partition("-")
    if not batch.startswith("b") or norm not in ("", "layer"):
        raise ValueError(f"a variant is b<batch> or b<batch>-layer, got {variant!r}")
    return int(batch[1:]), norm == "layer"


def episode(task: tuple[str, int, int, str]) -> dict:
    import micro_tier

    import esper_env.blueprints
    from esper_env.instances import get_distribution

    name, k, seed, variant = task
    batch, layer = parse(variant)
    if layer:
        esper_env.blueprints._groups = lambda channels, max_groups=8: 1
    dist = replace(get_distribution("optimizers"), batch_size=batch, name=f"optimizers-{variant}")
    e = micro_tier.run_episode(name, k, seed, dist)
    e.pop("val_accuracy_curve")
    return e | {"variant": variant}


def run(instances: str, variants: str, out: Path) -> None:
    a, b = (int(x) for x in instances.split("-"))
    names = reference()[1]
    done = (
        {(e["variant"], e["schedule"], e["instance"], e["seed"]) for e in _read(out)}
        if out.exists()
        else set()
    )
    # One pool per variant: a worker that patched the norm stays patched.
    for v in variants.split(","):
        parse(v)
        tasks = [(n, k, s, v) for k in range(a, b + 1) for s in (0, 1) for n in names
                 if (v, n, k, s) not in done]  # fmt: skip
        print(f"{v}: {len(tasks)} episodes", flush=True)
        with out.open("a") as log, ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            for e in pool.map(episode, tasks, chunksize=4):
                log.write(json.dumps(e) + "\n")
                log.flush()


def report(paths: list[Path]) -> None:
    import micro_tier

    tiny, names = reference()
    variants: dict[str, list[dict]] = {
        "b256": [e for e in _read(HEADROOM) if e["schedule"] in names],
        "b256-layer": [e for e in _read(SEED_NORM) if e.get("variant") == "layer"],
    }
    for p in paths:
        for e in _read(p):
            variants.setdefault(e["variant"], []).append(e)
    print(
        f"tiny reference: {len({e['instance'] for e in tiny})} instances x 1 seed, {len(names)} schedules\n"
    )
    print("| variant | instances | score rho [95% BC interval] | accuracy rho | s/episode |")
    print("|---|---:|---|---:|---:|")
    for v, eps in variants.items():
        played = {e["instance"] for e in eps}
        ref = [e for e in tiny if e["instance"] in played]
        ks = {e["instance"] for e in ref}
        eps = [e for e in eps if e["instance"] in ks and e["seed"] in (0, 1)]
        if len(ks) < 4:
            continue
        c = micro_tier._correlate(eps, ref, names, v)
        lo, hi = c["rho_ci"]
        seconds = np.mean([e["seconds"] for e in eps])
        print(
            f"| {v} | {len(ks)} | {c['rho']:.2f} [{lo:.2f}, {hi:.2f}] | {c['rho_accuracy']:.2f} | {seconds:.2f} |"
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["run"]:
        run(sys.argv[2], sys.argv[3], Path(sys.argv[4]))
    elif sys.argv[1:2] == ["report"]:
        report([Path(p) for p in sys.argv[2:]])
    else:
        sys.exit(__doc__)
