"""Load a saved online model (SB3 zip) without running code from the file: :func:`load_online_model`.

SB3's ``load`` unpickles (cloudpickle) several entries of a model zip: the policy class, the
spaces, the schedules, the last observation. A crafted zip could run code there. This loader
reads the zip's JSON itself, recognises the algorithm from the policy's module name (plain text
in the file), and hands SB3 safe replacements for every pickled entry, so nothing from the file
is unpickled; the weights load with ``torch.load(weights_only=True)`` (SB3's own choice). An
entry that is pickled and unknown is refused.

Every input is bounded before anything is built: the file must be a regular file (no device or
FIFO) of at most :data:`MODEL_FILE_LIMIT` bytes, each zip entry is one SB3 writes and within its
size limit (:data:`ENTRY_LIMITS`, checked from the zip's declared sizes), and every JSON key is
one the algorithm defines (:data:`DATA_KEYS`, :data:`POLICY_KWARGS`), of its type and within sane
bounds (network sizes, rollout lengths), so a crafted file cannot allocate gigabytes or set
arbitrary model attributes. Weights that are not tensors, or do not fit the network, are one
``ValueError`` naming the file.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
from pathlib import Path
from typing import Any

from esper_agents.common.bounded import MiB, read_regular_file, read_zip_entries
from esper_agents.online.algorithms import ONLINE_ALGORITHMS, PPO_DEFAULTS, model_class

__all__ = ["load_online_model", "read_model_data", "saved_algorithm"]

#: Pickled entries SB3 writes whose value a loaded model rebuilds (None: reset, or the default class).
_RESET_ENTRIES = ("_last_obs", "_last_episode_starts", "_last_original_obs", "ep_info_buffer",
                  "ep_success_buffer", "lr_schedule", "rollout_buffer_class")  # fmt: skip


#: The largest model zip read, and the largest size of each entry (uncompressed and compressed).
MODEL_FILE_LIMIT = 512 * MiB
ENTRY_LIMITS: dict[str, int] = {
    "data": 16 * MiB,
    "pytorch_variables.pth": 1 * MiB,
    "policy.pth": 256 * MiB,
    "policy.optimizer.pth": 256 * MiB,
    "_stable_baselines3_version": 1024,
    "system_info.txt": 64 * 1024,
}

_INT, _REAL, _NONE = "int", "real", "none"
#: The JSON keys of an SB3 model's ``data`` entry: ``(kinds, low, high)``; "pickled" entries are
#: replaced (never unpickled), ``policy_kwargs`` is checked against :data:`POLICY_KWARGS`.
DATA_KEYS: dict[str, tuple[tuple[str, ...], float, float]] = {
    "verbose": ((_INT,), 0, 2),
    "num_timesteps": ((_INT,), 0, 10**12),
    "_total_timesteps": ((_INT,), 0, 10**12),
    "_num_timesteps_at_start": ((_INT,), 0, 10**12),
    "_episode_num": ((_INT,), 0, 10**12),
    "_n_updates": ((_INT,), 0, 10**12),
    "seed": ((_INT, _NONE), -(2**63), 2**64),
    "start_time": ((_INT, _REAL), 0, math.inf),
    "learning_rate": ((_REAL,), 0, 1),
    "use_sde": (("bool",), 0, 1),
    "sde_sample_freq": ((_INT,), -1, 10**6),
    "_current_progress_remaining": ((_REAL,), -1, 1),
    "_stats_window_size": ((_INT,), 1, 10**6),
    "n_envs": ((_INT,), 1, 1024),
    "n_steps": ((_INT,), 1, 100_000),
    "batch_size": ((_INT,), 1, 10**6),
    "n_epochs": ((_INT,), 1, 10_000),
    "gamma": ((_REAL,), 0, 1),
    "gae_lambda": ((_REAL,), 0, 1),
    "ent_coef": ((_REAL,), 0, 1e6),
    "vf_coef": ((_REAL,), 0, 1e6),
    "max_grad_norm": ((_REAL,), 0, 1e6),
    "clip_range_vf": ((_REAL, _NONE), 0, 1e6),
    "target_kl": ((_REAL, _NONE), 0, 1e6),
    "normalize_advantage": (("bool",), 0, 1),
    "action_noise": ((_NONE,), 0, 0),
    "tensorboard_log": (("str", _NONE), 0, 0),
    "rollout_buffer_kwargs": (("empty dict",), 0, 0),
    "policy_kwargs": (("dict",), 0, 0),
    #: The algorithm's name (:data:`ONLINE_ALGORITHMS`), written by ``train_online``; older models lack it.
    "esper_algorithm": (("str",), 0, 0),
}
#: The entries SB3 pickles; each is replaced on load (a safe value, or reset).
PICKLED_KEYS = ("policy_class", "observation_space", "action_space", "clip_range", "lr_schedule",
                "rollout_buffer_class", "_last_obs", "_last_episode_starts", "_last_original_obs",
                "ep_info_buffer", "ep_success_buffer")  # fmt: skip
#: The widest layer a saved network may have, and its most layers.
MAX_LAYER, MAX_LAYERS = 2048, 8
_RECURRENT = {"lstm_hidden_size": ((_INT,), 1, MAX_LAYER), "n_lstm_layers": ((_INT,), 1, 4),
              "shared_lstm": (("bool",), 0, 1), "enable_critic_lstm": (("bool",), 0, 1)}  # fmt: skip
#: The ``policy_kwargs`` each algorithm's policy accepts from a file (``net_arch`` is checked apart).
POLICY_KWARGS: dict[str, dict[str, tuple[tuple[str, ...], float, float]]] = {
    "recurrent-ppo": {**_RECURRENT, "net_arch": (("net_arch",), 0, 0), "ortho_init": (("bool",), 0, 1)},
    "maskable-ppo": {"net_arch": (("net_arch",), 0, 0), "ortho_init": (("bool",), 0, 1)},
    "recurrent-ppo-options": {**_RECURRENT, "net_arch": (("net_arch",), 0, 0), "ortho_init": (("bool",), 0, 1)},
    "maskable-ppo-options": {"net_arch": (("net_arch",), 0, 0), "ortho_init": (("bool",), 0, 1)},
    "maskable-ppo-options-bc": {"net_arch": (("net_arch",), 0, 0), "ortho_init": (("bool",), 0, 1)},
    "masked-recurrent-ppo": {"lstm_hidden_size": ((_INT,), 1, MAX_LAYER), "head_hidden": ((_INT, _NONE), 1, MAX_LAYER),
                             "entropy_coef_per_head": (("coefs",), 0, 0)},
}  # fmt: skip


def _is_kind(value: Any, kind: str, low: float, high: float) -> bool:
    if kind == _NONE:
        return value is None
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str) and len(value) < 4096
    if kind == "dict":
        return isinstance(value, dict)
    if kind == "empty dict":
        return value == {}
    if kind == _INT:
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    if kind == _REAL:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok and math.isfinite(value) and low <= value <= high
    if kind == "net_arch":
        layers = (
            [value] if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else None
        )
        return (
            layers is not None
            and (not isinstance(value, dict) or set(value) <= {"pi", "vf"})
            and all(
                isinstance(sizes, list)
                and len(sizes) <= MAX_LAYERS
                and all(_is_kind(n, _INT, 1, MAX_LAYER) for n in sizes)
                for sizes in layers
            )
        )
    if kind == "coefs":
        return value is None or (
            isinstance(value, dict)
            and len(value) <= 16
            and all(isinstance(k, str) and _is_kind(v, _REAL, 0, 1e6) for k, v in value.items())
        )
    raise AssertionError(kind)


def _describe(kinds: tuple[str, ...], low: float, high: float) -> str:
    words = {_INT: f"an integer in [{low}, {high}]", _REAL: f"a finite number in [{low}, {high}]", _NONE: "null",
             "bool": "true or false", "str": "a string", "dict": "an object", "empty dict": "{}",
             "net_arch": f"a list of up to {MAX_LAYERS} layer sizes in [1, {MAX_LAYER}] (or {{'pi': [...], 'vf': [...]}})",
             "coefs": "an object of head names to finite numbers, or null"}  # fmt: skip
    return " or ".join(words[k] for k in kinds)


def check_model_data(path: str | os.PathLike, data: Any, algo: str) -> None:
    """Refuse a model ``data`` JSON with a key ``algo`` does not define, or a value of the wrong
    type or out of bounds (``ValueError`` naming the file and the key)."""
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the model's data is not a JSON object")
    unknown = sorted(set(data) - set(DATA_KEYS) - set(PICKLED_KEYS))
    pickled = [k for k in unknown if isinstance(data[k], dict) and ":serialized:" in data[k]]
    if pickled:
        raise ValueError(f"{path} holds pickled entries Esper does not load: {pickled}")
    if unknown:
        raise ValueError(
            f"{path}: the model's data has keys {unknown} that {algo} does not define "
            f"(valid: {sorted({*DATA_KEYS, *PICKLED_KEYS})})"
        )
    for key in PICKLED_KEYS:
        value = data.get(key)
        if value is not None and not (isinstance(value, dict) and ":serialized:" in value):
            raise ValueError(
                f"{path}: the model's {key!r} must be an SB3 serialized entry, got {value!r:.80}"
            )
    for key, (kinds, low, high) in DATA_KEYS.items():
        if key in data and not any(_is_kind(data[key], k, low, high) for k in kinds):
            raise ValueError(
                f"{path}: the model's {key!r} must be {_describe(kinds, low, high)}, got {data[key]!r:.80}"
            )
    allowed = POLICY_KWARGS[algo]
    kwargs = data.get("policy_kwargs", {})
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(
            f"{path}: the model's policy_kwargs has keys {unknown} that {algo}'s policy does not take from a "
            f"file (valid: {sorted(allowed)})"
        )
    for key, value in kwargs.items():
        kinds, low, high = allowed[key]
        if not any(_is_kind(value, k, low, high) for k in kinds):
            raise ValueError(
                f"{path}: the model's policy_kwargs {key!r} must be {_describe(kinds, low, high)}, got {value!r:.80}"
            )


def model_path(path: str | os.PathLike) -> Path:
    """The model zip of ``path``: the path itself, or ``model.zip`` inside a run directory."""
    p = Path(path)
    if p.is_dir():
        p = p / "model.zip"
    if not p.exists():
        raise ValueError(f"{path} is not a saved online model (an SB3 .zip, or a train-online run directory)")
    return p


def _read_model(path: str | os.PathLike) -> tuple[Path, bytes, dict[str, Any]]:
    """``(zip path, zip bytes, parsed data)``: the file read once, within bounds (nothing unpickled)."""
    p = model_path(path)
    raw = read_regular_file(p, MODEL_FILE_LIMIT)
    try:
        entries = read_zip_entries(p, raw, ENTRY_LIMITS)
    except ValueError as err:
        raise ValueError(f"{err} (not an SB3 model zip)") from None
    if "data" not in entries:
        raise ValueError(f"{p} is not an SB3 model zip (it has no 'data' entry)")
    try:
        data = json.loads(entries["data"].decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{p}: the model's data entry is not UTF-8 ({err})") from None
    except (json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"{p} is not an SB3 model zip (its data entry is not JSON: {err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{p}: the model's data is not a JSON object")
    return p, raw, data


def read_model_data(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON ``data`` entry of an SB3 model zip, parsed (nothing unpickled)."""
    return _read_model(path)[2]


