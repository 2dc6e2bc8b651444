"""Checks of a pack's content against its own header: what a valid checksum cannot promise.

A checksum proves a file is the one that was signed, not that what was signed is a sane
episode. :func:`check_header` checks the types of ``pack.json``'s ``environment`` table and reads
the pack's :class:`~esper_env.settings.EnvSettings` (:func:`header_settings`, which reads packs
written before that record too); :func:`check_env_version` that its env id is one this code
registers (same version); :func:`check_episode` checks every array
of an episode against that header: dtype, shape, action range, finiteness, and masks that allow
the actions taken. Each error names the field; the pack reader adds the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from esper_agents.generation.schema import STEP_ARRAYS
from esper_env.settings import EnvSettings

__all__ = [
    "ContentError", "EnvHeader", "check_env_version", "check_episode", "check_header", "header_settings",
    "split_env_id",
]  # fmt: skip


class ContentError(ValueError):
    """Pack content that contradicts the format or its own header; the message names the field."""


#: Arrays that must hold finite numbers (NaN means "not measured" only in best_seed_*).
FINITE_ARRAYS: tuple[str, ...] = tuple(
    name
    for name, (dtype, _) in STEP_ARRAYS.items()
    if dtype.startswith("float") and name not in ("best_seed_accuracy", "best_seed_contribution")
)
#: Arrays holding compact action indices.
ACTION_ARRAYS: tuple[str, ...] = ("actions", "greedy_action")


def _positive_int(env: Mapping[str, Any], key: str) -> int:
    value = env.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ContentError(f"environment.{key} must be a positive integer, got {value!r}")
    return value


@dataclass(frozen=True)
class EnvHeader:
    """The typed fields of ``pack.json``'s ``environment`` table that episodes are checked against,
    and the settings the pack was generated with."""

    env_id: str
    n_actions: int
    observation_dim: int
    num_slots: int
    max_epochs: int
    settings: EnvSettings

    @classmethod
    def parse(cls, env: Any, settings: EnvSettings) -> EnvHeader:
        """ContentError naming the key whose value has the wrong type."""
        if not isinstance(env, dict):
            raise ContentError(f"environment must be an object, got {type(env).__name__}")
        for key in ("env_id", "dataset", "fidelity"):
            if not isinstance(env.get(key), str):
                raise ContentError(f"environment.{key} must be a string, got {env.get(key)!r}")
        header = cls(
            env["env_id"],
            *(_positive_int(env, k) for k in ("n_actions", "observation_dim", "num_slots", "max_epochs")),
            settings=settings,
        )
        actions = env.get("actions")
        if not isinstance(actions, list) or len(actions) != header.n_actions:
            got = len(actions) if isinstance(actions, list) else repr(actions)
            raise ContentError(f"environment.actions must list the {header.n_actions} actions, got {got}")
        for i, a in enumerate(actions):
            if not isinstance(a, dict) or not isinstance(a.get("name"), str):
                raise ContentError(
                    f"environment.actions[{i}] must be an object with a string name, got {a!r}"
                )
        reward = env.get("reward")
        if not isinstance(reward, dict) or not isinstance(reward.get("intervention_costs"), dict):
            raise ContentError(f"environment.reward must be a reward config object, got {reward!r}")
        threads = env.get("torch_num_threads")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ContentError(
                f"environment.torch_num_threads must be a positive integer or null, got {threads!r}"
            )
        return header


def header_settings(header: Mapping[str, Any]) -> EnvSettings:
    """The settings a pack was generated with: ``generation_spec.env``, written by
    :meth:`EnvSettings.to_dict` (the matrix's first config). A pack written before the settings
    record holds neither ``config`` nor ``num_threads`` there: its config is the matrix's first and
    its thread count ``environment.torch_num_threads``. ContentError naming a bad value."""
    spec = header.get("generation_spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("env"), dict):
        raise ContentError(f"generation_spec.env must be an object, got {spec!r:.80}")
    env = dict(spec["env"])
    if "num_threads" not in env:  # written before the settings record
        environment = header.get("environment")
        env["num_threads"] = environment.get("torch_num_threads", 1) if isinstance(environment, dict) else 1
        configs = spec.get("matrix", {}).get("configs") if isinstance(spec.get("matrix"), dict) else None
        if isinstance(configs, list) and configs:
            env.setdefault("config", configs[0])
    try:
        return EnvSettings.from_dict(env)
    except ValueError as err:
        check_env_version(str(env.get("env_id")))  # another version of the env: say so first
        raise ContentError(f"generation_spec.env: {err}") from None


def check_header(header: Mapping[str, Any]) -> EnvHeader:
    """The header's environment table, typed, and its settings; ContentError naming the key if a
    type or value is wrong."""
    spec = header.get("generation_spec")
    if not isinstance(spec, dict):
        raise ContentError(f"generation_spec must be an object, got {type(spec).__name__}")
    return EnvHeader.parse(header.get("environment"), header_settings(header))


def split_env_id(env_id: str) -> tuple[str, str]:
    """``("Esper-SynthCIFAR", "v2")`` from ``"Esper-SynthCIFAR-v2"`` (Gymnasium's id form)."""
    name, sep, version = env_id.rpartition("-")
    if not sep or not version.startswith("v") or not version[1:].isdigit():
        return env_id, ""
    return name, version


def check_env_version(env_id: str) -> None:
    """ContentError unless ``env_id`` is registered by this code: a pack generated by another
    version of an env holds episodes that env would not produce now."""
    from esper_env import ENV_IDS

    if env_id in ENV_IDS:
        return
    name, version = split_env_id(env_id)
    same = [i for i in ENV_IDS if split_env_id(i)[0] == name]
    if same:
        raise ContentError(
            f"the pack was generated with {env_id} (env version {version or 'unknown'}); this code has "
            f"{', '.join(same)}: episodes of another env version are not what the env does now, so they "
            "are not read; regenerate the pack with this version (esper generate)"
        )
    raise ContentError(
        f"the pack names env {env_id!r}, which this code does not register ({', '.join(ENV_IDS)})"
    )


def _expected_shape(name: str, T: int, env: EnvHeader, n_heads: int) -> tuple[int, ...]:
    if name == "observations":
        return (T + 1, env.observation_dim)
    if name == "masks":
        return (T + 1, env.n_actions)
    if name in ("greedy_probs", "behavior_probs"):
        return (T, env.n_actions)
    if name == "executed_actions":
        return (T, n_heads)
    if name == "rc_contributions":
        return (T, env.num_slots)
    return (T,)


def check_episode(arrays: Mapping[str, np.ndarray], episode_length: int, env: EnvHeader) -> None:
    """ContentError naming the first field of ``arrays`` that contradicts the header."""
    from esper_env.spaces import HEADS

    missing = sorted(set(STEP_ARRAYS) - set(arrays))
    unknown = sorted(set(arrays) - set(STEP_ARRAYS))
    if missing or unknown:
        raise ContentError(f"arrays missing {missing} or not in the schema {unknown}")
    T = episode_length
    if isinstance(T, bool) or not isinstance(T, int) or T < 1 or T > env.max_epochs:
        raise ContentError(f"field 'episode_length': {T!r} is not in 1..{env.max_epochs} (max_epochs)")
    for name, (dtype, _) in STEP_ARRAYS.items():
        a = arrays[name]
        want = np.dtype(dtype)
        if a.dtype != want:
            raise ContentError(f"field {name!r}: dtype {a.dtype} where the header says {want}")
        shape = _expected_shape(name, T, env, len(HEADS))
        if a.shape != shape:
            raise ContentError(f"field {name!r}: shape {a.shape} where the header says {shape}")
    for name in FINITE_ARRAYS:
        a = arrays[name]
        bad = np.flatnonzero(~np.isfinite(a).reshape(len(a), -1).all(axis=1))
        if len(bad):
            raise ContentError(f"field {name!r}: non-finite values at rows {bad[:5].tolist()}")
    for name in ACTION_ARRAYS:
        a = arrays[name]
        bad = np.flatnonzero((a < 0) | (a >= env.n_actions))
        if len(bad):
            raise ContentError(
                f"field {name!r}: {a[bad[:5]].tolist()} at steps {bad[:5].tolist()} outside the "
                f"{env.n_actions} actions 0..{env.n_actions - 1}"
            )
    masks = arrays["masks"]
    empty = np.flatnonzero(~masks.any(axis=1))
    if len(empty):
        raise ContentError(
            f"field 'masks': no legal action at rows {empty[:5].tolist()} (WAIT is always legal)"
        )
    taken = masks[np.arange(T), arrays["actions"]]
    if not taken.all():
        steps = np.flatnonzero(~taken)[:5].tolist()
        raise ContentError(
            f"field 'masks': the action taken is illegal under the logged mask at steps {steps}"
        )
