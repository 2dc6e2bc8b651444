"""Probe: is the fast tier's score ranking apart from "tiny"'s because growth is priced differently?

    python docs/fast_tier/probe_price.py

The fast tier ranks what growth does to the *final accuracy* nearly as "tiny" does (0.76-0.93) and
its *scores* at about 0.5 (issue 22, bar 4). A score is ``final accuracy - rent x log2(size
ratio)``, and the size ratios differ between the host families: every layer of the MLP host is a
pointwise (1x1) matrix, every layer of a CNN host a 3x3 convolution (9 weights per pair of
channels), so the pointwise residual seeds (``mlp``, ``conv_small``, ``lora``,
``channel_attention``) cost a CNN host a third to a half of what they cost the MLP host of the same
widths, relative to its size (``mlp``: x2.3 against x4.9).

This re-scores recorded episodes, no episode is run. ``twin`` prices each episode's final network
as the CNN host of the same widths (``instance_host(widths, "cnn")``, the family of the
distributions at "tiny") carrying the same seeds in the same slots; ``mlp`` is the price as
registered. The seeds alive at the end are read from the episode's actions (germinated, not
pruned); a blueprint that the schedule's name does not give is the one whose parameter count on the
MLP host matches the episode's. Fast-tier episodes: the committed headroom of ``optimizers`` and
``slow``, and the same instances with one-group seed norms (``probe_seed_norm.py``). References:
``impaired`` at "tiny" (recorded, 5 seeds, rent 3 points per doubling), compared as recorded and
with both sides at that rent; the distribution at "tiny" (``optimizers``: its 18 instances; for
``slow``, the 9 of them that ``slow`` could draw) at the instances' own rent. See probe_price.md.
"""

from __future__ import annotations

import functools
import gzip
import itertools
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe_fidelity_knobs import reference

Episode = dict

RECORDED = ROOT / "benchmarks/results/growth_headroom.episodes.jsonl"
SLOW_TINY = ROOT / "benchmarks/results/micro_slow/micro_fidelity_tiny.episodes.jsonl"
IMPAIRED_RENT = 0.03
#: (label, distribution, episodes file, variant kept (None: all)).
FAST = (
    ("optimizers", "optimizers", "benchmarks/results/micro_optimizers/micro_headroom.episodes.jsonl", None),
    (
        "optimizers, one-group norm",
        "optimizers",
        "docs/fast_tier/probe_seed_norm50.episodes.jsonl.gz",
        "layer",
    ),
    ("slow", "slow", "benchmarks/results/micro_slow/micro_headroom.episodes.jsonl", None),
    ("slow, one-group norm", "slow", "docs/fast_tier/probe_seed_norm_slow.episodes.jsonl.gz", "layer"),
)


def read(path: Path) -> list[Episode]:
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@functools.cache
def price_table(widths: tuple[int, ...]) -> tuple[int, int, dict[tuple[int, str], tuple[int, int]]]:
    """Parameters of the MLP host and its CNN twin, and of each pointwise blueprint in each slot on both."""
    from esper_env.blueprints import blueprint_param_count
    from esper_env.clusters import NUM_CLASSES
    from esper_env.hosts import POINTWISE_BLUEPRINTS, build_host, count_parameters, instance_host

    mlp, cnn = (build_host(instance_host(widths, kind), NUM_CLASSES) for kind in ("mlp", "cnn"))
    seeds = {}
    for slot, bp in itertools.product(range(len(widths)), POINTWISE_BLUEPRINTS):
        widen = bp.startswith("widen")
        seeds[slot, bp] = tuple(
            blueprint_param_count(bp, widths[slot], host.slot_geometry(slot) if widen else None)
            for host in (mlp, cnn)
        )  # fmt: skip
    return count_parameters(mlp), count_parameters(cnn), seeds


def alive(actions: list[str]) -> list[tuple[int, ...]]:
    """The sets of slots that may hold a seed at the end, likeliest first: those germinated and not
    pruned since, then any other subset of the germinated ones (a prune blends the seed out over
    epochs, so one begun late still counts)."""
    slots: dict[int, bool] = {}
    for a in actions:
        op, slot = a.split("(")[0], int(a.split("(")[1].split(")")[0])
        if op == "GERMINATE":
            slots[slot] = True
        elif op == "PRUNE":
            slots[slot] = False
    live = tuple(s for s, on in slots.items() if on)
    subsets = [c for r in range(len(slots) + 1) for c in itertools.combinations(sorted(slots), r)]
    return [live] + [c for c in subsets if c != live]


def twin_size(e: Episode, widths: tuple[int, ...]) -> float:
    """The episode's size ratio, priced on the CNN host of the same widths."""
    from esper_env.hosts import POINTWISE_BLUEPRINTS

    base_mlp, base_cnn, seeds = price_table(widths)
    added = round(e["size_ratio"] * base_mlp - base_mlp)
    if added == 0:
        return 1.0
    name = e["schedule"].partition(":")[2].split("@")[0]
    blueprints = [name] if name in POINTWISE_BLUEPRINTS else POINTWISE_BLUEPRINTS
    for slots in alive(e["actions"]):
        for combo in itertools.product(blueprints, repeat=len(slots)):
            if sum(seeds[s, b][0] for s, b in zip(slots, combo)) == added:
                return (base_cnn + sum(seeds[s, b][1] for s, b in zip(slots, combo))) / base_cnn
    raise ValueError(f"no seeds add {added} parameters ({e['schedule']}, instance {e['instance']})")


def rescore(
    eps: list[Episode], rent: Callable[[Episode], float], size: Callable[[Episode], float]
) -> list[Episode]:
    return [e | {"score": e["final_val_accuracy"] - rent(e) * math.log2(size(e))} for e in eps]


