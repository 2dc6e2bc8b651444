"""Train sb3-contrib's RecurrentPPO (an LSTM policy) on Esper's compact actions, then play one greedy episode.

    python examples/recurrent_ppo.py --steps 2000 --fidelity tiny --config impaired

The env is ``CompactActions`` (``Discrete(64)`` with 3 slots) inside ``MaskInObservation``, so the
legality mask is part of the observation. RecurrentPPO takes no masks: an illegal choice runs as
WAIT (a soft no-op) with ``info["action_valid"] = False``, which this script counts. At "tiny"
fidelity the defaults run for roughly 20 minutes on two cores.
"""

from __future__ import annotations

import argparse

from esper_agents.online.envs import make_online_env, make_vec_env

# esper_agents first: it hides the import banner of the old `gym` package that sb3 and d3rlpy import.
from esper_env import EnvSettings

# isort: split
import numpy as np
from sb3_contrib import RecurrentPPO

ENV_ID = "Esper-SynthCIFAR-v2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="env steps to train (all envs together)")
    parser.add_argument("--fidelity", default="tiny", help="data per epoch: test, tiny, fast, full")
    parser.add_argument("--max-epochs", type=int, default=25, help="epochs (env steps) per episode")
    parser.add_argument("--config", default="impaired", help="env preset (host and optimizer)")
    parser.add_argument("--n-envs", type=int, default=2, help="envs in parallel (one process each if > 1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    settings = EnvSettings(ENV_ID, config=args.config, fidelity=args.fidelity, max_epochs=args.max_epochs)

    # n copies of the "recurrent-ppo" stack; a SubprocVecEnv when n > 1 (hence the __main__ guard).
    venv = make_vec_env("recurrent-ppo", settings, n_envs=args.n_envs, seed=args.seed)
    model = RecurrentPPO(
        "MlpLstmPolicy", venv, n_steps=50, batch_size=50, n_epochs=4, ent_coef=0.01, seed=args.seed,
        policy_kwargs={"lstm_hidden_size": 128}, device="cpu",
    )  # fmt: skip
    model.learn(total_timesteps=args.steps)
    venv.close()

    # One greedy episode. The LSTM state is carried from step to step; episode_start (True only on
    # the first step) tells the policy to reset it.
    env = make_online_env("recurrent-ppo", settings)
    obs, info = env.reset(seed=1000)
    lstm_states, episode_start = None, np.ones((1,), dtype=bool)
    done, illegal, episode_return = False, 0, 0.0
    while not done:
        action, lstm_states = model.predict(
            obs, state=lstm_states, episode_start=episode_start, deterministic=True
        )
        obs, reward, terminated, truncated, info = env.step(action)
        episode_start = np.zeros((1,), dtype=bool)
        illegal += not info["action_valid"]
        episode_return += float(reward)
        done = terminated or truncated
    env.close()
    print(f"return: {episode_return:.3f}, illegal actions (ran as WAIT): {illegal}")
    print(f"final_val_accuracy={info['final_val_accuracy']:.4f} test_accuracy={info['test_accuracy']:.4f}")


if __name__ == "__main__":
    main()
