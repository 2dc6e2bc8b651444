"""Probe: does the fast tier rank schedules more like "tiny" with more optimizer steps per epoch?

    python docs/fast_tier/probe_fidelity_steps.py 256,64,32 OUT.jsonl [synth48]

The ``optimizers`` distribution at batch sizes 256 (the fast tier's: 4 optimizer steps per
epoch), 64 (16) and 32 (32; "tiny" takes 31 at the distribution's batch of 256 on its 8,000
images) on the held-out instances whose 16 fidelity schedules were played at "tiny"
(``benchmarks/results/micro_optimizers/micro_fidelity_tiny.episodes.jsonl``), reset seeds 0 and 1.
Prints the Spearman correlation with "tiny" per instance and of the means. ``synth48`` swaps the
clusters task for SynthCIFAR's images average-pooled to 3x4x4 = 48 features (the same MLP input).
See probe_fidelity_steps.md.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
TINY = ROOT / "benchmarks/results/micro_optimizers/micro_fidelity_tiny.episodes.jsonl"


def synth48(fid, seed, blobs=0, spread=0.0, label_noise=0.0):
    """SynthCIFAR's first images of each split, pooled to 4x4 and flattened to 48 features."""
    import torch
    import torch.nn.functional as F

    from esper_env.data import ImageSplits, channel_stats
    from esper_env.synthcifar import make_synthcifar

    out = []
    for split, n in (("train", fid.train_images), ("val", fid.val_images), ("test", fid.test_images)):
        x, y = make_synthcifar(n, split)
        x = F.adaptive_avg_pool2d(x.float(), 4).round().clamp(0, 255).to(torch.uint8)
        out += [x.reshape(n, 48, 1, 1).contiguous(), y]
    return ImageSplits(*out, 10, *channel_stats(out[0]), "clusters")


def episode(task: tuple[str, int, int, int, bool]) -> dict:
    import micro_tier

    import esper_env.instance_setup
    from esper_env.instances import get_distribution

    name, k, seed, batch, synth = task
    if synth:
        esper_env.instance_setup.make_clusters = synth48
    dist = replace(get_distribution("optimizers"), batch_size=batch, name=f"optimizers-batch{batch}")
    e = micro_tier.run_episode(name, k, seed, dist)
    e.pop("val_accuracy_curve")
    return e | {"batch_size": batch}


def main(batches: list[int], out: Path, synth: bool = False) -> None:
    tiny = [json.loads(line) for line in TINY.read_text().splitlines()]
    names = sorted({e["schedule"] for e in tiny})
    complete = sorted(
        k for k in {e["instance"] for e in tiny} if sum(e["instance"] == k for e in tiny) == len(names)
    )
    tasks = [(n, k, s, b, synth) for b in batches for k in complete for s in (0, 1) for n in names]
    with out.open("a") as log, ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        eps = list(pool.map(episode, tasks, chunksize=4))
        log.writelines(json.dumps(e) + "\n" for e in eps)
    at_tiny = {(e["schedule"], e["instance"]): e["score"] for e in tiny}
    for b in batches:
        fast: dict[tuple[str, int], list[float]] = defaultdict(list)
        for e in eps:
            if e["batch_size"] == b:
                fast[e["schedule"], e["instance"]].append(e["score"])
        per = [
            spearmanr([np.mean(fast[n, k]) for n in names], [at_tiny[n, k] for n in names])[0]
            for k in complete
        ]
        means = [np.mean([np.mean(fast[n, k]) for k in complete]) for n in names]
        tiny_means = [np.mean([at_tiny[n, k] for k in complete]) for n in names]
        seconds = np.mean([e["seconds"] for e in eps if e["batch_size"] == b])
        print(f"batch {b}: per instance {np.round(per, 2).tolist()} (mean {np.mean(per):.2f}); "
              f"of the means {spearmanr(means, tiny_means)[0]:.2f}; {seconds:.2f} s per episode")  # fmt: skip


if __name__ == "__main__":
    main([int(b) for b in sys.argv[1].split(",")], Path(sys.argv[2]), sys.argv[3:] == ["synth48"])