def cell(c: dict) -> str:
    lo, hi = c["rho_ci"]
    return f"{c['rho']:.2f} [{lo:.2f}, {hi:.2f}]"


def sizes(dist: object, price: str) -> Callable[[Episode], float]:
    if price == "mlp":
        return lambda e: e["size_ratio"]
    return lambda e: twin_size(e, dist.draw(e["instance"]).widths)  # type: ignore[attr-defined]


def slow_at_tiny() -> list[Episode]:
    """`slow` played at "tiny" by ``micro_tier.py fidelity`` (its complete instances), if any."""
    if not SLOW_TINY.exists():
        return []
    eps = read(SLOW_TINY)
    played: dict[int, set[str]] = {}
    for e in eps:
        played.setdefault(e["instance"], set()).add(e["schedule"])
    return [e for e in eps if len(played[e["instance"]]) >= 14]


def fidelity_table() -> None:
    import micro_tier

    from esper_env.instances import DISTRIBUTIONS, HELDOUT_SPLIT

    tiny, names = reference()
    every = names + ["now:widen_4x", "now:widen_2x"]
    optimizers = DISTRIBUTIONS["optimizers"]
    impaired = [e for e in read(RECORDED) if e.get("config") == "impaired"]
    at_rent = rescore(impaired, lambda e: IMPAIRED_RENT, lambda e: e["size_ratio"])
    slow_tiny = slow_at_tiny()
    print(
        "Spearman rho of the schedules' mean scores [95% bias-corrected interval]; final accuracy rho last.\n"
    )
    print("| fast tier | price | vs `impaired`/tiny, as recorded | vs `impaired`, both at rent 0.03 | "
          "vs the distribution at tiny | vs `slow` played at tiny | accuracy rho: `impaired`, distribution |\n"
          "|---|---|---|---|---|---|---|")  # fmt: skip
    for label, name, path, variant in FAST:
        dist = DISTRIBUTIONS[name]
        fast = [e for e in read(ROOT / path) if e["instance"] in HELDOUT_SPLIT and e["schedule"] in every
                and (variant is None or e.get("variant") == variant)]  # fmt: skip
        ref = [e for e in tiny if optimizers.draw(e["instance"]).learning_rate in dist.learning_rate]
        for price in ("mlp", "twin"):
            own = rescore(fast, lambda e, d=dist: d.draw(e["instance"]).rent, sizes(dist, price))
            common = rescore(fast, lambda e: IMPAIRED_RENT, sizes(dist, price))
            c_imp = micro_tier._correlate(own, impaired, every, "impaired")
            c_rent = micro_tier._correlate(common, at_rent, every, "impaired")
            c_dist = micro_tier._correlate(own, ref, names, "distribution")
            played = (
                cell(micro_tier._correlate(own, slow_tiny, names, "slow"))
                if name == "slow" and slow_tiny
                else "-"
            )
            print(f"| {label} | {price} | {cell(c_imp)} | {cell(c_rent)} | {cell(c_dist)} | {played} "
                  f"| {c_imp['rho_accuracy']:.2f}, {c_dist['rho_accuracy']:.2f} |")  # fmt: skip
    could = len({e["instance"] for e in tiny if optimizers.draw(e["instance"]).learning_rate < 0.03})
    print(f"\n`impaired`: 16 schedules, 5 seeds. The distribution at tiny: {len(names)} schedules, "
          f"{len({e['instance'] for e in tiny})} `optimizers` instances x 1 seed (for `slow`, the {could} it could "
          f"draw). `slow` played at tiny: {len({e['instance'] for e in slow_tiny})} instances x 1 seed.\n")  # fmt: skip


def bars_table() -> None:
    """Issue 22's bars 2 and 3 on `slow` (20 training instances, held-out 50-99, 2 seeds) per variant."""
    import micro_tier

    from esper_env.instances import DISTRIBUTIONS

    dist = DISTRIBUTIONS["slow"]
    train, heldout = micro_tier.headroom_instances(20, 50, 50)
    print("`slow`, bars 2 and 3 (score x100; heuristics act as played, on the observation as registered):\n")
    print("| seed norm | price | WAIT | single best | virtual best - single best | best heuristic - WAIT "
          "| best heuristic - single best (<= half the gap) | curve rule - heuristic |\n"
          "|---|---|---:|---|---|---|---:|---:|")  # fmt: skip
    for label, name, path, variant in FAST:
        if name != "slow":
            continue
        eps = [e for e in read(ROOT / path) if variant is None or e.get("variant") == variant]
        names = sorted({e["schedule"] for e in eps})
        for price in ("mlp", "twin"):
            done = {
                micro_tier.key(e): e
                for e in rescore(eps, lambda e: dist.draw(e["instance"]).rent, sizes(dist, price))
            }
            r = micro_tier.report(done, names, train, heldout, 2, dist)
            m = r["held_out_means"]
            gap, (glo, ghi) = r["vb_minus_sb"], r["vb_minus_sb_ci"]
            hw, (hlo, hhi) = r["heuristic_minus_wait"], r["heuristic_minus_wait_ci"]
            norm = "one group" if variant else "as registered"
            print(f"| {norm} | {price} | {m['wait']:.1f} | `{r['single_best']}` {m[r['single_best']]:.1f} "
                  f"| {gap:+.1f} [{glo:+.1f}, {ghi:+.1f}] | `{r['best_heuristic']}` {hw:+.1f} [{hlo:+.1f}, {hhi:+.1f}] "
                  f"| {r['heuristic_minus_sb']:+.1f} (<= {gap / 2:.1f}) | {r.get('curve_rule_minus_heuristic', float('nan')):+.1f} |")  # fmt: skip


if __name__ == "__main__":
    fidelity_table()
    bars_table()
