"""Probe: the `slow` distribution's schedule ranking against "tiny", on the part of the `optimizers`
reference at "tiny" that `slow` could have drawn.

    python docs/fast_tier/probe_slow_fidelity.py

`slow` is `optimizers` at its learning rates 0.003 and 0.01; every other field is drawn alike, so
the `optimizers` instances played at "tiny" with those learning rates are draws of `slow` at "tiny"
(``benchmarks/results/micro_optimizers/micro_fidelity_tiny.episodes.jsonl``, the instances with all
14 schedules). Prints ``micro_tier._correlate`` of the fast tier's `slow` headroom episodes
(``benchmarks/results/micro_slow``, its 50 held-out instances x 2 seeds) against them: the
Spearman correlation of the schedules' mean scores with its 95% bias-corrected interval, each
side's split-half reliability, and that of the final accuracies.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe_fidelity_knobs import reference


def main() -> None:
    import micro_tier

    from esper_env.instances import DISTRIBUTIONS, HELDOUT_SPLIT

    slow, optimizers = DISTRIBUTIONS["slow"], DISTRIBUTIONS["optimizers"]
    tiny, names = reference()
    drawable = {
        e["instance"] for e in tiny if optimizers.draw(e["instance"]).learning_rate in slow.learning_rate
    }
    ref = [e for e in tiny if e["instance"] in drawable]
    path = ROOT / "benchmarks/results/micro_slow/micro_headroom.episodes.jsonl"
    fast = [json.loads(x) for x in path.read_text().splitlines()]
    fast = [e for e in fast if e["instance"] in HELDOUT_SPLIT]
    c = micro_tier._correlate(fast, ref, names, "slow-drawable optimizers instances at tiny")
    cells = sorted(f"{optimizers.draw(k).optimizer} {optimizers.draw(k).learning_rate:g}" for k in drawable)
    print(f"{len(drawable)} instances at tiny ({', '.join(cells)}), {c['n']} schedules")
    lo, hi = c["rho_ci"]
    print(f"score rho {c['rho']:.2f} (95% BC interval {lo:.2f} to {hi:.2f}); reliability fast "
          f"{c['reliability_fast']:.2f}, tiny {c['reliability_tiny']:.2f} (noise caps rho near {c['rho_ceiling']:.2f}); "
          f"final accuracy rho {c['rho_accuracy']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
