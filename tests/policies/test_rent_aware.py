"""The ``rent-aware``, ``lr-aware`` and ``curve-aware`` rules: they read env v2's context (and the curve) and widen where it pays."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import esper_env  # noqa: F401  (registers the ids)
from esper_agents.policies import get_policy
from esper_agents.policies.rent_aware import (
    CURVE_EPOCH,
    CURVE_SLOT,
    MAX_FIRST_WIDTH,
    MAX_LEARNING_RATE,
    MAX_RENT,
)
from esper_env.instances import DISTRIBUTIONS, HELDOUT_SPLIT
from esper_env.lifecycle import Op, Stage
from esper_env.wrappers import CompactActions


def run(
    instance: int, policy_id: str = "rent-aware", instances: str = "bottlenecks"
) -> tuple[list[tuple[int, str]], list[str], object]:
    """The GERMINATEs of one 10-epoch episode, the final slot stages, and the instance."""
    env = CompactActions(gym.make("Esper-Micro-v3", max_epochs=10, device="cpu", instances=instances))
    policy = get_policy(policy_id, epsilon=0.0, env=env)
    obs, info = env.reset(seed=0, options={"instance": instance})
    grown, done = [], False
    while not done:
        a = int(np.argmax(policy.greedy_probs(obs, info["action_mask"])))
        if env.actions[a].op == Op.GERMINATE:
            grown.append((info["epoch"], env.describe(a)))
        obs, _, terminated, truncated, info = env.step(a)
        done = terminated or truncated
    env.close()
    return grown, info["slot_stages"], env.unwrapped.instance


@pytest.mark.parametrize("offset", range(6))
def test_it_widens_the_first_block_at_once_unless_the_rent_is_high(offset: int) -> None:
    k = HELDOUT_SPLIT.start_level + offset
    grown, stages, inst = run(k)
    assert inst == DISTRIBUTIONS["bottlenecks"].draw(k)
    if inst.rent < MAX_RENT:
        assert len(grown) == 1 and grown[0][0] == 0 and "slot=0, blueprint=widen_4x" in grown[0][1], grown
        assert stages[0] == Stage.FOSSILIZED.name
    else:
        assert grown == [] and set(stages) == {Stage.DORMANT.name}


def test_both_branches_are_exercised() -> None:
    """The instances above include a cheap one and an expensive one (the test is not vacuous)."""
    rents = {
        DISTRIBUTIONS["bottlenecks"].draw(HELDOUT_SPLIT.start_level + k).rent < MAX_RENT for k in range(6)
    }
    assert rents == {True, False}


def lr_aware_grows(inst: object) -> bool:
    return (
        inst.learning_rate <= MAX_LEARNING_RATE and inst.widths[0] <= MAX_FIRST_WIDTH and inst.rent < MAX_RENT
    )


@pytest.mark.parametrize("offset", range(6))
def test_lr_aware_widens_the_first_block_at_once_where_the_host_learns_slowly(offset: int) -> None:
    k = HELDOUT_SPLIT.start_level + offset
    grown, stages, inst = run(k, "lr-aware", "optimizers")
    assert inst == DISTRIBUTIONS["optimizers"].draw(k)
    if lr_aware_grows(inst):
        assert len(grown) == 1 and grown[0][0] == 0 and "slot=0, blueprint=widen_4x" in grown[0][1], grown
        assert stages[0] == Stage.FOSSILIZED.name
    else:
        assert grown == [] and set(stages) == {Stage.DORMANT.name}


def test_lr_aware_branches_are_exercised_and_it_never_grows_without_context() -> None:
    dist = DISTRIBUTIONS["optimizers"]
    assert {lr_aware_grows(dist.draw(HELDOUT_SPLIT.start_level + k)) for k in range(6)} == {True, False}
    env = CompactActions(gym.make("Esper-SynthCIFAR-v1", config="impaired", fidelity="test", max_epochs=3))
    policy = get_policy("lr-aware", epsilon=0.0, env=env)
    obs, info = env.reset(seed=0)
    chosen = env.actions[int(np.argmax(policy.greedy_probs(obs, info["action_mask"])))]
    assert chosen.op == Op.WAIT  # v1 has no context: the rule cannot read the learning rate


def test_curve_aware_reads_the_curve_where_lr_aware_waits() -> None:
    """Held-out instances 0 (SGD at 0.003) and 16 (Adam at 0.003) look alike to ``lr-aware`` (a
    64-wide first block: it waits on both); after 2 epochs the SGD host is still near chance and
    the Adam one is not, so ``curve-aware`` widens the last block of the first only."""
    sgd, adam = HELDOUT_SPLIT.start_level, HELDOUT_SPLIT.start_level + 16
    dist = DISTRIBUTIONS["optimizers"]
    assert [dist.draw(k).optimizer for k in (sgd, adam)] == ["SGD", "Adam"]
    assert not lr_aware_grows(dist.draw(sgd)) and not lr_aware_grows(dist.draw(adam))
    grown, stages, _ = run(sgd, "curve-aware", "optimizers")
    assert len(grown) == 1 and grown[0][0] == CURVE_EPOCH, grown
    assert f"slot={CURVE_SLOT}, blueprint=widen_4x" in grown[0][1]
    assert stages[CURVE_SLOT] != Stage.DORMANT.name  # on its way through the lifecycle (10 epochs)
    assert run(adam, "curve-aware", "optimizers")[0] == []


@pytest.mark.parametrize("offset", [2, 3, 4, 5])
def test_curve_aware_plays_lr_aware_where_lr_aware_grows_or_the_rate_is_fast(offset: int) -> None:
    k = HELDOUT_SPLIT.start_level + offset
    inst = DISTRIBUTIONS["optimizers"].draw(k)
    assert lr_aware_grows(inst) or inst.learning_rate > MAX_LEARNING_RATE
    assert run(k, "curve-aware", "optimizers")[:2] == run(k, "lr-aware", "optimizers")[:2]
