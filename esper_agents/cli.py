"""The ``esper`` command. Each subcommand lives in its own ``add_*_parser`` function."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence


def add_episode_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("episode", help="run one episode of a masked random agent and print its summary")
    p.add_argument("--env", default="Esper-SynthCIFAR-v0", help="environment id")
    p.add_argument("--fidelity", default="tiny", help="full, fast, tiny or test")
    p.add_argument("--config", default="baseline", help="environment preset")
    p.add_argument("--max-epochs", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--render", action="store_true", help="print the env after every step")
    p.set_defaults(func=run_episode)


def run_episode(args: argparse.Namespace) -> int:
    import gymnasium as gym
    import numpy as np

    import esper_env  # noqa: F401  (registers the ids)
    from esper_env.wrappers import CompactActions

    env = CompactActions(
        gym.make(args.env, fidelity=args.fidelity, config=args.config, max_epochs=args.max_epochs,
                 render_mode="ansi" if args.render else None)
    )  # fmt: skip
    rng = np.random.default_rng(args.seed)
    obs, info = env.reset(seed=args.seed)
    done = False
    while not done:
        mask = info["action_mask"]
        # WAIT most of the time, otherwise a uniformly random legal action.
        action = 0 if rng.random() < 0.7 else int(rng.choice(np.flatnonzero(mask)))
        obs, reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        if args.render:
            print(env.describe(action), f"reward={reward:+.3f}")
            print(env.render())
    keys = ("termination_reason", "final_val_accuracy", "best_val_accuracy", "test_accuracy", "host_params",
            "seed_params", "seeds_created", "seeds_fossilized", "seeds_pruned", "episode_return", "episode_length")  # fmt: skip
    print(json.dumps({k: info[k] for k in keys}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="esper", description="Esper: grow neural networks with RL.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_episode_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
