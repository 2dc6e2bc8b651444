"""The warm start of maskable-ppo-options-bc: the teacher's decisions as options, and their clone."""

from __future__ import annotations

import numpy as np
import pytest

from esper_agents.common.options import WAIT_BLUEPRINT
from esper_agents.online.warm_start import clone_into, teacher_decisions
from esper_env.blueprints import BLUEPRINTS
from esper_env.settings import EnvSettings

ALGO = "maskable-ppo-options-bc"
SETTINGS = EnvSettings(env_id="Esper-Micro-v3", max_epochs=9, instances="bottlenecks")


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    return teacher_decisions(ALGO, SETTINGS, "rent-aware", episodes=6, seed=0, gamma=0.99)


def test_the_teacher_grows_widen_4x_in_slot_0_at_once_where_the_rent_is_low(
    data: dict[str, np.ndarray],
) -> None:
    grow = np.array([0, BLUEPRINTS.index("widen_4x")])
    grows = [i for i, a in enumerate(data["actions"]) if a[1] != WAIT_BLUEPRINT]
    assert grows and all((data["actions"][i] == grow).all() for i in grows)
    assert len(data["obs"]) == len(data["actions"]) == len(data["masks"]) == len(data["returns"])
    # every label is allowed by the masks it was recorded with (WAIT's ignored slot included)
    for action, mask in zip(data["actions"], data["masks"]):
        assert mask[action[0]] and mask[3 + action[1]]
    # a graft is one decision of 7 epochs: a 9-epoch episode is 3 decisions with one, 9 without
    assert len(data["actions"]) == 3 * len(grows) + 9 * (6 - len(grows))


def test_the_clone_acts_as_the_teacher(data: dict[str, np.ndarray]) -> None:
    from esper_agents.online.envs import make_online_env

    sb3 = pytest.importorskip("sb3_contrib")
    env = make_online_env(ALGO, SETTINGS)
    model = sb3.MaskablePPO("MlpPolicy", env, seed=0, device="cpu")
    before = model.predict(data["obs"], deterministic=True, action_masks=data["masks"])[0]
    result = clone_into(model, data, steps=200, seed=0)
    assert result["agreement"] == 1.0 and result["nll"] < 0.1
    assert np.mean(np.all(before == data["actions"], axis=1)) < 1.0  # it was not the teacher before
    with pytest.raises(ValueError, match="steps"):
        clone_into(model, data, steps=0)
    with pytest.raises(ValueError, match="episodes"):
        teacher_decisions(ALGO, SETTINGS, "rent-aware", episodes=0, seed=0, gamma=0.99)


def test_the_best_heuristic_teacher_is_the_registry_entrys_heuristic() -> None:
    from esper_agents.online.algorithms import BEST_HEURISTIC, FALLBACK_TEACHER, get_online_algorithm
    from esper_agents.online.warm_start import resolve_teacher

    micro = EnvSettings(env_id="Esper-Micro-v3", fidelity="micro", max_epochs=25, instances="bottlenecks")
    assert get_online_algorithm(ALGO).warm_start == BEST_HEURISTIC
    assert resolve_teacher(BEST_HEURISTIC, micro) == "rent-aware"
    assert resolve_teacher(BEST_HEURISTIC, micro.replace(instances="optimizers")) == "curve-aware"
    assert resolve_teacher("capacity", micro) == "capacity"  # a named policy is itself
    # no entry measured for 9-epoch episodes: the fallback
    assert resolve_teacher(BEST_HEURISTIC, SETTINGS) == FALLBACK_TEACHER == "rent-aware"
