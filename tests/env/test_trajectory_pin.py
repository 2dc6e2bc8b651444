"""A short episode's observations, masks and rewards, pinned to a committed file.

Refactors must not change what the env does: the same reset seed and actions give the same
trajectory. Regenerate the files only for a deliberate change of dynamics (and bump the env version):
``python -m tests.env.test_trajectory_pin [VARIANT]``.

A trajectory is bit for bit reproducible on one kind of CPU, not across kinds: oneDNN's and MKL's
AVX-512 kernels sum in another order than their AVX2 ones, which flips a borderline validation
prediction now and then (one image in 128 on "test", measured on an AMD EPYC against the machine that
recorded the first pin). So each pin has one variant per kernel family met so far
(``pinned_episode.json``: AVX2; ``pinned_episode.avx512.json``: AVX-512), and a run must match one of
them to within float rounding. A new kind of CPU records its own variant with the command above,
after checking on a known machine that the code under test still matches its pin.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np

import esper_env  # noqa: F401  (registers the ids)
from esper_env.wrappers import CompactActions

DATA = Path(__file__).parent / "data"
PINNED = DATA / "pinned_episode.json"
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
    from esper_agents.generation.collector import EnvSettings, collect_episode
    from esper_agents.policies import EpsilonGreedy, get_policy

    out = {}
    for name, (config, fidelity, epsilon) in PINNED_POLICIES.items():
        env = EnvSettings(env_id=ENV_ID, fidelity=fidelity, max_epochs=12).make(config)
        behavior = EpsilonGreedy(get_policy(name), epsilon=epsilon)
        record = collect_episode(env, behavior, seed=SEED, episode_id=name)
        out[name] = {"actions": record.actions.tolist(), "rewards": record.rewards.tolist()}
        env.close()
    return out


def pinned_variants() -> dict[str, dict]:
    """Every recorded variant of the pin, by file name."""
    return {p.name: json.loads(p.read_text()) for p in sorted(DATA.glob("pinned_episode*.json"))}


def matches_one_variant(check: Callable[[dict], None]) -> None:
    """Pass if ``check(pinned)`` passes for one recorded variant; otherwise fail with every mismatch."""
    failures = []
    for name, pinned in pinned_variants().items():
        try:
            check(pinned)
            return
        except AssertionError as err:
            failures.append(f"{name}: {err}")
    raise AssertionError("the trajectory matches no recorded variant:\n" + "\n".join(failures))


def test_scripted_episode_matches_the_pinned_trajectory() -> None:
    got = scripted_episode()
    assert len(set(got["action"])) > 2, "the script must exercise more than WAIT"

    def check(pinned: dict) -> None:
        assert got["action"] == pinned["action"], "the masks (and so the scripted actions) changed"
        assert got["mask"] == pinned["mask"]
        # Tolerance only for float rounding; a behaviour change moves these by far more.
        np.testing.assert_allclose(np.array(got["obs"]), np.array(pinned["obs"]), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(got["reward"], pinned["reward"], rtol=1e-4, atol=1e-5)
        for g, p in zip(got["components"], pinned["components"], strict=True):
            assert g.keys() == p.keys()
            for k in g:
                np.testing.assert_allclose(g[k], p[k], rtol=1e-4, atol=1e-5, err_msg=k)

    matches_one_variant(check)


def test_behavior_policies_log_the_pinned_episodes() -> None:
    got = policy_episodes()

    def check(pinned: dict) -> None:
        pinned = pinned["policies"]
        assert got.keys() == pinned.keys()
        for name in got:
            assert got[name]["actions"] == pinned[name]["actions"], name
            np.testing.assert_allclose(
                got[name]["rewards"], pinned[name]["rewards"], rtol=1e-4, atol=1e-5, err_msg=name
            )

    matches_one_variant(check)


def test_variants_pin_the_same_episodes() -> None:
    """The variants differ by kernel rounding only: same actions, masks and policies."""
    variants = list(pinned_variants().values())
    assert variants, "no pinned trajectory"
    for other in variants[1:]:
        assert other["action"] == variants[0]["action"]
        assert other["policies"].keys() == variants[0]["policies"].keys()
        for name, episode in other["policies"].items():
            assert episode["actions"] == variants[0]["policies"][name]["actions"], name


if __name__ == "__main__":
    import sys

    suffix = f".{sys.argv[1]}" if len(sys.argv) > 1 else ""
    path = DATA / f"pinned_episode{suffix}.json"
    path.write_text(json.dumps({**scripted_episode(), "policies": policy_episodes()}) + "\n")
    print(f"wrote {path}")
