"""Env v2: v1's dynamics with the task's context (``context/*``) appended to the observation."""

from __future__ import annotations

import math
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import esper_env
from esper_env.blueprints import BLUEPRINTS
from esper_env.configs import get_config
from esper_env.hosts import HOSTS, build_host, count_parameters
from esper_env.observation import ObservationContext, ObservationView, encode_observation, slot_context
from esper_env.rewards import RewardConfig
from esper_env.spaces import CONTEXT_FEATURES, FactoredAction, observation_features, slot_context_features
from tests.env.test_trajectory_pin import matches_one_variant, scripted_episode

V1, V2 = "Esper-SynthCIFAR-v1", "Esper-SynthCIFAR-v2"


def layout(env) -> SimpleNamespace:
    """What ObservationView.decode reads (a PolicySpec has it)."""
    base = env.unwrapped
    schema = base.observation_schema
    return SimpleNamespace(schema=schema, max_epochs=base.max_epochs, num_slots=base.num_slots,
                           obs_size=max(s.stop for s in schema.values()))  # fmt: skip


def make(env_id: str = V2, **kwargs):
    return gym.make(
        env_id, **{"fidelity": "test", "max_epochs": 3, "device": "cpu", "config": "impaired", **kwargs}
    )


def test_v2_replays_the_v1_pin_with_v1s_observation_as_prefix() -> None:
    v1, v2 = scripted_episode(V1), scripted_episode(V2)
    n = len(v1["obs"][0])
    # Same process, same seed and actions: rewards, masks and v1's features are equal bit for bit.
    assert v2["action"] == v1["action"] and v2["mask"] == v1["mask"] and v2["reward"] == v1["reward"]
    assert v2["components"] == v1["components"]
    assert len(v2["obs"][0]) == n + 4 + 2 * 3
    for o1, o2 in zip(v1["obs"], v2["obs"], strict=True):
        assert o2[:n] == o1
    # ... and v2 reproduces the committed v1 pin as v1 does.

    def check(pinned: dict) -> None:
        assert v2["action"] == pinned["action"] and v2["mask"] == pinned["mask"]
        np.testing.assert_allclose(np.array(v2["obs"])[:, :n], np.array(pinned["obs"]), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(v2["reward"], pinned["reward"], rtol=1e-4, atol=1e-5)

    matches_one_variant(check)


def test_context_values_on_the_impaired_host() -> None:
    env = make()
    obs, _ = env.reset(seed=0)
    base = env.unwrapped
    sc = base.observation_schema

    def val(name: str) -> float:
        return float(obs[sc[name]][0])

    assert val("context/rent") == pytest.approx(0.3)  # 0.03 per doubling
    assert val("context/log_lr") == pytest.approx((math.log10(0.01) + 4) / 4) == pytest.approx(0.5)
    assert val("context/train_images") == pytest.approx(math.log2(256) / 16) == pytest.approx(0.5)
    assert val("context/num_classes") == pytest.approx(0.5)  # 10 classes
    assert base.engine.host.slot_channels == (8, 16, 32)
    for k, width in enumerate((8, 16, 32)):
        assert val(f"context/slot{k}/host_width") == pytest.approx(math.log2(width) / 10)
    host = base.engine.host
    sizes = [count_parameters(s) for s in host.segments]
    total = count_parameters(host)
    shares = [val(f"context/slot{k}/param_share") for k in range(3)]
    for k in range(3):
        assert shares[k] == pytest.approx((sizes[k] + sizes[k + 1]) / total)
    # The blocks around the slots count the inner blocks twice: between 1 and 2 in all.
    assert sum(shares) == pytest.approx((sizes[0] + 2 * sizes[1] + 2 * sizes[2] + sizes[3]) / total)
    assert 1.0 < sum(shares) < 2.0 and all(0 < s < 1 for s in shares)
    # The first block is the cheapest to widen in parameters, the middle one the dearest.
    assert shares[0] < shares[2] < shares[1]

    view = ObservationView.decode(obs, layout(env))
    assert view.has_context and view.rent_weight == pytest.approx(0.03)
    assert view.learning_rate == pytest.approx(0.01) and view.train_images == 256 and view.num_classes == 10
    assert [s.host_width for s in view.slots] == [8, 16, 32]
    assert [s.param_share for s in view.slots] == pytest.approx(shares)

    # Growth does not move the context: it describes the task, not the network's state.
    obs, *_ = env.step(FactoredAction(1, 0, blueprint=BLUEPRINTS.index("widen_4x")).to_array())
    assert obs[sc["context/rent"].start :].tolist() == pytest.approx(
        [val(f.name) for f in observation_features(3, context=True) if f.name.startswith("context/")]
    )


def test_a_v1_observation_decodes_without_context() -> None:
    env = make(V1)
    obs, _ = env.reset(seed=0)
    view = ObservationView.decode(obs, layout(env))
    assert not view.has_context and view.rent_weight is None and view.num_classes is None
    assert all(s.host_width is None and s.param_share is None for s in view.slots)


def test_context_follows_the_settings() -> None:
    rent = RewardConfig(rent_weight=0.05)
    env = make(config=get_config("fast-lr"), reward=rent).unwrapped
    obs, _ = env.reset(seed=0)
    view = ObservationView.decode(obs, layout(env))
    assert view.rent_weight == pytest.approx(0.05) and view.learning_rate == pytest.approx(0.1)
    assert [s.host_width for s in view.slots] == [32, 64, 128]  # baseline's HostCNN
    # The env reads the context at each observation: a setting changed between episodes shows.
    env.reward_config = RewardConfig(rent_weight=0.0)
    obs, _ = env.reset(seed=0)
    assert obs[env.observation_schema["context/rent"]][0] == 0.0


def test_an_observation_with_context_needs_one() -> None:
    env = make().unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match="pass an ObservationContext"):
        encode_observation(
            env.engine, env.observation_space, env.observation_schema, max_epochs=3,
            base_host_params=1, last_action_valid=True, last_op=esper_env.Op.WAIT,
        )  # fmt: skip


