"""Render the README's picture: the last step of a grown episode, as the env's rgb_array render.

    python docs/render_episode.py [--policy capacity] [--config impaired] [--fidelity tiny] [--seed 1000]
        [--out docs/grown_episode.png]

The default heuristic acts greedily through ``CompactActions`` on one episode; the frame after its
last step (slots, their stages and blueprints, the accuracy curve) is saved as a PNG (about a
minute on two cores at "tiny").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym
import numpy as np

import esper_env  # noqa: F401  (registers the env ids)
from esper_agents.policies import DEFAULT_HEURISTIC, get_policy
from esper_env.wrappers import CompactActions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", default=DEFAULT_HEURISTIC)
    parser.add_argument("--config", default="impaired")
    parser.add_argument("--fidelity", default="tiny")
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("grown_episode.png"))
    args = parser.parse_args()

    env = CompactActions(gym.make("Esper-SynthCIFAR-v2", config=args.config, fidelity=args.fidelity,
                                  render_mode="rgb_array"))  # fmt: skip
    policy = get_policy(args.policy, epsilon=0.0, env=env)
    obs, info = env.reset(seed=args.seed)
    done = False
    while not done:
        action = int(np.argmax(policy.greedy_probs(obs, info["action_mask"])))
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    frame = env.render()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.imsave(args.out, frame)
    print(f"{args.out}: final val acc {info['final_val_accuracy']:.3f}, "
          f"{info['seeds_fossilized']} seed(s) fossilized")  # fmt: skip


if __name__ == "__main__":
    main()
