"""Online checkpoints that continue the same run: :func:`save_checkpoint`, :func:`resume_checkpoint`.

A checkpoint is taken at a rollout boundary after the PPO update (never inside rollout
collection, where SB3's ``CheckpointCallback`` fires) and is two files with one stem::

    <stem>.zip         the SB3 model zip: weights, optimizer state, ``num_timesteps``, update count
    <stem>.resume.pt   what the zip leaves out, as tensors and plain values (read with
                       ``torch.load(weights_only=True)``): the RNG states (torch, CUDA, numpy's
                       global, Python's ``random``, the model's action space), every env's state
                       (:meth:`~esper_env.EsperEnv.snapshot` and the mask ``MaskInObservation``
                       holds), the last observations and episode starts, the LSTM states of the
                       recurrent algorithms, and the episode logger's state (rows written, the
                       illegal choices of the episodes in flight)

Both are written atomically (:func:`~esper_agents.common.io.atomic_path`), the resume state
first; a checkpoint exists once its zip does, and both files must read and agree on
``num_timesteps``. :func:`resume_checkpoint` loads both into a new model on a new VecEnv, so
that ``learn`` continues the interrupted run step for step.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from esper_agents.common.io import atomic_path

__all__ = ["RESUME_SUFFIX", "CheckpointError", "list_checkpoints", "resume_checkpoint", "save_checkpoint"]

#: The resume state's file beside ``<stem>.zip``.
RESUME_SUFFIX = ".resume.pt"
RESUME_VERSION = 1
_CHECKPOINT = re.compile(r"model_(\d+)_steps\.zip$")
#: What reading a torn or foreign checkpoint raises (SB3's loader, torch.load, zipfile, our checks).
_UNREADABLE = (ValueError, RuntimeError, OSError, EOFError, KeyError, TypeError, zipfile.BadZipFile,
               pickle.UnpicklingError)  # fmt: skip


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from (torn, missing its resume state, or inconsistent)."""


def list_checkpoints(out: str | os.PathLike) -> list[tuple[Path, int]]:
    """The checkpoints of a run directory, ``(zip path, env steps)``, newest first."""
    found = [
        (p, int(m.group(1)))
        for p in (Path(out) / "checkpoints").glob("model_*_steps.zip")
        if (m := _CHECKPOINT.search(p.name))
    ]
    return sorted(found, key=lambda item: item[1], reverse=True)


def resume_path(model_zip: str | os.PathLike) -> Path:
    """The resume state's path of a checkpoint (or final model) zip."""
    p = Path(model_zip)
    return p.with_name(p.name.removesuffix(".zip") + RESUME_SUFFIX)


def _numpy_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}  # fmt: skip


