"""The fidelity table of README.md here: `slow` on `Esper-Micro-v3` (its committed headroom episodes,
benchmarks/results/micro_slow/) against the references at "tiny", which v3 does not change (the
image ids stay at v2).

    python docs/fast_tier/micro_v3/fidelity.py

References: `impaired` at "tiny" (recorded, 5 seeds); the `optimizers` instances played at "tiny"
that `slow` could draw; `slow` played at "tiny" (``micro_tier.py fidelity --instances slow``), its
complete instances, alone and with those `optimizers` ones.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(HERE.parent))
from probe_fidelity_knobs import reference

SLOW_TINY = ROOT / "benchmarks/results/micro_slow/micro_fidelity_tiny.episodes.jsonl"


def complete(episodes: list[dict], schedules: int = 14) -> list[dict]:
    played: dict[int, set[str]] = {}
    for e in episodes:
        played.setdefault(e["instance"], set()).add(e["schedule"])
    return [e for e in episodes if len(played[e["instance"]]) >= schedules]


def main() -> None:
    import micro_tier

    from esper_env.instances import DISTRIBUTIONS, HELDOUT_SPLIT

    slow, optimizers = DISTRIBUTIONS["slow"], DISTRIBUTIONS["optimizers"]
    episodes = micro_tier._read_jsonl(ROOT / "benchmarks/results/micro_slow/micro_headroom.episodes.jsonl")
    fast = [e for e in episodes if e["instance"] in HELDOUT_SPLIT]
    names = [s.name for s in micro_tier.library()] + list(micro_tier.HEURISTICS)
    recorded = micro_tier._read_jsonl(ROOT / "benchmarks/results/growth_headroom.episodes.jsonl")
    tiny, tiny_names = reference()
    drawable = [e for e in tiny if optimizers.draw(e["instance"]).learning_rate in slow.learning_rate]
    played = complete(micro_tier._read_jsonl(SLOW_TINY)) if SLOW_TINY.exists() else []
    n_d, n_p = len({e["instance"] for e in drawable}), len({e["instance"] for e in played})
    refs = [
        ("`impaired` at tiny (5 seeds)", [e for e in recorded if e.get("config") == "impaired"], names),
        (f"the {n_d} `optimizers` instances at tiny that `slow` could draw", drawable, tiny_names),
    ]
    if played:
        # An `optimizers` instance whose draw is `slow`'s at the same index is the same task (its
        # episodes were copied into the `slow` cache: bit for bit the same); the others are not.
        others = [e | {"instance": -1 - e["instance"]} for e in drawable
                  if optimizers.draw(e["instance"]) != slow.draw(e["instance"])]  # fmt: skip
        n_o = len({e["instance"] for e in others})
        refs += [(f"`slow` played at tiny ({n_p} instances)", played, tiny_names),
                 (f"both ({n_p + n_o} instances)", played + others, tiny_names)]  # fmt: skip
    print(
        "| reference | schedules | score rho [95% interval] | reliability fast / tiny (noise cap) | accuracy rho |"
    )
    print("|---|---:|---|---|---:|")
    for label, ref, nm in refs:
        c = micro_tier._correlate(fast, ref, nm, label)
        lo, hi = c["rho_ci"]
        print(f"| {label} | {c['n']} | {c['rho']:.2f} [{lo:.2f}, {hi:.2f}] | {c['reliability_fast']:.2f} / "
              f"{c['reliability_tiny']:.2f} ({c['rho_ceiling']:.2f}) | {c['rho_accuracy']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
