"""Probe: is there a sub-distribution of `optimizers` or `difficulty`, cut on what the observation
shows (the learning rate, the rent), whose headroom meets issue 22's bars 2 and 3 together?

    python docs/fast_tier/probe_subsets.py optimizers benchmarks/results/micro_optimizers/micro_headroom.episodes.jsonl 2
    python docs/fast_tier/probe_subsets.py difficulty EPISODES.jsonl 4   # the 4-seed episodes, gunzipped

Re-scores recorded headroom episodes (no new episode): for every subset of the distribution's
learning rates (and, where the rent varies, of its rents), the instances drawn with those values,
and ``micro_tier.report`` on them twice: in-sample on the training instances (the single best, the
fitted context and curve rules all chosen and scored there: what a designer may look at) and on
the held-out ones. Bars: best heuristic - WAIT >= 3; virtual best - single best >= 4; the best
heuristic, or a fitted rule if better, at most half that gap above the single best. A subset
chosen here has looked at these held-out instances too, so it must be confirmed on a fresh block
(``micro_tier.py headroom --heldout-start 50``). See probe_subsets.md.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))


def subsets(values: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
    for r in range(1, len(values) + 1):
        yield from itertools.combinations(sorted(values), r)


def bars(r: dict[str, Any]) -> dict[str, Any]:
    means = r["held_out_means"]
    wait, sb, h = means["wait"], means[r["single_best"]], means[r["best_heuristic"]]
    rule = max([h] + [r[k] for k in ("context_rule_mean", "curve_rule_mean") if k in r])
    out = {"sb_w": sb - wait, "gap": r["vb_minus_sb"], "gap_lo": r["vb_minus_sb_ci"][0], "h_w": h - wait,
           "h_w_lo": r["heuristic_minus_wait_ci"][0], "rule_sb": rule - sb}  # fmt: skip
    out["pass"] = out["h_w"] >= 3 and out["gap"] >= 4 and out["rule_sb"] <= out["gap"] / 2
    return out


def main(name: str, path: Path, seeds: int) -> None:
    import micro_tier

    from esper_env.instances import HELDOUT_SPLIT, TRAIN_SPLIT, get_distribution

    dist = get_distribution(name)
    done = {}
    for line in path.read_text().splitlines():
        e = json.loads(line)
        if e["seed"] < seeds:
            done[micro_tier.key(e)] = e
    names = sorted({n for n, _, _ in done})
    ks = sorted({k for _, k, _ in done})
    train, held = [k for k in ks if k in TRAIN_SPLIT], [k for k in ks if k in HELDOUT_SPLIT]
    rents = list(subsets(dist.rent)) if len(dist.rent) > 1 else [dist.rent]
    print("| learning rates | rents | instances (train/held-out) | in-sample: SB-WAIT, gap, H-WAIT, rule-SB, bars | "
          "held-out: SB-WAIT, gap [lo], H-WAIT [lo], rule-SB, bars |")  # fmt: skip
    print("|---|---|---|---|---|")
    for lrs, rs in itertools.product(subsets(dist.learning_rate), rents):
        keep = [k for k in ks if dist.draw(k).learning_rate in lrs and dist.draw(k).rent in rs]
        tr, ho = [k for k in train if k in keep], [k for k in held if k in keep]
        if len(tr) < 10 or len(ho) < 10:
            continue
        a = bars(micro_tier.report(done, names, tr, tr, seeds, dist))
        b = bars(micro_tier.report(done, names, tr, ho, seeds, dist))
        print(f"| {','.join(map(str, lrs))} | {','.join(map(str, rs))} | {len(tr)}/{len(ho)} | "
              f"{a['sb_w']:.1f}, {a['gap']:.1f}, {a['h_w']:.1f}, {a['rule_sb']:.1f}, {'**met**' if a['pass'] else 'no'} | "
              f"{b['sb_w']:.1f}, {b['gap']:.1f} [{b['gap_lo']:.1f}], {b['h_w']:.1f} [{b['h_w_lo']:.1f}], "
              f"{b['rule_sb']:.1f}, {'**met**' if b['pass'] else 'no'} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]))
