"""Probe: is the fast tier's prune loss BatchNorm's running statistics, left stale by the few
optimizer steps between the prune and the episode's end?

    python docs/fast_tier/probe_prune_bn.py

Plays WAIT, two pruning schedules and ``now:widen_4x@0`` on the held-out ``optimizers`` instances
1,000,000-1,000,007 (reset seed 0), then recomputes every BatchNorm's running statistics over the
training split (a cumulative average, no weight changes) and validates again. Prints the mean final
validation accuracy before and after (x100). See probe_seed_norm.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import micro_tier
from _common import play_schedule

from esper_env.data import iterate_batches
from esper_env.engine import TrainingEngine

SCHEDULES = ("wait", "prune-at-23:widen_4x@0", "hold-then-prune:widen_4x", "now:widen_4x@0")


def recalibrated_accuracy(engine: TrainingEngine) -> float:
    """Validation accuracy after the host's BatchNorm statistics are recomputed on the training split."""
    for m in engine.host.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the pass
    engine.host.train()
    d = engine.data
    batches = iterate_batches(d.train_x, d.train_y, 256, generator=torch.Generator().manual_seed(0), mean=d.mean,
                              std=d.std, augment=False, shuffle=False)  # fmt: skip
    with torch.no_grad():
        for xb, _ in batches:
            engine.forward(xb.contiguous(memory_format=engine.memory_format))
    return engine.evaluate(d.val_x, d.val_y)[1]


def main() -> None:
    torch.set_num_threads(1)
    library = {s.name: s for s in micro_tier.library()}
    env = micro_tier._env("optimizers")
    print(
        "| schedule | final validation accuracy | after recomputing BatchNorm statistics |\n|---|---:|---:|"
    )
    for name in SCHEDULES:
        rows = []
        for k in range(1_000_000, 1_000_008):
            info, _, _ = play_schedule(env, library[name], 0, options={"instance": k})
            rows.append((info["final_val_accuracy"], recalibrated_accuracy(env.unwrapped.engine)))
        before, after = 100 * np.array(rows).mean(0)
        print(f"| `{name}` | {before:.1f} | {after:.1f} |")


if __name__ == "__main__":
    main()
