"""GrowOptions: one decision grows a whole graft, with the env's own score and rewards."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from esper_agents.common.evaluation import make_eval_env
from esper_agents.common.options import WAIT_BLUEPRINT, GrowOptions, set_wait_prior
from esper_agents.policies.schedules import grow
from esper_env.lifecycle import Op, Stage

MICRO = {"id": "Esper-Micro-v3", "max_epochs": 9}


WAIT_NOW = np.array([0, WAIT_BLUEPRINT])


def test_the_space_is_slot_blueprint_with_noop_for_wait() -> None:
    env = GrowOptions(gym.make(**MICRO))
    assert env.action_space.nvec.tolist() == [3, 16]
    assert env.blueprint_names[WAIT_BLUEPRINT] == "noop"
    assert env.grow(2, "norm").tolist() == [2, env.blueprint_names.index("norm")]
    assert env.describe(WAIT_NOW) == env.describe(np.array([2, WAIT_BLUEPRINT])) == "WAIT"


def test_a_grow_option_plays_the_scripted_schedule_exactly() -> None:
    """GROW widen_4x @ 0 then WAITs is the ``now:widen_4x@0`` schedule: same ops, score and return."""
    env = GrowOptions(gym.make(**MICRO))
    env.reset(seed=3, options={"instance": 7})
    _, total, terminated, truncated, info = env.step(env.grow(0, "widen_4x"))
    assert info["option_ops"] == ["GERMINATE", "ADVANCE", "WAIT", "ADVANCE", "WAIT", "ADVANCE", "FOSSILIZE"]
    assert info["option_steps"] == 7 and env.unwrapped.engine.slots[0].stage == Stage.FOSSILIZED
    ret = total
    while not (terminated or truncated):
        _, reward, terminated, truncated, info = env.step(WAIT_NOW)
        assert info["option_steps"] == 1 and info["option_ops"] == ["WAIT"]
        ret += reward

    raw = gym.make(**MICRO)
    raw.reset(seed=3, options={"instance": 7})
    schedule, base, done, ret_raw, epoch = grow("widen_4x", (0,)), raw.unwrapped, False, 0.0, 0
    while not done:
        _, reward, term, trunc, raw_info = raw.step(schedule.action(base, epoch).to_array())
        ret_raw, done, epoch = ret_raw + reward, term or trunc, epoch + 1
    assert info["score"] == raw_info["score"] and ret == pytest.approx(ret_raw)


def test_the_per_head_masks_are_exact() -> None:
    env = GrowOptions(gym.make(**{**MICRO, "max_epochs": 25}))
    env.reset(seed=0, options={"instance": 1})
    supported = env.unwrapped.blueprint_mask()
    slot, blueprint = np.split(env.action_masks(), [3])
    assert slot.tolist() == [True, True, True]
    assert blueprint.tolist() == [bool(b) or i == WAIT_BLUEPRINT for i, b in enumerate(supported)]
    assert not blueprint[env.blueprint_names.index("conv_heavy")]  # spatial: masked on an MLP host
    env.step(env.grow(1, "widen_2x"))
    slot, blueprint = np.split(env.action_masks(), [3])
    assert slot.tolist() == [True, False, True] and blueprint[WAIT_BLUEPRINT]
    # what the masks allow is legal: a second graft in a free slot germinates
    _, _, _, _, info = env.step(env.grow(2, "widen_4x"))
    assert info["option_ops"][0] == "GERMINATE" and info["action_valid"]
    # a masked option runs as the env's WAIT (an illegal GERMINATE) and ends there
    env.reset(seed=0, options={"instance": 1})
    env.step(env.grow(1, "widen_2x"))
    _, _, _, _, info = env.step(env.grow(1, "widen_4x"))
    assert info["option_ops"] == ["WAIT"] and info["action_valid"] is False
    # with every slot taken only WAIT is left (the slot head, then ignored, allows every slot)
    env.step(env.grow(0, "norm"))
    env.step(env.grow(2, "norm"))
    slot, blueprint = np.split(env.action_masks(), [3])
    assert slot.all() and blueprint.tolist() == [i == WAIT_BLUEPRINT for i in range(16)]


def test_bad_indices_and_envs_get_clear_errors() -> None:
    env = GrowOptions(gym.make(**MICRO))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"\[3, 16\], got"):
        env.step(np.array([3, 0]))
    with pytest.raises(ValueError, match="got 7"):
        env.step(7)
    with pytest.raises(ValueError, match="slot 5"):
        env.grow(5, "widen_4x")
    with pytest.raises(ValueError, match="'noop'"):
        env.grow(0, "noop")
    with pytest.raises(TypeError, match="MultiDiscrete"):
        GrowOptions(GrowOptions(gym.make(**MICRO)))


def test_it_passes_the_gymnasium_and_sb3_checkers() -> None:
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    from esper_env.settings import EnvSettings

    short = {**MICRO, "max_epochs": 3}
    with pytest.warns(UserWarning, match="different from the unwrapped"):
        check_env(GrowOptions(gym.make(**short)), skip_render_check=True)
    sb3_check_env(make_eval_env(EnvSettings(env_id=short["id"], max_epochs=3), "options"), warn=False)


def test_an_option_stops_at_the_time_limit() -> None:
    env = GrowOptions(gym.make(id="Esper-Micro-v3", max_epochs=4))
    env.reset(seed=0)
    _, _, terminated, truncated, info = env.step(env.grow(2, "norm"))
    assert terminated or truncated
    assert info["option_steps"] == 4 and info["option_ops"][0] == "GERMINATE"
    assert Op.FOSSILIZE.name not in info["option_ops"]
    assert np.isfinite(info["score"])


def test_the_wait_prior_sets_the_first_policy_s_wait_probability() -> None:
    import torch

    env = GrowOptions(gym.make(**MICRO))
    env.reset(seed=0)
    _, allowed = np.split(env.action_masks(), [3])
    net = torch.nn.Linear(4, 3 + 16)
    torch.nn.init.orthogonal_(net.weight, gain=0.01)
    torch.nn.init.zeros_(net.bias)
    set_wait_prior(net, env.action_space, 0.92, int(allowed.sum()) - 1)
    logits = net(torch.zeros(1, 4))[0, 3:].masked_fill(~torch.as_tensor(allowed), -1e8)
    p = torch.softmax(logits, 0)
    assert p[WAIT_BLUEPRINT].item() == pytest.approx(0.92)
    assert int(allowed.sum()) - 1 == 7  # the MLP host's pointwise blueprints
    with pytest.raises(ValueError, match="1.5"):
        set_wait_prior(net, env.action_space, 1.5, 7)
