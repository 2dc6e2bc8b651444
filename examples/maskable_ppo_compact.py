"""Train sb3-contrib's MaskablePPO on Esper with the compact action set, then play one greedy episode.

    python examples/maskable_ppo_compact.py --steps 2000 --fidelity tiny --config impaired

``CompactActions`` turns the factored action space into ``Discrete(64)`` (3 slots) with an exact
legality mask; ``MaskInObservation`` also appends that mask to the observation. The env answers
``action_masks()``, which MaskablePPO reads during rollouts and ``get_action_masks`` at predict time,
so the agent never picks an illegal action. At "tiny" fidelity a step (one training epoch of the
host) takes about a second per core: the defaults run for roughly 20 minutes on two cores.
"""

from __future__ import annotations

import argparse

from esper_agents.online.envs import make_online_env, make_vec_env

# esper_agents first: it hides the import banner of the old `gym` package that sb3 and d3rlpy import.
from esper_env import EnvSettings

# isort: split
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.utils import get_action_masks

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

    # make_vec_env builds n copies of the "maskable-ppo" stack (CompactActions + MaskInObservation),
    # in a DummyVecEnv, or a SubprocVecEnv when n > 1 (hence the __main__ guard below).
    venv = make_vec_env("maskable-ppo", settings, n_envs=args.n_envs, seed=args.seed)
    # Esper's episodes are short (25 steps by default): small rollouts, frequent updates. The
    # policy is a small MLP, which runs fastest on the CPU (the env trains its host on CUDA if any).
    model = MaskablePPO(
        "MlpPolicy", venv, n_steps=50, batch_size=50, n_epochs=4, ent_coef=0.01, seed=args.seed, device="cpu"
    )
    model.learn(total_timesteps=args.steps)
    venv.close()

    # One greedy evaluation episode in a fresh, unvectorized env of the same stack.
    env = make_online_env("maskable-ppo", settings)
    obs, info = env.reset(seed=1000)
    done, illegal, episode_return = False, 0, 0.0
    while not done:
        action, _ = model.predict(obs, action_masks=get_action_masks(env), deterministic=True)
        obs, reward, terminated, truncated, info = env.step(action)
        illegal += not info["action_valid"]
        episode_return += float(reward)
        done = terminated or truncated
    env.close()
    # The last step's info carries the episode summary.
    print(f"return: {episode_return:.3f}, illegal actions: {illegal}, end: {info['termination_reason']}")
    print(f"final_val_accuracy={info['final_val_accuracy']:.4f} test_accuracy={info['test_accuracy']:.4f}")


if __name__ == "__main__":
    main()
