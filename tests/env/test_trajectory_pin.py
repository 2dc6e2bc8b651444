"""A short episode's observations, masks and rewards, pinned to a committed file.

Refactors must not change what the env does: the same reset seed and actions give the same
trajectory. Regenerate the file only for a deliberate change of dynamics (and bump the env version):
``python -m tests.env.test_trajectory_pin``.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np

import esper_env  # noqa: F401  (registers the ids)
from esper_env.wrappers import CompactActions

PINNED = Path(__file__).parent / "data" / "pinned_episode.json"
ENV_ID = "Esper-SynthCIFAR-v1"
SEED = 7


def scripted_episode() -> dict[str, list]:
    """8 epochs at "test": germinate, then walk the legal actions by a fixed arithmetic rule."""
    env = CompactActions(gym.make(ENV_ID, fidelity="test", config="baseline", max_epochs=8))
    obs, info = env.reset(seed=SEED)
    out: dict[str, list] = {"obs": [obs.tolist()], "mask": [info["action_mask"].astype(int).tolist()],
                            "action": [], "reward": [], "components": []}  # fmt: skip
    step = 0
    done = False
    while not done:
        legal = np.flatnonzero(info["action_mask"])
        non_wait = legal[legal != 0]
        # A grow action on the first step, then every other step a legal action picked by index.
        if step % 2 == 0 and len(non_wait):
            action = int(non_wait[(step * 7919) % len(non_wait)])
        else:
            action = 0
        obs, reward, terminated, truncated, info = env.step(action)
        out["obs"].append(obs.tolist())
        out["mask"].append(info["action_mask"].astype(int).tolist())
        out["action"].append(action)
        out["reward"].append(float(reward))
        out["components"].append(
            {
                k: np.asarray(v, dtype=float).ravel().tolist()
                for k, v in sorted(info["reward_components"].items())
            }
        )
        done = terminated or truncated
        step += 1
    env.close()
    return out


#: Behavior policies whose logged episodes (what a pack holds) are pinned too: (preset, fidelity, epsilon).
PINNED_POLICIES = {
    "capacity": ("impaired", "test", 0.0), "baseline": ("baseline", "test", 0.3),
    "random": ("baseline", "test", 1.0), "anti-heuristic": ("baseline", "test", 0.2),
    "periodic": ("baseline", "test", 0.0), "early-intervener": ("baseline", "test", 0.1),
}  # fmt: skip


def policy_episodes() -> dict[str, dict[str, list]]:
    """One logged episode per pinned behavior policy, through the generation collector."""
    from esper_agents.generation.collector import collect_episode
    from esper_agents.policies import EpsilonGreedy, get_policy
    from esper_env.settings import EnvSettings
    from esper_env.wrappers import CompactActions

    out = {}
    for name, (config, fidelity, epsilon) in PINNED_POLICIES.items():
        env = CompactActions(
            EnvSettings(env_id=ENV_ID, config=config, fidelity=fidelity, max_epochs=12).make()
        )
        behavior = EpsilonGreedy(get_policy(name), epsilon=epsilon)
        record = collect_episode(env, behavior, seed=SEED, episode_id=name)
        out[name] = {"actions": record.actions.tolist(), "rewards": record.rewards.tolist()}
        env.close()
    return out


def test_scripted_episode_matches_the_pinned_trajectory() -> None:
    pinned = json.loads(PINNED.read_text())
    got = scripted_episode()
    assert got["action"] == pinned["action"], "the masks (and so the scripted actions) changed"
    assert got["mask"] == pinned["mask"]
    assert len(set(got["action"])) > 2, "the script must exercise more than WAIT"
    # Tolerance only for float summation order across CPUs; a behaviour change moves these by far more.
    np.testing.assert_allclose(np.array(got["obs"]), np.array(pinned["obs"]), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got["reward"], pinned["reward"], rtol=1e-4, atol=1e-5)
    for g, p in zip(got["components"], pinned["components"], strict=True):
        assert g.keys() == p.keys()
        for k in g:
            np.testing.assert_allclose(g[k], p[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_behavior_policies_log_the_pinned_episodes() -> None:
    pinned = json.loads(PINNED.read_text())["policies"]
    got = policy_episodes()
    assert got.keys() == pinned.keys()
    for name in got:
        assert got[name]["actions"] == pinned[name]["actions"], name
        np.testing.assert_allclose(
            got[name]["rewards"], pinned[name]["rewards"], rtol=1e-4, atol=1e-5, err_msg=name
        )


if __name__ == "__main__":
    PINNED.write_text(json.dumps({**scripted_episode(), "policies": policy_episodes()}) + "\n")
    print(f"wrote {PINNED}")
