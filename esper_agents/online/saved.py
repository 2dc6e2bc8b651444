"""Load a saved online model (SB3 zip) without running code from the file: :func:`load_online_model`.

SB3's ``load`` unpickles (cloudpickle) several entries of a model zip: the policy class, the
spaces, the schedules, the last observation. A crafted zip could run code there. This loader
reads the zip's JSON itself, recognises the algorithm from the policy's module name (plain text
in the file), and hands SB3 safe replacements for every pickled entry, so nothing from the file
is unpickled; the weights load with ``torch.load(weights_only=True)`` (SB3's own choice). An
entry that is pickled and unknown is refused.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

from esper_agents.online.algorithms import ONLINE_ALGORITHMS, PPO_DEFAULTS, model_class

__all__ = ["load_online_model", "read_model_data", "saved_algorithm"]

#: Pickled entries SB3 writes whose value a loaded model rebuilds (None: reset, or the default class).
_RESET_ENTRIES = ("_last_obs", "_last_episode_starts", "_last_original_obs", "ep_info_buffer",
                  "ep_success_buffer", "lr_schedule", "rollout_buffer_class")  # fmt: skip


def model_path(path: str | os.PathLike) -> Path:
    """The model zip of ``path``: the path itself, or ``model.zip`` inside a run directory."""
    p = Path(path)
    if p.is_dir():
        p = p / "model.zip"
    if not p.is_file():
        raise ValueError(f"{path} is not a saved online model (an SB3 .zip, or a train-online run directory)")
    return p


def read_model_data(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON ``data`` entry of an SB3 model zip, parsed (nothing unpickled)."""
    p = model_path(path)
    try:
        with zipfile.ZipFile(p) as archive:
            return json.loads(archive.read("data"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as err:
        raise ValueError(f"{p} is not an SB3 model zip ({err})") from None


def saved_algorithm(data: dict[str, Any]) -> str:
    """The name in :data:`ONLINE_ALGORITHMS` of a model, from its policy's module and class doc."""
    policy = data.get("policy_class")
    module = policy.get("__module__") if isinstance(policy, dict) else None
    for name, record in ONLINE_ALGORITHMS.items():
        cls = model_class(name).policy_aliases[record.policy]
        if module == cls.__module__ and policy.get("__doc__") == cls.__doc__:
            return name
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
    p = model_path(path)
    data = read_model_data(p)
    algo = saved_algorithm(data)
    record = ONLINE_ALGORITHMS[algo]
    cls = model_class(algo)
    _check_space("observation space", data.get("observation_space", {}), env.observation_space)
    _check_space("action space", data.get("action_space", {}), env.action_space)
    params = {**PPO_DEFAULTS, **(hyperparameters or {})}
    custom: dict[str, Any] = {
        "policy_class": cls.policy_aliases[record.policy],
        "observation_space": env.observation_space,
        "action_space": env.action_space,
        "clip_range": params["clip_range"],
        **dict.fromkeys(_RESET_ENTRIES),
    }
    pickled = sorted(
        k for k, v in data.items() if isinstance(v, dict) and ":serialized:" in v and k not in custom
    )
    nested = sorted(
        k for k, v in data.get("policy_kwargs", {}).items() if isinstance(v, dict) and ":serialized:" in v
    )
    if pickled or nested:
        raise ValueError(f"{p} holds pickled entries Esper does not load: {pickled + nested}")
    return algo, cls.load(p, env=env, device=device, custom_objects=custom, **kwargs)
