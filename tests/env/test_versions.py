"""Env versions: the v0 ids build v0's env (13 blueprints, linear rent, seed lr 1x) beside v1 and
v2; v2 is v1 with the task's context appended to the observation (tests/env/test_context.py); v3
changes the fast tier's MLP hosts only and registers its ids alone (tests/env/test_pricing.py)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import esper_env
from esper_env.blueprints import BLUEPRINTS, ORIGINAL_BLUEPRINTS, blueprints_for
from esper_env.datasets import env_version
from esper_env.rewards import RewardConfig, get_reward_config, relabel
from esper_env.settings import EnvSettings
from esper_env.spaces import FactoredAction
from esper_env.versions import CURRENT_VERSION, VERSIONS, dynamics, same_dynamics
from esper_env.wrappers import CompactActions

V0 = "Esper-SynthCIFAR-v0"


def make(env_id: str, **kwargs):
    return gym.make(env_id, fidelity="test", max_epochs=3, device="cpu", **kwargs)


def test_env_ids_list_both_versions() -> None:
    for name in ("Esper-CIFAR10", "Esper-CIFAR100", "Esper-SynthCIFAR"):
        assert f"{name}-v0" in esper_env.ENV_IDS and f"{name}-v1" in esper_env.ENV_IDS
        assert f"{name}-v2" in esper_env.ENV_IDS
    assert {env_version(i) for i in esper_env.ENV_IDS} == set(VERSIONS) == {0, 1, 2, 3}
    assert CURRENT_VERSION == 3 and env_version("Esper-SynthCIFAR-v1") == 1 and env_version(V0) == 0
    assert env_version("Esper-SynthCIFAR-v2") == 2 and env_version("Esper-Micro-v3") == 3
    assert env_version("Esper-Micro-v2") == 2
    with pytest.raises(ValueError, match="unknown env id 'Esper-SynthCIFAR-v3'"):
        env_version("Esper-SynthCIFAR-v3")
    with pytest.raises(ValueError, match="unknown env version 7; valid env versions are: 3, 2, 1, 0"):
        dynamics(7)


def test_v2_has_v1s_dynamics_and_v0_does_not() -> None:
    assert same_dynamics(1, 2) and same_dynamics(2, 1) and same_dynamics(2, 2)
    assert not same_dynamics(0, 2) and not same_dynamics(0, 1) and not same_dynamics(2, 3)
    assert dynamics(2).context and not dynamics(1).context and not dynamics(0).context
    assert get_reward_config("shaped", version=1) == get_reward_config("shaped", version=2) == RewardConfig()
    with pytest.raises(ValueError, match="unknown env version 9"):
        same_dynamics(1, 9)


def test_v0_has_v0_spaces() -> None:
    assert blueprints_for(0) == ORIGINAL_BLUEPRINTS and len(ORIGINAL_BLUEPRINTS) == 13
    assert blueprints_for(1) == BLUEPRINTS and len(BLUEPRINTS) == 16
    v0, v1, v2 = make(V0), make("Esper-SynthCIFAR-v1"), make("Esper-SynthCIFAR-v2")
    assert v0.unwrapped.version == 0 and v1.unwrapped.version == 1 and v2.unwrapped.version == 2
    assert v0.action_space.nvec.tolist() == [6, 3, 13, 4, 3, 3, 4, 5]
    assert v1.action_space.nvec.tolist() == v2.action_space.nvec.tolist() == [6, 3, 16, 4, 3, 3, 4, 5]
    # v2 appends 4 context features and 2 per slot after v1's.
    assert v2.observation_space.shape[0] == v1.observation_space.shape[0] + 4 + 2 * 3 == 147
    assert list(v2.unwrapped.observation_schema)[: len(v1.unwrapped.observation_schema)] == list(
        v1.unwrapped.observation_schema
    )
    schema = v0.unwrapped.observation_schema
    for k in range(3):
        hot = schema[f"slot{k}/blueprint"]
        assert hot.stop - hot.start == 13
    assert v0.observation_space.shape[0] == v1.observation_space.shape[0] - 3 * 3 == 128
    obs, info = v0.reset(seed=0)
    assert obs.shape == v0.observation_space.shape and len(info["action_mask"]) == sum(v0.action_space.nvec)
    with pytest.raises(ValueError, match="blueprint=13"):  # conv_wide is not in v0's space
        v0.step(FactoredAction(1, 0, blueprint=13).to_array())
    compact = CompactActions(make(V0))
    assert compact.action_space.n == 1 + 3 * 12 + 3 * 6
    assert max(a.blueprint for a in compact.actions) == 12


def test_v0_seed_lr_is_the_hosts() -> None:
    v0, v1 = make(V0).unwrapped, make("Esper-SynthCIFAR-v1").unwrapped
    assert v0.config.seed_lr_multiplier == 1.0 and v1.config.seed_lr_multiplier == 3.0
    assert v0.config.config_id == v1.config.config_id == "baseline"
    v0.reset(seed=0)
    v0.engine.germinate(0, "conv_light")
    lr = v0.engine.slots[0].optimizer.param_groups[0]["lr"]
    assert lr == v0.config.learning_rate == 0.01


def test_v0_rent_is_linear() -> None:
    assert get_reward_config("shaped", version=0) == RewardConfig("shaped", rent="linear", rent_weight=0.05)
    assert get_reward_config("sparse") == RewardConfig("sparse", rent="log2", rent_weight=0.03)
    c = {"accuracy_delta": 0.1, "potential_prev": 0.2, "potential_next": 0.3, "intervention_cost": -0.01,
         "param_rent": 0.5, "log_size_ratio": 0.25, "log_size_ratio_delta": 0.125, "sparse": 0.7,
         "terminal": 1.0, "contributions": [0.02, 0.0, 0.01]}  # fmt: skip
    shaped = 10.0 * 0.1 + (0.99 * 0.3 - 0.2) - 0.01  # v0's shaped reward has no rent
    assert relabel(c, get_reward_config("shaped", 0)) == pytest.approx(shaped)
    assert relabel(c, get_reward_config("sparse", 0)) == pytest.approx(0.7 - 0.05 * 0.5)
    assert relabel(c, get_reward_config("contribution", 0)) == pytest.approx(10.0 * 0.03 - 0.01 - 0.05 * 0.5)
    assert relabel(c, "sparse") == pytest.approx(0.7 - 0.03 * 0.25)
    with pytest.raises(ValueError, match="unknown rent 'sqrt'; valid rents are: 'log2', 'linear'"):
        RewardConfig(rent="sqrt")
    env = make(V0, reward="sparse")
    assert env.unwrapped.reward_config.rent == "linear"
    env.reset(seed=0)
    env.step(FactoredAction(1, 0, blueprint=ORIGINAL_BLUEPRINTS.index("conv_heavy")).to_array())
    for _ in range(2):
        _, reward, _, truncated, info = env.step(np.zeros(8, dtype=np.int64))
    c = info["reward_components"]
    assert truncated and c["param_rent"] > 0
    assert reward == c["sparse"] - 0.05 * c["param_rent"]


def test_v0_settings_round_trip() -> None:
    s = EnvSettings(env_id=V0, fidelity="test", max_epochs=2, device="cpu")
    assert EnvSettings.from_dict(s.to_dict()) == s and s.dataset == "synthcifar"
    assert s.make().unwrapped.version == 0


def test_v0_snapshot_does_not_restore_into_v1() -> None:
    v0, v1, v2 = (
        make(V0).unwrapped,
        make("Esper-SynthCIFAR-v1").unwrapped,
        make("Esper-SynthCIFAR-v2").unwrapped,
    )
    v0.reset(seed=0)
    v1.reset(seed=0)
    v2.reset(seed=0)
    with pytest.raises(ValueError, match="env_version: snapshot 0, env 1"):
        v1.restore(v0.snapshot())
    with pytest.raises(ValueError, match="env_version: snapshot 1, env 2"):
        v2.restore(v1.snapshot())


def test_cifar10_v0_without_data_is_the_missing_data_error(tmp_path) -> None:
    pytest.importorskip("torchvision")
    with pytest.raises(esper_env.DatasetNotFoundError, match="cifar10 not found") as err:
        gym.make("Esper-CIFAR10-v0", data_dir=tmp_path)
    # The way out names the ids of the version asked for.
    assert "gymnasium.make('Esper-CIFAR10-v0', download=True)" in str(err.value)
    assert "'Esper-SynthCIFAR-v0' works offline" in str(err.value)
