"""``EsperEnv.restore`` checks the whole snapshot first: a malformed field is a ``ValueError`` naming
it, and the env is unchanged after the refusal (issue 24, item 3)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from esper_env import EsperEnv, FactoredAction, Op
from tests.conftest import NANO


def nano_env() -> EsperEnv:
    return EsperEnv(fidelity=NANO, max_epochs=4)


@pytest.fixture(scope="module")
def source_snapshot() -> dict[str, Any]:
    env = nano_env()
    env.reset(seed=0)
    env.step(FactoredAction(Op.WAIT, 0).to_array())
    env.step(FactoredAction(Op.WAIT, 0).to_array())
    return env.snapshot()


def same(a: Any, b: Any) -> bool:
    """Deep equality of snapshots (tensors compared by value)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and bool(torch.equal(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and a == b


MT_STATE = np.random.MT19937(0).state


def _set(snap: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    crafted = {**snap, "engine": dict(snap["engine"]), "np_random": dict(snap["np_random"])}
    *parents, last = path.split(".")
    target = crafted
    for part in parents:
        target = target[part]
    target[last] = value
    return crafted


CRAFTED = [
    # (path, value, what the message names)
    ("last_op", 99, "last_op"),
    ("last_op", "1", "last_op"),
    ("last_op", True, "last_op"),
    ("np_random", MT_STATE, "np_random"),
    ("np_random", "PCG64", "np_random"),
    ("np_random.has_uint32", 7, "np_random"),
    ("np_random.uinteger", -1, "np_random"),
    ("np_random.state", {"state": 1}, "np_random"),
    ("episode_return", "3.5", "episode_return"),
    ("episode_return", float("nan"), "episode_return"),
    ("potential", float("inf"), "potential"),
    ("done", "yes", "done"),
    ("last_action_valid", 1, "last_action_valid"),
    ("episode_seed", -1, "episode_seed"),
    ("episode_seed", 1.5, "episode_seed"),
    ("settings", "baseline", "settings"),
    # raised AttributeError before the fix
    ("engine", None, "engine"),
    ("np_random", None, "np_random"),
    ("engine.history", [], "history"),
    ("engine.generator", 0.5, "engine"),
    ("engine.counters", {}, "counters"),
]


@pytest.mark.parametrize(("path", "value", "named"), CRAFTED, ids=[f"{p}={v!r}"[:40] for p, v, _ in CRAFTED])
def test_a_malformed_field_is_refused_by_name_and_changes_nothing(
    source_snapshot: dict[str, Any], path: str, value: Any, named: str
) -> None:
    env = nano_env()
    obs, _ = env.reset(seed=3)
    before = env.snapshot()
    with pytest.raises(ValueError, match=named):
        env.restore(_set(source_snapshot, path, value))
    assert same(env.snapshot(), before)
    np.testing.assert_array_equal(env._observation(), obs)


def test_the_valid_snapshot_still_restores(source_snapshot: dict[str, Any]) -> None:
    env = nano_env()
    env.reset(seed=3)
    env.restore(source_snapshot)
    assert same(env.snapshot(), source_snapshot)
