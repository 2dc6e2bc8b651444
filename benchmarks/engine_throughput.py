"""Engine throughput against a plain PyTorch loop, measured in the same run.

    python benchmarks/engine_throughput.py [--fidelity tiny] [--config baseline] [--repeats 5] [--out DIR]

Prints (and writes to OUT/engine_throughput_FIDELITY_CONFIG.json):
* images/s of a plain PyTorch training loop: the same host, data, batch iterator and optimizer;
* images/s of ``TrainingEngine.train_epoch`` with no seed, and the ratio (promise: <= 1.10x slower);
* the extra cost of one TRAINING seed and of one BLENDING seed (vs the seedless engine);
* validation time with no seed and with one measured (blending) seed;
* snapshot + restore time in ms (promise: < 50 ms for HostCNN).

Plain and engine epochs are interleaved round by round and medians are reported, so a busy
machine slows both alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from _common import ENV_ID, add_preset_arguments, add_results_argument, provenance

from esper_env.configs import get_config, get_fidelity
from esper_env.data import ImageSplits, iterate_batches, load_dataset
from esper_env.engine import TrainingEngine, build_optimizer
from esper_env.hosts import build_host
from esper_env.lifecycle import Tempo


def plain_epoch_fn(
    config_id: str, data: ImageSplits, seed: int, memory_format: torch.memory_format
) -> Callable[[], None]:
    """One epoch of the loop a PyTorch user would write for this host and data."""
    config = get_config(config_id)
    model = build_host(config.architecture, data.num_classes, seed=seed).to(memory_format=memory_format)
    opt = build_optimizer(config, list(model.parameters()))
    gen = torch.Generator().manual_seed(seed)

    def epoch() -> None:
        model.train()
        for xb, yb in iterate_batches(
            data.train_x, data.train_y, config.batch_size, generator=gen, mean=data.mean, std=data.std,
            augment=True, shuffle=True,
        ):  # fmt: skip
            loss = F.cross_entropy(model(xb.contiguous(memory_format=memory_format)), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return epoch


def engine_with(stage: str, config_id: str, data: ImageSplits, seed: int) -> TrainingEngine:
    engine = TrainingEngine(config_id, data, device="cpu", seed=seed)
    if stage in ("training", "blending"):
        engine.germinate(1, "conv_light", tempo=Tempo.SLOW)
        engine.advance(1)
    if stage == "blending":
        for _ in range(engine.gates.min_training_epochs):
            engine.run_epoch()
        engine.advance(1)
    return engine


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    add_preset_arguments(parser)
    parser.add_argument("--repeats", type=int, default=5, help="rounds of plain and engine epochs (median)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: leave torch alone)"
    )
    parser.add_argument("--seed", type=int, default=0, help="RNG seed")
    add_results_argument(parser)
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be a positive integer, got {args.repeats}")
    if args.threads:
        torch.set_num_threads(args.threads)
    fidelity = get_fidelity(args.fidelity)
    data = load_dataset("synthcifar", fidelity)
    n = len(data.train_y)

    engines = {s: engine_with(s, args.config, data, args.seed) for s in ("none", "training", "blending")}
    # The plain loop uses the engine's memory format, so the ratio is the engine's own overhead;
    # the default (contiguous) layout is timed too, for reference.
    plain = plain_epoch_fn(args.config, data, args.seed, engines["none"].memory_format)
    plain_contiguous = plain_epoch_fn(args.config, data, args.seed, torch.contiguous_format)
    for fn in (plain, plain_contiguous, *(e.train_epoch for e in engines.values())):  # warm-up
        fn()
    times: dict[str, list[float]] = {"plain": [], "plain_contiguous": [], **{s: [] for s in engines}}
    val_times: dict[str, list[float]] = {"none": [], "blending": []}
    for _ in range(args.repeats):
        times["plain"].append(timed(plain))
        times["plain_contiguous"].append(timed(plain_contiguous))
        for s, e in engines.items():
            times[s].append(timed(e.train_epoch))
        for s, val in val_times.items():
            val.append(timed(engines[s].validate))
    med = {k: statistics.median(v) for k, v in times.items()}
    vmed = {k: statistics.median(v) for k, v in val_times.items()}

    engine = engines["blending"]
    snap_ms = []
    for _ in range(50):
        t0 = time.perf_counter()
        engine.restore(engine.snapshot())
        snap_ms.append((time.perf_counter() - t0) * 1000)

    result = {
        "provenance": provenance(__file__, None, ENV_ID, torch.get_num_threads()),
        "fidelity": fidelity.name,
        "config": args.config,
        "architecture": get_config(args.config).architecture,
        "train_images": n,
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "plain_images_per_s": n / med["plain"],
        "plain_contiguous_images_per_s": n / med["plain_contiguous"],
        "engine_images_per_s": n / med["none"],
        "engine_slowdown": med["none"] / med["plain"],
        "training_seed_extra": med["training"] / med["none"] - 1,
        "blending_seed_extra": med["blending"] / med["none"] - 1,
        "validation_ms_no_seed": vmed["none"] * 1000,
        "validation_ms_one_measured_seed": vmed["blending"] * 1000,
        "snapshot_restore_ms": statistics.median(snap_ms),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"engine_throughput_{fidelity.name}_{args.config}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"# Engine throughput ({result['architecture']}, {fidelity.name} fidelity, {n} images/epoch, "
          f"{result['threads']} threads, median of {args.repeats})\n")  # fmt: skip
    print("| measure | value | promise |\n|---|---|---|")
    print(
        f"| plain PyTorch loop, channels_last (as the engine) | {result['plain_images_per_s']:,.0f} img/s | |"
    )
    print(f"| plain PyTorch loop, default layout | {result['plain_contiguous_images_per_s']:,.0f} img/s | |")
    print(f"| engine, no seed | {result['engine_images_per_s']:,.0f} img/s | |")
    print(f"| engine slowdown vs plain | {result['engine_slowdown']:.3f}x | <= 1.10x |")
    print(f"| extra cost, one TRAINING seed | {result['training_seed_extra']:+.1%} | |")
    print(f"| extra cost, one BLENDING seed | {result['blending_seed_extra']:+.1%} | |")
    print(f"| validation, no seed / one measured seed | {result['validation_ms_no_seed']:.1f} ms / "
          f"{result['validation_ms_one_measured_seed']:.1f} ms | <= 1 extra pass per seed |")  # fmt: skip
    print(f"| snapshot + restore | {result['snapshot_restore_ms']:.2f} ms | < 50 ms |")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
