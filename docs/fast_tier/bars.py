"""Issue 22's bars on every distribution of the fast tier, read from the committed results.

    python docs/fast_tier/bars.py

One row per distribution: its throughput (``micro_tier.py throughput``), headroom
(``micro_tier.py headroom``) and fidelity (``micro_tier.py fidelity``) results under
``benchmarks/results/`` (``bottlenecks``, the id's default, at the top level; the others in
``micro_<name>/``, a dash in the name written ``_``), on the env version each result's provenance names. Scores in points; 95%
bootstrap intervals in brackets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from esper_env.instances import DISTRIBUTIONS

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def folder(distribution: str) -> Path:
    return RESULTS if distribution == "bottlenecks" else RESULTS / f"micro_{distribution.replace('-', '_')}"


def load(distribution: str, stem: str) -> dict[str, Any] | None:
    path = folder(distribution) / f"{stem}.json"
    return json.loads(path.read_text()) if path.exists() else None


def ci(values: list[float]) -> str:
    return f"[{values[0]:+.1f}, {values[1]:+.1f}]"


def rho(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "-"
    lo, hi = entry.get("rho_ci", (float("nan"), float("nan")))
    return f"{entry['rho']:.2f} [{lo:.2f}, {hi:.2f}] ({entry['n']})"


def row(distribution: str) -> str:
    head, fid, speed = (
        load(distribution, s) for s in ("micro_headroom", "micro_fidelity", "micro_throughput")
    )
    versions = {r["provenance"]["env_version"] for r in (head, fid, speed) if r}
    cells = [f"`{distribution}`", "/".join(sorted(versions)) or "-"]
    if speed:
        single, vector = speed["single"], speed["vector"]
        cells.append(
            f"{single['wait']['ratio']:.1f}x / {single['grown']['ratio']:.1f}x / {vector['ratio']:.1f}x"
        )
    else:
        cells.append("-")
    if head:
        wait = head["held_out_means"]["wait"]
        cells += [
            f"{wait:.1f}",
            f"`{head['best_heuristic']}` {head['heuristic_minus_wait']:+.1f} {ci(head['heuristic_minus_wait_ci'])}",
            f"{head['vb_minus_sb']:+.1f} {ci(head['vb_minus_sb_ci'])}",
            f"{head['heuristic_minus_sb']:+.1f} <= {head['vb_minus_sb'] / 2:.1f}",
        ]
    else:
        cells += ["-"] * 4
    cells += [rho(fid and fid.get("tiny_impaired")), rho(fid and fid.get("tiny_distribution"))]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    print(
        "| distribution | env | 1. speed: WAIT / grown / 2 async | WAIT | 2. best heuristic - WAIT "
        "| 3. virtual best - single best | 3. heuristic - single best <= half the gap "
        "| 4. rho vs `impaired` at tiny (schedules) | 4. rho vs the distribution at tiny (schedules) |"
    )
    print("|---|---|---|---:|---|---|---|---|---|")
    for d in DISTRIBUTIONS:
        print(row(d))


if __name__ == "__main__":
    main()
