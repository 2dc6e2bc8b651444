"""``esper_env.sample_mask``: the mask ``action_space.sample(mask=...)`` takes, per head or exact."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from esper_env import EsperEnv, FactoredAction, Op, sample_mask
from esper_env.wrappers import CompactActions
from tests.conftest import NANO

DRAWS = 2000


def nano_env() -> EsperEnv:
    return EsperEnv(fidelity=NANO, max_epochs=6, num_slots=3)


def _germinated(env) -> None:
    """Put the base env in a state where only some (op, slot) pairs are legal."""
    env.reset(seed=0)
    env.step(FactoredAction(Op.GERMINATE, 1, blueprint=5).to_array())


def test_base_env_samples_are_per_head_legal() -> None:
    env = nano_env()
    _germinated(env)
    mask = sample_mask(env)
    assert isinstance(mask, tuple) and len(mask) == len(env.action_space.nvec)
    assert all(m.dtype == np.int8 for m in mask)
    assert [len(m) for m in mask] == list(env.action_space.nvec)
    flat = env.action_masks()
    assert np.array_equal(np.concatenate(mask).astype(bool), flat)
    legal = env.legal_actions()
    assert not legal.all(), "the state must exclude some (op, slot) pairs"
    env.action_space.seed(0)
    ops = set()
    for _ in range(DRAWS):
        action = env.action_space.sample(mask=mask)
        assert all(m[v] == 1 for m, v in zip(mask, action, strict=True)), action
        ops.add(int(action[0]))
    assert ops == set(np.flatnonzero(mask[0])), "every per-head-legal op is drawn"
    # The slot head has no legal value outside the slots some non-WAIT op may use.
    assert set(np.flatnonzero(mask[1])) == set(np.flatnonzero(legal[1:].any(axis=0)))


def test_compact_samples_are_exactly_legal() -> None:
    env = CompactActions(nano_env())
    env.reset(seed=0)
    env.step(env.index_of(FactoredAction(Op.GERMINATE, 1, blueprint=5)))
    mask = sample_mask(env)
    assert mask.dtype == np.int8 and mask.shape == (env.action_space.n,)
    assert np.array_equal(mask.astype(bool), env.action_masks())
    legal = env.action_masks()
    assert 1 < legal.sum() < len(legal)
    env.action_space.seed(0)
    drawn = {int(env.action_space.sample(mask=mask)) for _ in range(DRAWS)}
    assert all(legal[i] for i in drawn)
    assert drawn == set(np.flatnonzero(legal)), "every legal index is drawn"


def test_rejects_other_spaces() -> None:
    env = nano_env()
    env.action_space = spaces.Box(0.0, 1.0, (2,))
    with pytest.raises(TypeError, match="Box"):
        sample_mask(env)
