"""Thousands of random actions, legal and illegal, through the env at the tests' NANO fidelity.

Every action the mask calls legal must execute (``action_valid`` True); every other one must run
as WAIT. Episodes are short so that resets, truncation and every lifecycle stage get exercised.
Legality does not depend on how well the host trains, so the smallest fidelity (64 images at 8x8)
checks the same property as a real one.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import esper_env  # noqa: F401  (registers the ids)
from esper_env import FactoredAction, Op
from esper_env.blueprints import BLUEPRINTS
from esper_env.spaces import WAIT_ACTION
from esper_env.wrappers import CompactActions
from tests.conftest import NANO

ENV = gym.make("Esper-SynthCIFAR-v2", fidelity=NANO, max_epochs=12, device="cpu")
COMPACT = CompactActions(gym.make("Esper-SynthCIFAR-v2", fidelity=NANO, max_epochs=12, device="cpu"))


def legal_action(env: gym.Env, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random legal (op, slot), other heads random (noop blueprint excluded)."""
    legal = env.unwrapped.legal_actions()
    ops, slots = np.nonzero(legal)
    k = rng.integers(len(ops))
    a = env.action_space.sample()
    a[0], a[1] = ops[k], slots[k]
    if a[0] == Op.GERMINATE and a[2] == 0:
        a[2] = rng.integers(1, len(BLUEPRINTS))
    return a


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), p_legal=st.floats(0.3, 0.95))
def test_random_factored_actions_follow_the_joint_mask(seed: int, p_legal: float) -> None:
    rng = np.random.default_rng(seed)
    ENV.action_space.seed(seed)
    ENV.reset(seed=seed)
    stages_seen = set()
    for _ in range(40):
        legal = ENV.unwrapped.legal_actions()
        a = legal_action(ENV, rng) if rng.random() < p_legal else ENV.action_space.sample()
        expected_valid = bool(legal[a[0], a[1]]) and not (a[0] == Op.GERMINATE and a[2] == 0)
        # The flat mask agrees with the joint legality on each head.
        mask = ENV.unwrapped.action_masks()
        if expected_valid:
            assert mask[a[0]] and (a[0] == Op.WAIT or mask[6 + a[1]])
        obs, reward, term, trunc, info = ENV.step(a)
        assert info["action_valid"] == expected_valid, (FactoredAction(*a).describe(), legal)
        if not expected_valid:
            assert np.array_equal(info["executed_action"], WAIT_ACTION.to_array())
        else:
            assert np.array_equal(info["executed_action"], FactoredAction(*a).canonical().to_array())
        assert np.isfinite(reward) and ENV.observation_space.contains(obs)
        stages_seen.update(info["slot_stages"])
        if term or trunc:
            ENV.reset(seed=int(rng.integers(2**16)))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16))
def test_compact_mask_is_exactly_what_executes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    _, info = COMPACT.reset(seed=seed)
    for _ in range(40):
        mask = info["action_mask"]
        pick_legal = rng.random() < 0.7
        pool = np.flatnonzero(mask if pick_legal else ~mask)
        if len(pool) == 0:
            pool = np.flatnonzero(mask)
        a = int(rng.choice(pool))
        _, _, term, trunc, info = COMPACT.step(a)
        assert info["action_valid"] == bool(mask[a]), COMPACT.describe(a)
        if term or trunc:
            _, info = COMPACT.reset(seed=int(rng.integers(2**16)))
