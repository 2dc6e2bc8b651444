"""The fast-tier prototype of the feasibility study (docs/FAST_TIER.md) keeps working on the engine."""

from __future__ import annotations

import importlib
from types import ModuleType

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from esper_env.configs import Fidelity

FIDELITY = Fidelity("micro4", 1024, 256, 256, 4)


@pytest.fixture
def prototype() -> ModuleType:
    """The prototype module (benchmarks/ is on the path through this folder's conftest)."""
    return importlib.import_module("_fast_tier_prototype")


def episode(prototype: ModuleType, seed: int) -> tuple[list[float], dict]:
    env = prototype.FastEsperEnv(prototype.draw_instance(3), FIDELITY, max_epochs=5)
    env.reset(seed=seed)
    rewards, info = [], {}
    for t in range(5):
        action = np.zeros(8, dtype=np.int64)
        if t == 0:
            action[:3] = (1, 0, 15)  # GERMINATE widen_4x in slot 0
        elif t < 4:
            action[0] = 2  # ADVANCE
        _, reward, _, _, info = env.step(action)
        rewards.append(float(reward))
    return rewards, info


def test_an_instance_grows_and_replays_bit_for_bit(prototype: ModuleType) -> None:
    rewards, info = episode(prototype, 0)
    assert info["termination_reason"] == "max_epochs" and info["seeds_created"] == 1
    assert info["slot_stages"][0] != "DORMANT"
    assert episode(prototype, 0)[0] == rewards


def test_instances_are_a_function_of_the_index_and_pass_the_checker(prototype: ModuleType) -> None:
    assert prototype.draw_instance(7) == prototype.draw_instance(7)
    with pytest.raises(ValueError, match="-1"):
        prototype.draw_instance(-1)
    check_env(
        prototype.FastEsperEnv(prototype.draw_instance(3), FIDELITY, max_epochs=3), skip_render_check=True
    )