def _bounds(name: str) -> tuple[float, float]:
    f = next(f for f in (*CONTEXT_FEATURES, *slot_context_features(0)) if f.name == name)
    return f.low, f.high


@settings(max_examples=200, deadline=None)
@given(
    rent=st.floats(0.0, 1e6),
    lr=st.floats(1e-12, 1e3),
    images=st.integers(1, 10**8),
    classes=st.integers(1, 10**6),
)
def test_every_context_feature_lies_in_its_bounds(rent: float, lr: float, images: int, classes: int) -> None:
    values = ObservationContext(rent, lr, images, classes).features()
    assert list(values) == [f.name for f in CONTEXT_FEATURES]
    for name, value in values.items():
        low, high = _bounds(name)
        assert low <= value <= high, (name, value)


@pytest.mark.parametrize("name", HOSTS)
def test_every_hosts_slot_context_lies_in_its_bounds(name: str) -> None:
    host = build_host(name, 10, seed=0)
    per_slot = slot_context(host)
    assert len(per_slot) == host.num_slots and slot_context(host) is per_slot  # computed once per host
    (w_low, w_high), (s_low, s_high) = (
        _bounds("context/slot0/host_width"),
        _bounds("context/slot0/param_share"),
    )
    for (width, share), channels in zip(per_slot, host.slot_channels, strict=True):
        assert w_low <= width <= w_high and s_low < share <= s_high
        assert width == pytest.approx(min(math.log2(channels) / 10, 1.0))


def test_v2_observations_stay_in_the_space() -> None:
    env = make(max_epochs=4)
    obs, _ = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    env.action_space.seed(0)
    done = False
    while not done:
        action = env.action_space.sample(mask=esper_env.sample_mask(env))
        obs, _, terminated, truncated, _ = env.step(action)
        assert env.observation_space.contains(obs)
        done = terminated or truncated
