"""GrowOptions: one decision grows a whole graft, with the env's own score and rewards."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from esper_agents.common.evaluation import make_eval_env
from esper_agents.common.options import GrowOptions, option_table
from esper_agents.policies.schedules import grow
from esper_env.lifecycle import Op, Stage

MICRO = {"id": "Esper-Micro-v2", "max_epochs": 9}


def test_the_option_table_is_wait_then_every_real_blueprint_in_every_slot() -> None:
    table = option_table(3, 16)
    assert table[0] is None and len(table) == 1 + 3 * 15
    assert len(set(table)) == len(table)


def test_a_grow_option_plays_the_scripted_schedule_exactly() -> None:
    """GROW widen_4x @ 0 then WAITs is the ``now:widen_4x@0`` schedule: same ops, score and return."""
    env = GrowOptions(gym.make(**MICRO))
    env.reset(seed=3, options={"instance": 7})
    _, total, terminated, truncated, info = env.step(env.index_of(0, "widen_4x"))
    assert info["option_ops"] == ["GERMINATE", "ADVANCE", "WAIT", "ADVANCE", "WAIT", "ADVANCE", "FOSSILIZE"]
    assert info["option_steps"] == 7 and env.unwrapped.engine.slots[0].stage == Stage.FOSSILIZED
    ret = total
    while not (terminated or truncated):
        _, reward, terminated, truncated, info = env.step(0)
        assert info["option_steps"] == 1 and info["option_ops"] == ["WAIT"]
        ret += reward

    raw = gym.make(**MICRO)
    raw.reset(seed=3, options={"instance": 7})
    schedule, base, done, ret_raw, epoch = grow("widen_4x", (0,)), raw.unwrapped, False, 0.0, 0
    while not done:
        _, reward, term, trunc, raw_info = raw.step(schedule.action(base, epoch).to_array())
        ret_raw, done, epoch = ret_raw + reward, term or trunc, epoch + 1
    assert info["score"] == raw_info["score"] and ret == pytest.approx(ret_raw)


def test_the_mask_is_exact_and_follows_the_slots() -> None:
    env = GrowOptions(gym.make(**MICRO))
    env.reset(seed=0, options={"instance": 1})
    mask = env.action_masks()
    supported = env.unwrapped.blueprint_mask()
    for i, option in enumerate(env.options):
        assert mask[i] == (option is None or bool(supported[option[1]])), env.describe(i)
    env.step(env.index_of(1, "widen_2x"))
    mask = env.action_masks()
    assert not any(mask[i] for i, o in enumerate(env.options) if o is not None and o[0] == 1)
    assert mask[env.index_of(0, "widen_2x")] and mask[0]
    # a masked option runs as the env's WAIT (an illegal GERMINATE) and ends there
    _, _, _, _, info = env.step(env.index_of(1, "widen_4x"))
    assert info["option_ops"] == ["WAIT"] and info["action_valid"] is False


def test_bad_indices_and_envs_get_clear_errors() -> None:
    env = GrowOptions(gym.make(**MICRO))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="46"):
        env.step(46)
    with pytest.raises(ValueError, match="slot 5"):
        env.index_of(5, "widen_4x")
    with pytest.raises(ValueError, match="'nope'"):
        env.index_of(0, "nope")
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
    env = GrowOptions(gym.make(id="Esper-Micro-v2", max_epochs=4))
    env.reset(seed=0)
    _, _, terminated, truncated, info = env.step(env.index_of(2, "norm"))
    assert terminated or truncated
    assert info["option_steps"] == 4 and info["option_ops"][0] == "GERMINATE"
    assert Op.FOSSILIZE.name not in info["option_ops"]
    assert np.isfinite(info["score"])
