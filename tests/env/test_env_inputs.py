"""Env inputs: constructor values, actions, snapshots, whole-action legality, time limits, threads."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
import torch

from esper_env import ENV_IDS, EsperEnv, FactoredAction, Op
from esper_env.spaces import NOOP_INDEX
from esper_env.wrappers import CompactActions
from tests.conftest import NANO

SYNTH_ID = next(i for i, kw in ENV_IDS.items() if kw["dataset"] == "synthcifar")


def nano_env(**kwargs: object) -> EsperEnv:
    return EsperEnv(fidelity=kwargs.pop("fidelity", NANO), max_epochs=kwargs.pop("max_epochs", 4), **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "shown"),
    [
        ({"num_slots": "2"}, "'2'"), ({"num_slots": 2.7}, "2.7"), ({"num_slots": 0}, "0"), ({"num_slots": -1}, "-1"),
        ({"max_epochs": True}, "True"), ({"early_stop_patience": 0}, "0"), ({"early_stop_patience": -1}, "-1"),
        ({"early_stop_patience": "2"}, "'2'"), ({"synth_seed": -1}, "-1"), ({"num_threads": 0}, "0"),
    ],
)  # fmt: skip
def test_bad_constructor_values_are_named(kwargs: dict, shown: str) -> None:
    (name,) = kwargs
    with pytest.raises(ValueError, match=rf"{name} must be an integer >= \d+( or None)?, got {shown}$"):
        nano_env(**kwargs)


@pytest.mark.parametrize("action", [2.9, "1", True, np.float64(2.0), np.array([1, 2])])
def test_compact_actions_refuse_what_is_not_an_integer(action: object) -> None:
    env = CompactActions(nano_env())
    env.reset(seed=0)
    with pytest.raises(
        ValueError, match=rf"action {re.escape(repr(action))} is not in the action space Discrete"
    ):
        env.step(action)


def test_compact_actions_show_the_value_given_and_take_integers() -> None:
    env = CompactActions(nano_env())
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action 1e\+20 is not"):
        env.step(1e20)
    with pytest.raises(
        ValueError, match=rf"action {env.action_space.n} is not .* valid 0..{env.action_space.n - 1}"
    ):
        env.step(int(env.action_space.n))
    for ok in (0, np.int64(0), np.array(0)):
        env.step(ok)


def test_factored_action_errors_show_the_action_as_given() -> None:
    env = nano_env()
    env.reset(seed=0)
    ragged = [0, [1, 2], 0, 0, 0, 0, 0, 0]
    with pytest.raises(
        ValueError, match=r"action \[0, \[1, 2\], 0, 0, 0, 0, 0, 0\] is not in the action space"
    ):
        env.step(ragged)
    with pytest.raises(ValueError, match=r"op=1e\+20 \(valid 0..5\)"):
        env.step([1e20, 0, 0, 0, 0, 0, 0, 0])


def test_is_legal_action_checks_the_whole_action() -> None:
    env = nano_env()
    env.reset(seed=0)
    assert env.legal_actions()[Op.GERMINATE, 0]
    assert not env.is_legal_action(FactoredAction(Op.GERMINATE, 0, blueprint=NOOP_INDEX).to_array())
    real = next(b for b in range(int(env.action_space.nvec[2])) if b != NOOP_INDEX)
    assert env.is_legal_action(FactoredAction(Op.GERMINATE, 0, blueprint=real).to_array())
    assert not env.is_legal_action(FactoredAction(Op.FOSSILIZE, 0).to_array())
    with pytest.raises(ValueError, match="not in the action space"):
        env.is_legal_action([9, 0, 0, 0, 0, 0, 0, 0])


@pytest.mark.parametrize(
    ("kwargs", "differs"),
    [
        ({"max_epochs": 5}, "max_epochs: snapshot 4, env 5"),
        ({"config": "fast-lr"}, "config: snapshot 'baseline', env 'fast-lr'"),
        ({"fidelity": "test"}, "fidelity: snapshot"),
        ({"num_slots": 2}, "num_slots: snapshot 3, env 2"),
        ({"synth_seed": 1}, "synth_seed: snapshot 0, env 1"),
    ],
)
def test_restore_refuses_an_incompatible_snapshot_and_says_what_differs(kwargs: dict, differs: str) -> None:
    source = nano_env()
    source.reset(seed=0)
    source.step(FactoredAction(Op.WAIT, 0).to_array())
    target = nano_env(**kwargs)
    obs, _ = target.reset(seed=3)
    with pytest.raises(ValueError, match=f"incompatible env.*{differs}"):
        target.restore(source.snapshot())
    np.testing.assert_array_equal(target._observation(), obs)  # unchanged


def test_restore_names_missing_keys() -> None:
    env = nano_env()
    env.reset(seed=0)
    snap = env.snapshot()
    del snap["engine"]
    with pytest.raises(ValueError, match=r"lacks keys \['engine'\]"):
        env.restore(snap)
    with pytest.raises(ValueError, match="is a dict"):
        env.restore([])  # type: ignore[arg-type]


def test_a_gymnasium_time_limit_ends_with_the_summary() -> None:
    env = gym.make(SYNTH_ID, fidelity="test", max_epochs=25, max_episode_steps=2)
    assert env.unwrapped.max_epochs == 2
    env.reset(seed=0)
    _, _, terminated, truncated, info = env.step(FactoredAction(Op.WAIT, 0).to_array())
    assert not (terminated or truncated)
    obs, _, terminated, truncated, info = env.step(FactoredAction(Op.WAIT, 0).to_array())
    assert truncated and not terminated
    assert (
        info["termination_reason"] == "max_epochs"
        and "final_val_accuracy" in info
        and "test_accuracy" in info
    )
    assert obs[env.unwrapped.observation_schema["budget_remaining"]][0] == 0.0
    fork = env.unwrapped.fork()
    assert fork.max_epochs == 2


def test_the_env_runs_on_its_thread_count_and_restores_the_callers() -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        env = nano_env()
        assert env.num_threads == 1 and env.metadata["torch_num_threads"] == 1
        assert env.metadata["torch_version"] == torch.__version__
        seen = []
        real = env.engine.run_epoch.__func__  # type: ignore[attr-defined]

        def spy(engine):
            seen.append(torch.get_num_threads())
            return real(engine)

        env.reset(seed=0)
        env.engine.run_epoch = spy.__get__(env.engine)  # type: ignore[method-assign]
        env.step(FactoredAction(Op.WAIT, 0).to_array())
        assert seen == [1] and torch.get_num_threads() == 2
        free = nano_env(num_threads=None)
        assert free.metadata["torch_num_threads"] == 2
    finally:
        torch.set_num_threads(before)
