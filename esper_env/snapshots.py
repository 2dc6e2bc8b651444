"""Env snapshots: their keys, and the checks that refuse a malformed one before anything changes.

:meth:`esper_env.EsperEnv.snapshot` writes the keys of :data:`SNAPSHOT_KEYS` (plus ``instance``
on an env with an instance distribution); :meth:`~esper_env.EsperEnv.restore` parses the episode
fields with :func:`check_snapshot_fields`, which names the first malformed one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from esper_env.lifecycle import Op

__all__ = ["ENV_SNAPSHOT_VERSION", "SNAPSHOT_KEYS", "check_snapshot_fields", "copy_state"]

ENV_SNAPSHOT_VERSION = 3  # 3: no per-epoch result history (it was never read)
#: The keys of an env snapshot (:meth:`EsperEnv.snapshot`).
SNAPSHOT_KEYS: tuple[str, ...] = (
    "version", "settings", "engine", "np_random", "episode_seed", "last_action_valid", "last_op",
    "done", "episode_return", "potential",
)  # fmt: skip


def check_snapshot_fields(snap: dict[str, Any], bit_generator: np.random.BitGenerator) -> dict[str, Any]:
    """The snapshot's episode fields, parsed; ``ValueError`` naming the first malformed one."""
    seed = snap["episode_seed"]
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**31 - 1:
        raise ValueError(f"the snapshot's episode_seed must be an integer in [0, 2**31 - 1), got {seed!r}")
    flags = {}
    for key in ("last_action_valid", "done"):
        if not isinstance(snap[key], (bool, np.bool_)):
            raise ValueError(f"the snapshot's {key} must be a bool, got {snap[key]!r}")
        flags[key] = bool(snap[key])
    op = snap["last_op"]
    if isinstance(op, bool) or not isinstance(op, (int, np.integer)) or int(op) not in {o.value for o in Op}:
        raise ValueError(f"the snapshot's last_op must be one of the ops {[int(o) for o in Op]}, got {op!r}")
    numbers_ = {}
    for key in ("episode_return", "potential"):
        value = snap[key]
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueError(f"the snapshot's {key} must be a finite number, got {value!r}")
        try:
            numbers_[key] = float(value)
        except OverflowError:
            numbers_[key] = float("inf")
        if not np.isfinite(numbers_[key]):
            raise ValueError(f"the snapshot's {key} must be a finite number, got {value!r}")
    return {
        "np_random": _check_rng_state(snap["np_random"], bit_generator),
        "episode_seed": int(seed),
        "last_op": Op(int(op)),
        **flags,
        **numbers_,
    }


def _check_rng_state(state: Any, bit_generator: np.random.BitGenerator) -> dict[str, Any]:
    """A copy of ``state`` if it is a state of ``bit_generator``'s kind that it accepts unchanged."""
    ours = bit_generator.state
    kind = ours["bit_generator"]
    prefix = "the snapshot's np_random"
    if not isinstance(state, dict):
        raise ValueError(f"{prefix} must be a {kind} state (a dict), got {type(state).__name__}")
    if state.get("bit_generator") != kind:
        raise ValueError(f"{prefix} must be a {kind} state, got bit_generator {state.get('bit_generator')!r}")

    def check(theirs: Any, mine: Any, path: str) -> None:
        if isinstance(mine, dict):
            if not isinstance(theirs, dict) or set(theirs) != set(mine):
                keys = sorted(theirs) if isinstance(theirs, dict) else type(theirs).__name__
                raise ValueError(f"{prefix}{path} must have the keys {sorted(mine)}, got {keys}")
            for k in mine:
                check(theirs[k], mine[k], f"{path}[{k!r}]")
        elif isinstance(mine, str):
            if theirs != mine:
                raise ValueError(f"{prefix}{path} must be {mine!r}, got {theirs!r}")
        elif isinstance(theirs, bool) or not isinstance(theirs, (int, np.integer)) or theirs < 0:
            raise ValueError(f"{prefix}{path} must be a non-negative integer, got {theirs!r}")

    check(state, ours, "")
    for key, limit in (("has_uint32", 2), ("uinteger", 2**32)):
        if key in ours and not 0 <= state[key] < limit:
            raise ValueError(f"{prefix}[{key!r}] must be in [0, {limit}), got {state[key]!r}")
    copy = copy_state(state)
    trial = type(bit_generator)()
    try:
        trial.state = copy
        accepted = trial.state == copy
    except (TypeError, ValueError, OverflowError) as err:
        raise ValueError(f"{prefix} is not a valid {kind} state ({err})") from None
    if not accepted:
        raise ValueError(f"{prefix} is not a valid {kind} state (out-of-range values)")
    return copy


def copy_state(state: dict[str, Any]) -> dict[str, Any]:
    """Copy a NumPy bit generator state (nested dicts of ints and strings)."""
    return {k: (copy_state(v) if isinstance(v, dict) else v) for k, v in state.items()}