def saved_algorithm(data: dict[str, Any]) -> str:
    """The name in :data:`ONLINE_ALGORITHMS` of a model: its ``esper_algorithm`` entry where it has one
    (two algorithms may share a policy class and differ in their env stack), else the algorithm of
    its policy's module and class doc (models saved before the entry: none acts in options)."""
    policy = data.get("policy_class")
    module = policy.get("__module__") if isinstance(policy, dict) else None
    named = data.get("esper_algorithm")
    for name, record in ONLINE_ALGORITHMS.items():
        if named is not None and name != named:
            continue
        if named is None and record.action_set == "options":
            continue
        cls = model_class(name).policy_aliases[record.policy]
        if module == cls.__module__ and policy.get("__doc__") == cls.__doc__:
            return name
    if named is not None:
        raise ValueError(
            f"the model names algorithm {named!r}, whose policy it does not hold or which is none of the "
            f"online algorithms: {', '.join(ONLINE_ALGORITHMS)}"
        )
    raise ValueError(
        f"the model's policy (module {module!r}) is none of the online algorithms: {', '.join(ONLINE_ALGORITHMS)}"
    )


def _check_space(name: str, saved: dict[str, Any], space: Any) -> None:
    shape = [int(d) for d in space.shape]
    parts = {"_shape": shape}
    if hasattr(space, "n"):
        parts["n"] = str(int(space.n))
    if hasattr(space, "nvec"):
        parts["nvec"] = str(space.nvec)
    bad = {k: (saved.get(k), v) for k, v in parts.items() if saved.get(k) != v}
    if bad:
        raise ValueError(
            f"the model was trained with another {name} than this env's {space} (saved vs env: {bad}); "
            "check --env, --config, the slot count and the algorithm"
        )


