"""The ``bottleneck`` rule: it reads env v2's context (rent, host widths) and the learning curve."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import esper_env  # noqa: F401  (registers the ids)
from esper_agents.policies import get_policy
from esper_agents.policies.bottleneck import HARD_ACCURACY, MAX_RENT, OBSERVE_EPOCHS
from esper_env.instances import DISTRIBUTIONS, HELDOUT_SPLIT
from esper_env.lifecycle import Op
from esper_env.wrappers import CompactActions


def run(instance: int) -> tuple[list[tuple[int, str]], bool, object]:
    """The GERMINATEs of one 12-epoch episode, whether the task looked hard at the decision epoch,
    and the instance."""
    env = CompactActions(gym.make("Esper-Micro-v2", max_epochs=12, device="cpu"))
    policy = get_policy("bottleneck", epsilon=0.0, env=env)
    obs, info = env.reset(seed=0, options={"instance": instance})
    grown, done, hard_at_decision = [], False, False
    while not done:
        a = int(np.argmax(policy.greedy_probs(obs, info["action_mask"])))
        if env.actions[a].op == Op.GERMINATE:
            grown.append((info["epoch"], env.describe(a)))
        obs, _, terminated, truncated, info = env.step(a)
        done = terminated or truncated
        if not grown and info["epoch"] == OBSERVE_EPOCHS:
            hard_at_decision = info["val_accuracy"] < HARD_ACCURACY
    env.close()
    return grown, hard_at_decision, env.unwrapped.instance


@pytest.mark.parametrize("offset", range(8))
def test_it_widens_the_narrowest_slot_once_only_when_hard_and_affordable(offset: int) -> None:
    k = HELDOUT_SPLIT.start_level + offset
    grown, hard, inst = run(k)
    assert inst == DISTRIBUTIONS["bottlenecks"].draw(k)
    if hard and inst.rent < MAX_RENT:
        narrowest = min(range(3), key=lambda s: (inst.widths[s], s))
        assert len(grown) == 1 and grown[0][0] == OBSERVE_EPOCHS, grown
        assert f"slot={narrowest}, blueprint=widen_4x" in grown[0][1]
    else:
        assert grown == []


def test_both_branches_are_exercised() -> None:
    """The instances above include one that grows and one that does not (the test is not vacuous)."""
    outcomes = {bool(run(HELDOUT_SPLIT.start_level + k)[0]) for k in range(8)}
    assert outcomes == {True, False}