def _set_numpy_state(state: dict[str, Any]) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state((state["name"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"]))


def _lstm_states(model: Any) -> dict[str, list[torch.Tensor]] | None:
    states = getattr(model, "_last_lstm_states", None)
    if states is None:
        return None
    return {
        "pi": [t.detach().cpu().clone() for t in states.pi],
        "vf": [t.detach().cpu().clone() for t in states.vf],
    }


def _env_states(venv: Any) -> list[dict[str, Any]]:
    snapshots = venv.env_method("snapshot")
    # MaskInObservation keeps the last step's mask (MaskablePPO reads it); the env's snapshot does not.
    masks = venv.get_attr("_mask") if venv.has_attr("_mask") else [None] * venv.num_envs
    return [
        {"env": snap, "mask": None if mask is None else torch.from_numpy(np.array(mask, dtype=bool))}
        for snap, mask in zip(snapshots, masks)
    ]


def capture_state(model: Any, episodes: dict[str, Any]) -> dict[str, Any]:
    """The resume state of ``model`` (at a rollout boundary) and of the episode logger (``episodes``)."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    return {
        "version": RESUME_VERSION,
        "num_timesteps": int(model.num_timesteps),
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": cuda,
            "numpy": _numpy_state(),
            "python": random.getstate(),
            "action_space": model.action_space.np_random.bit_generator.state,
        },
        "envs": _env_states(model.get_env()),
        "last_obs": torch.from_numpy(np.array(model._last_obs)),
        "last_episode_starts": torch.from_numpy(np.array(model._last_episode_starts, dtype=bool)),
        "lstm": _lstm_states(model),
        "episodes": episodes,
    }


def save_checkpoint(model: Any, path: str | os.PathLike, episodes: dict[str, Any]) -> None:
    """Write ``model`` as ``path`` (a ``.zip``) with its resume state beside it, each atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = capture_state(model, episodes)
    with atomic_path(resume_path(path)) as tmp:
        torch.save(state, tmp)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        model.save(f)


def _read_state(path: Path, num_timesteps: int, n_envs: int) -> dict[str, Any]:
    state_path = resume_path(path)
    if not state_path.is_file():
        raise CheckpointError(f"{path} has no resume state ({state_path.name})")
    try:
        state = torch.load(state_path, weights_only=True, map_location="cpu")
    except _UNREADABLE as err:
        raise CheckpointError(f"{state_path} does not read ({type(err).__name__}: {err})") from None
    if not isinstance(state, dict) or state.get("version") != RESUME_VERSION:
        raise CheckpointError(f"{state_path} is not a resume state of version {RESUME_VERSION}")
    if state.get("num_timesteps") != num_timesteps:
        raise CheckpointError(
            f"{state_path} is of step {state.get('num_timesteps')}, its model of step {num_timesteps}"
        )
    if len(state["envs"]) != n_envs:
        raise CheckpointError(f"{state_path} holds {len(state['envs'])} envs, this run has {n_envs}")
    return state


def _restore(model: Any, venv: Any, state: dict[str, Any]) -> None:
    """Put ``model`` and ``venv`` in the state a checkpoint recorded (the RNGs last: resets use none
    of the global ones, but nothing after this line may draw from them)."""
    venv.reset()  # consumes the reset seeds the model's seeding queued; the snapshots replace the envs' state
    for i, env_state in enumerate(state["envs"]):
        venv.env_method("restore", env_state["env"], indices=[i])
        if env_state["mask"] is not None:
            venv.set_attr("_mask", env_state["mask"].numpy().copy(), indices=[i])
    model._last_obs = state["last_obs"].numpy().copy()
    model._last_episode_starts = state["last_episode_starts"].numpy().copy()
    if state["lstm"] is not None:
        from sb3_contrib.common.recurrent.type_aliases import RNNStates

        device = model.device
        model._last_lstm_states = RNNStates(
            tuple(t.to(device) for t in state["lstm"]["pi"]), tuple(t.to(device) for t in state["lstm"]["vf"])
        )
    rng = state["rng"]
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    _set_numpy_state(rng["numpy"])
    random.setstate(rng["python"])
    model.action_space.np_random.bit_generator.state = rng["action_space"]


def resume_checkpoint(path: str | os.PathLike, venv: Any, **load: Any) -> tuple[Any, dict[str, Any]]:
    """``(model, episode logger state)`` of the checkpoint ``path``, bound to ``venv`` (a new VecEnv of
    the run) in the state the checkpoint recorded; ``load`` goes to
    :func:`~esper_agents.online.saved.load_online_model`. A checkpoint that does not read, lacks its
    resume state or does not match this run is a :class:`CheckpointError`."""
    from esper_agents.online.saved import load_online_model

    path = Path(path)
    try:
        _, model = load_online_model(path, venv, **load)
    except _UNREADABLE as err:
        raise CheckpointError(f"{path} does not load ({type(err).__name__}: {err})") from None
    state = _read_state(path, int(model.num_timesteps), venv.num_envs)
    try:
        _restore(model, venv, state)
    except _UNREADABLE as err:
        raise CheckpointError(
            f"{resume_path(path)} does not fit this run ({type(err).__name__}: {err})"
        ) from None
    return model, state["episodes"]
