"""Scripted growth schedules: their names, lookup, and the actions they choose from the env's legality."""

from __future__ import annotations

import gymnasium as gym
import pytest

import esper_env  # noqa: F401  (registers the env ids)
from esper_agents.policies import DEFAULT_HEURISTIC, SCHEDULES, Schedule, get_schedule
from esper_agents.policies.schedules import REAL_BLUEPRINTS, grow, schedules_for
from esper_env.blueprints import BLUEPRINTS
from esper_env.lifecycle import Op, Tempo


def test_schedule_names() -> None:
    names = [s.name for s in schedules_for("impaired")]
    assert names[0] == "wait" and len(names) == len(set(names)) == len(SCHEDULES)
    assert {f"now:{b}" for b in REAL_BLUEPRINTS} <= set(names)
    assert {"now:widen_4x@0", "from10:widen_4x@0", "churn:widen_4x", f"heuristic:{DEFAULT_HEURISTIC}"} <= set(
        names
    )
    assert [s.name for s in schedules_for("baseline")] == [
        "wait", "now:conv_heavy", "now:widen_4x@0", f"heuristic:{DEFAULT_HEURISTIC}"
    ]  # fmt: skip
    assert grow("widen_4x", (0,), start=5) == SCHEDULES["from5:widen_4x@0"]


def test_get_schedule() -> None:
    assert get_schedule("wait").kind == "wait"
    static = get_schedule("static-x1.65")
    assert static == Schedule("static-x1.65", "static", size=1.65)
    for bad in ("now:teleport", "static-x0", "static-xabc", None):
        with pytest.raises(ValueError, match="valid schedules are: wait, now:"):
            get_schedule(bad)
    with pytest.raises(ValueError, match="valid kinds are: wait, grow"):
        Schedule("x", "teleport")


def test_schedules_act_from_the_envs_legality() -> None:
    env = gym.make("Esper-SynthCIFAR-v2", config="impaired", fidelity="test", max_epochs=4, device="cpu")
    env.reset(seed=0)
    base = env.unwrapped
    assert get_schedule("wait").action(base, 0).op == Op.WAIT
    assert get_schedule("from10:widen_4x@0").action(base, 0).op == Op.WAIT  # not before epoch 10
    a = get_schedule("now:widen_4x@0").action(base, 0)
    assert (a.op, a.slot, a.blueprint, a.tempo) == (Op.GERMINATE, 0, BLUEPRINTS.index("widen_4x"), Tempo.FAST)
    env.step(a.to_array())
    assert get_schedule("now:widen_4x@0").action(base, 1).op == Op.ADVANCE  # GERMINATED -> TRAINING at once
    env.close()