def load_online_model(
    path: str | os.PathLike,
    env: Any,
    device: str = "auto",
    hyperparameters: dict[str, Any] | None = None,
    **kwargs: Any,
) -> tuple[str, Any]:
    """``(algorithm name, model)`` of a saved model zip or run directory, bound to ``env``.

    ``env`` (a gym env or SB3 VecEnv of the algorithm's stack, :func:`~esper_agents.online.envs.make_online_env`)
    gives the spaces; a model trained on other spaces is refused. ``hyperparameters`` give the
    clip range a resumed run continues with (default: the saved run's, or PPO_DEFAULTS').
    """
    p, raw, data = _read_model(path)
    algo = saved_algorithm(data)
    check_model_data(p, data, algo)
    record = ONLINE_ALGORITHMS[algo]
    cls = model_class(algo)
    _check_space("observation space", data.get("observation_space") or {}, env.observation_space)
    _check_space("action space", data.get("action_space") or {}, env.action_space)
    params = {**PPO_DEFAULTS, **(hyperparameters or {})}
    custom: dict[str, Any] = {
        "policy_class": cls.policy_aliases[record.policy],
        "observation_space": env.observation_space,
        "action_space": env.action_space,
        "clip_range": params["clip_range"],
        **dict.fromkeys(_RESET_ENTRIES),
    }
    try:
        model = cls.load(io.BytesIO(raw), env=env, device=device, custom_objects=custom, **kwargs)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{p}: a .pth entry is not a tensors-only weights file ({first})") from None
    except (RuntimeError, KeyError, EOFError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"{p}: the weights do not fit the {algo} network ({type(err).__name__}: {first})"
        ) from None
    return algo, model
