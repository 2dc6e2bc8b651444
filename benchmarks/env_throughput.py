"""Env step time against a plain training epoch, and vector-env scaling, measured in one run.

    python benchmarks/env_throughput.py [--fidelity tiny] [--config baseline] [--steps 6] [--out DIR]

Prints (and writes to OUT/env_throughput_FIDELITY_CONFIG.json):
* one ``EsperEnv.step`` (WAIT, no seed) against one epoch of a plain PyTorch loop on the same
  host and data, where the plain epoch is what a user's loop does per epoch: train on the
  training images, then evaluate on the validation images (promise: <= 1.10x);
* steps per second of ``make_vec(..., num_envs=2, vectorization_mode="async")`` against
  ``num_envs=1`` (both one torch thread per worker; promise: >= 1.6x on two cores), and against
  one in-process env with torch's default threads, for reference.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from _common import ENV_ID, add_preset_arguments, add_results_argument, provenance

import esper_env  # noqa: F401  (registers the ids)
from esper_env.configs import get_config, get_fidelity
from esper_env.data import iterate_batches, load_dataset
from esper_env.engine import build_optimizer
from esper_env.hosts import build_host
from esper_env.spaces import WAIT_ACTION


def plain_epoch_seconds(config_id: str, fidelity: str, rounds: int) -> list[float]:
    config = get_config(config_id)
    data = load_dataset("synthcifar", fidelity)
    fmt = torch.channels_last  # the engine's layout, so the ratio is the env's own overhead
    model = build_host(config.architecture, data.num_classes, seed=0).to(memory_format=fmt)
    opt = build_optimizer(config, list(model.parameters()))
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(rounds + 1):
        t0 = time.perf_counter()
        model.train()
        for xb, yb in iterate_batches(data.train_x, data.train_y, config.batch_size, generator=gen,
                                      mean=data.mean, std=data.std, augment=True, shuffle=True):  # fmt: skip
            loss = F.cross_entropy(model(xb.contiguous(memory_format=fmt)), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            correct = 0
            for xb, yb in iterate_batches(data.val_x, data.val_y, 512, generator=gen, mean=data.mean,
                                          std=data.std, augment=False, shuffle=False):  # fmt: skip
                correct += int((model(xb.contiguous(memory_format=fmt)).argmax(1) == yb).sum())
        out.append(time.perf_counter() - t0)
    return out[1:]  # the first round warms up


def env_step_seconds(config_id: str, fidelity: str, rounds: int, max_epochs: int) -> list[float]:
    # The same thread count as the plain loop in this process, so the ratio is the env's own overhead.
    env = gym.make(ENV_ID, config=config_id, fidelity=fidelity, max_epochs=max_epochs, device="cpu",
                   num_threads=torch.get_num_threads())  # fmt: skip
    env.reset(seed=0)
    wait = WAIT_ACTION.to_array()
    out = []
    for _ in range(rounds + 1):
        t0 = time.perf_counter()
        _, _, term, trunc, _ = env.step(wait)
        out.append(time.perf_counter() - t0)
        if term or trunc:
            env.reset()
    return out[1:]


def vector_steps_per_second(num_envs: int, mode: str, config_id: str, fidelity: str, steps: int) -> float:
    envs = gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode=mode, config=config_id, fidelity=fidelity,
                        max_epochs=steps + 2, device="cpu")  # fmt: skip
    try:
        envs.reset(seed=0)
        actions = np.stack([WAIT_ACTION.to_array()] * num_envs)
        envs.step(actions)  # warm-up
        t0 = time.perf_counter()
        for _ in range(steps):
            envs.step(actions)
        return num_envs * steps / (time.perf_counter() - t0)
    finally:
        envs.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    add_preset_arguments(parser)
    parser.add_argument("--steps", type=int, default=6, help="measured steps per configuration")
    add_results_argument(parser)
    args = parser.parse_args()
    if args.steps < 1:
        parser.error(f"--steps must be a positive integer, got {args.steps}")
    fidelity = get_fidelity(args.fidelity).name

    # Interleave plain epochs and env steps so background load affects both alike.
    plain, step = [], []
    for _ in range(args.steps):
        plain += plain_epoch_seconds(args.config, fidelity, 1)
        step += env_step_seconds(args.config, fidelity, 1, max_epochs=25)
    one_async = vector_steps_per_second(1, "async", args.config, fidelity, args.steps)
    two_async = vector_steps_per_second(2, "async", args.config, fidelity, args.steps)
    in_process = 1.0 / statistics.median(step)

    result = {
        "provenance": provenance(__file__, None, ENV_ID, torch.get_num_threads()),
        "fidelity": fidelity,
        "config": args.config,
        "threads_in_process": torch.get_num_threads(),
        "plain_epoch_s": statistics.median(plain),
        "env_step_s": statistics.median(step),
        "step_over_plain": statistics.median(step) / statistics.median(plain),
        "async1_steps_per_s": one_async,
        "async2_steps_per_s": two_async,
        "async2_over_async1": two_async / one_async,
        "in_process_steps_per_s": in_process,
        "async2_over_in_process": two_async / in_process,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"env_throughput_{fidelity}_{args.config}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"# Env throughput ({args.config}, {fidelity} fidelity, median of {args.steps})\n")
    print("| measure | value | promise |\n|---|---|---|")
    print(f"| plain epoch (train + validate) | {result['plain_epoch_s'] * 1000:.0f} ms | |")
    print(f"| env step (WAIT, no seed) | {result['env_step_s'] * 1000:.0f} ms | |")
    print(f"| env step / plain epoch | {result['step_over_plain']:.3f}x | <= 1.10x |")
    print(f"| 1 async env | {one_async:.2f} steps/s | |")
    print(f"| 2 async envs | {two_async:.2f} steps/s | |")
    print(f"| 2 async / 1 async | {result['async2_over_async1']:.2f}x | >= 1.6x |")
    print(f"| 2 async / 1 in-process env ({result['threads_in_process']} threads) | "
          f"{result['async2_over_in_process']:.2f}x | (reference) |")  # fmt: skip
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
