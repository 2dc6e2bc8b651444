"""How hard is SynthCIFAR? Validation accuracy of plain hosts (no seeds) by epoch.

    python benchmarks/synthcifar_difficulty.py [--fidelities tiny fast] [--seeds 3] [--epochs 25] [--workers 2]

Trains each host with the engine and no seed (what the env does under the always-WAIT policy)
and prints validation accuracy after 5, 10 and 25 epochs, mean and std over seeds, and the
plateau test: the mean over epochs 21-25 minus the mean over epochs 16-20 (a host still
learning gains several points there; a plateaued one about 0). HostCNN is run at every
fidelity; HostCNN-Wide and HostCNN-Narrow at "tiny" show what capacity does.
Runs go to ``--workers`` processes with one torch thread each (accuracy does not depend on it;
several multi-threaded torch processes on the same cores slow each other down many times over).
Results go to OUT/synthcifar_difficulty.json (the provenance header, then one row per host and fidelity).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import time

import torch
from _common import ENV_ID, add_results_argument, provenance

from esper_env.configs import FIDELITIES, EnvironmentConfig, get_config
from esper_env.data import load_dataset
from esper_env.engine import TrainingEngine

CHECKPOINTS = (5, 10, 25)


def run(architecture: str, fidelity: str, seed: int, epochs: int) -> list[float]:
    torch.set_num_threads(1)
    base = get_config("baseline")
    config = EnvironmentConfig(f"difficulty-{architecture}", architecture, base.learning_rate, base.batch_size,
                               base.optimizer)  # fmt: skip
    engine = TrainingEngine(config, load_dataset("synthcifar", fidelity), device="auto", seed=seed)
    return [engine.run_epoch().val_accuracy for _ in range(epochs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    parser.add_argument("--fidelities", nargs="+", default=["tiny", "fast"], choices=FIDELITIES,
                        help="fidelity presets")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=3, help="runs per host and fidelity (seeds 0..N-1)")
    parser.add_argument("--epochs", type=int, default=25,
                        help=f"epochs per run; the table reports epochs {', '.join(map(str, CHECKPOINTS))}")  # fmt: skip
    parser.add_argument("--workers", type=int, default=2, help="worker processes, one torch thread each")
    add_results_argument(parser)
    args = parser.parse_args()
    if args.epochs < CHECKPOINTS[0]:
        parser.error(f"--epochs {args.epochs} is below the first reported epoch ({CHECKPOINTS[0]}); "
                     f"the table reports epochs {', '.join(map(str, CHECKPOINTS))}")  # fmt: skip
    if args.seeds < 1 or args.workers < 1:
        parser.error(f"--seeds and --workers must be positive integers, got {args.seeds} and {args.workers}")
    checkpoints = [c for c in CHECKPOINTS if c <= args.epochs]
    jobs = [("HostCNN", f) for f in args.fidelities]
    if "tiny" in args.fidelities:
        jobs += [("HostCNN-Wide", "tiny"), ("HostCNN-Narrow", "tiny")]
    runs = [(arch, fidelity, seed, args.epochs) for arch, fidelity in jobs for seed in range(args.seeds)]
    t0 = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        results = dict(zip(runs, pool.starmap(run, runs, chunksize=1)))
    seconds = time.perf_counter() - t0
    rows = []
    for arch, fidelity in jobs:
        curves = [results[(arch, fidelity, seed, args.epochs)] for seed in range(args.seeds)]
        row = {"architecture": arch, "fidelity": fidelity, "seeds": args.seeds, "curves": curves}
        for c in checkpoints:
            vals = [curve[c - 1] for curve in curves]
            row[f"epoch_{c}_mean"] = statistics.mean(vals)
            row[f"epoch_{c}_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        if args.epochs >= 25:
            gains = [statistics.mean(c[20:25]) - statistics.mean(c[15:20]) for c in curves]
            row["plateau_gain_mean"] = statistics.mean(gains)
            row["plateau_gain_std"] = statistics.stdev(gains) if len(gains) > 1 else 0.0
        rows.append(row)
        print(f"{arch:<15} {fidelity:<5} " + "  ".join(
            f"ep{c}: {row[f'epoch_{c}_mean']:.3f}±{row[f'epoch_{c}_std']:.3f}" for c in checkpoints
        ), flush=True)  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{len(runs)} runs in {seconds:.0f} s on {args.workers} workers")
    (args.out / "synthcifar_difficulty.json").write_text(
        json.dumps({"provenance": provenance(__file__, None, ENV_ID, 1), "rows": rows}, indent=2) + "\n"
    )
    head = " | ".join(f"epoch {c}" for c in checkpoints)
    plateau = args.epochs >= 25
    extra = " mean(21-25) - mean(16-20) |" if plateau else ""
    print(f"\n| host | fidelity | {head} |{extra}\n|---|---|" + "---|" * (len(checkpoints) + plateau))
    for row in rows:
        cells = " | ".join(f"{row[f'epoch_{c}_mean']:.1%} ± {row[f'epoch_{c}_std']:.1%}" for c in checkpoints)
        if plateau:
            cells += f" | {row['plateau_gain_mean'] * 100:+.1f} ± {row['plateau_gain_std'] * 100:.1f} pts"
        print(f"| {row['architecture']} | {row['fidelity']} | {cells} |")


if __name__ == "__main__":
    main()
