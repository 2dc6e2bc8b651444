"""Saved agents: a directory of JSON and tensors, loaded without running anything from it.

::

    AGENT/
      agent.json    format, versions, the d3rlpy config with observation shape and action size
                    (d3rlpy's own JSON serialization), and the sha256 of weights.pt
      weights.pt    the state dicts of the networks and optimizers (``torch.save``)

:func:`load_agent` rebuilds the algorithm from ``agent.json`` (only the config types of
:data:`AGENT_CONFIG_TYPES` are accepted) and reads ``weights.pt`` with
``torch.load(..., weights_only=True)``, which refuses any pickled object that is not a tensor or
a plain container. d3rlpy's ``save`` / ``load_learnable`` (``model.d3``) pickle the whole file,
so a crafted ``model.d3`` runs code when loaded: this package neither writes nor reads them.
:class:`AgentCheckpoints` makes d3rlpy's ``fit`` write its per-epoch checkpoints in this format.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from d3rlpy.logging import FileAdapter

from esper_agents.common.bounded import MiB, read_regular_file
from esper_agents.offline.algorithms import CONFIG_TYPES

__all__ = [
    "AGENT_CONFIG_TYPES",
    "AGENT_FILE",
    "AGENT_FORMAT",
    "AGENT_FORMAT_VERSION",
    "WEIGHTS_FILE",
    "AgentCheckpoints",
    "AgentFileError",
    "is_saved_agent",
    "load_agent",
    "save_agent",
]

AGENT_FORMAT = "esper-agent"
AGENT_FORMAT_VERSION = 1
AGENT_FILE = "agent.json"
WEIGHTS_FILE = "weights.pt"
#: The d3rlpy config types a saved agent may name (the algorithms ``esper train-offline`` saves).
AGENT_CONFIG_TYPES: tuple[str, ...] = tuple(c.get_type() for c in CONFIG_TYPES.values())


#: The largest agent.json and weights.pt read; the bounds of the shapes and sizes a config may ask for.
AGENT_FILE_LIMIT, WEIGHTS_FILE_LIMIT = 16 * MiB, 512 * MiB
MAX_OBSERVATION_SIZE, MAX_ACTIONS, MAX_LAYER, MAX_LAYERS = 100_000, 4096, 4096, 16
MAX_ENCODER_PARAMETERS = 16_000_000


class AgentFileError(ValueError):
    """A saved agent that cannot be loaded; the message names the file and the problem."""


def _modules(algo: Any) -> dict[str, Any]:
    """The algorithm's networks and optimizers by name (what d3rlpy's checkpointer saves)."""
    from d3rlpy.torch_utility import asdict_without_copy
    from d3rlpy.types import OptimizerWrapperProto

    if algo.impl is None:
        raise ValueError("the algorithm has no networks yet (fit it or build it first)")
    return {
        k: v
        for k, v in asdict_without_copy(algo.impl.modules).items()
        if isinstance(v, (torch.nn.Module, OptimizerWrapperProto))
    }


def save_agent(algo: Any, path: str | os.PathLike) -> Path:
    """Write ``algo`` (a fitted d3rlpy algorithm) as the directory ``path``; returns it."""
    import d3rlpy
    from d3rlpy.base import LearnableConfigWithShape

    from esper_agents.common.io import atomic_write, canonical_json

    root = Path(path)
    if root.exists() and not root.is_dir():
        raise AgentFileError(f"{root}: exists and is not a directory (a saved agent is a directory)")
    root.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save({k: v.state_dict() for k, v in _modules(algo).items()}, buf)
    weights = buf.getvalue()
    config = LearnableConfigWithShape(
        observation_shape=algo.impl.observation_shape, action_size=algo.impl.action_size, config=algo.config
    )
    doc = {
        "format": AGENT_FORMAT,
        "format_version": AGENT_FORMAT_VERSION,
        "d3rlpy_version": d3rlpy.__version__,
        "torch_version": torch.__version__,
        "config": json.loads(config.serialize()),
        "weights": {"file": WEIGHTS_FILE, "sha256": hashlib.sha256(weights).hexdigest()},
    }
    atomic_write(root / WEIGHTS_FILE, weights)
    atomic_write(root / AGENT_FILE, canonical_json(doc))
    return root


def is_saved_agent(path: str | os.PathLike) -> bool:
    return (Path(path) / AGENT_FILE).is_file()


def _read_doc(root: Path) -> dict[str, Any]:
    jp = root / AGENT_FILE
    if root.is_file():
        raise AgentFileError(
            f"{root}: is a file; a saved agent is a directory holding {AGENT_FILE} and {WEIGHTS_FILE} "
            "(d3rlpy's pickled model.d3 files are not loaded: unpickling runs code from the file)"
        )
    try:
        doc = json.loads(read_regular_file(jp, AGENT_FILE_LIMIT))
    except FileNotFoundError:
        raise AgentFileError(f"{jp}: missing; {root} is not a saved agent") from None
    except (OSError, RecursionError) as err:
        raise AgentFileError(f"{jp}: is not valid JSON ({type(err).__name__}: {err})") from None
    except ValueError as err:
        if str(err).startswith(str(jp)):  # not a regular file, or too large
            raise AgentFileError(str(err)) from None
        raise AgentFileError(f"{jp}: is not valid JSON ({type(err).__name__}: {err})") from None
    if not isinstance(doc, dict) or doc.get("format") != AGENT_FORMAT:
        raise AgentFileError(f"{jp}: is not an {AGENT_FORMAT!r} file")
    if doc.get("format_version") != AGENT_FORMAT_VERSION:
        raise AgentFileError(
            f"{jp}: format_version {doc.get('format_version')!r} is not supported "
            f"(this reader reads {AGENT_FORMAT_VERSION})"
        )
    return doc


def _is_size(value: Any, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= high


def _check_layers(jp: Path, where: str, value: Any, inputs: int) -> None:
    """An encoder's ``hidden_units``: at most :data:`MAX_LAYERS` sizes, and at most
    :data:`MAX_ENCODER_PARAMETERS` weights from its ``inputs`` through its layers."""
    if not (
        isinstance(value, list) and len(value) <= MAX_LAYERS and all(_is_size(n, MAX_LAYER) for n in value)
    ):
        raise AgentFileError(
            f"{jp}: {where} must be up to {MAX_LAYERS} layer sizes in [1, {MAX_LAYER}], got {value!r:.80}"
        )
    weights = sum(a * b for a, b in zip([inputs, *value], value))
    if weights > MAX_ENCODER_PARAMETERS:
        raise AgentFileError(
            f"{jp}: {where} {value} on {inputs} inputs has {weights:,} weights, more than the "
            f"{MAX_ENCODER_PARAMETERS:,} a saved encoder may have"
        )


def _check_sizes(jp: Path, config: dict[str, Any]) -> None:
    """Refuse shapes and network sizes out of bounds before anything is allocated."""
    shape = config.get("observation_shape")
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= 4
        or not all(_is_size(d, MAX_OBSERVATION_SIZE) for d in shape)
        or math.prod(shape) > MAX_OBSERVATION_SIZE
    ):
        raise AgentFileError(
            f"{jp}: observation_shape must be 1 to 4 positive integers of at most {MAX_OBSERVATION_SIZE} "
            f"values in all, got {shape!r:.80}"
        )
    if not _is_size(config.get("action_size"), MAX_ACTIONS):
        raise AgentFileError(
            f"{jp}: action_size must be an integer in [1, {MAX_ACTIONS}], got {config.get('action_size')!r:.80}"
        )

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "hidden_units":
                    _check_layers(jp, f"{where}{key}", value, math.prod(shape))
                sized = key in ("mask_size", "feature_size", "hidden_size") and value is not None
                if sized and not _is_size(value, MAX_LAYER):
                    raise AgentFileError(f"{jp}: {where}{key} must be in [1, {MAX_LAYER}], got {value!r:.80}")
                walk(value, f"{where}{key}.")
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    walk(config.get("config"), "config.")


def _build(jp: Path, doc: dict[str, Any], device: str) -> Any:
    from d3rlpy.base import LearnableConfigWithShape

    config = doc.get("config")
    inner = config.get("config") if isinstance(config, dict) else None
    kind = inner.get("type") if isinstance(inner, dict) else None
    if not isinstance(kind, str) or kind not in AGENT_CONFIG_TYPES:
        raise AgentFileError(
            f"{jp}: config type {kind!r} is not one of the saved-agent algorithms {list(AGENT_CONFIG_TYPES)}"
        )
    assert isinstance(config, dict)
    _check_sizes(jp, config)
    try:
        return LearnableConfigWithShape.deserialize_from_dict(config).create(device)
    except (TypeError, ValueError, KeyError, AssertionError) as err:
        raise AgentFileError(
            f"{jp}: config cannot build the algorithm ({type(err).__name__}: {err})"
        ) from None


def _read_weights(root: Path, doc: dict[str, Any], device: str) -> Any:
    from d3rlpy.torch_utility import map_location

    weights = doc.get("weights")
    if not isinstance(weights, dict) or weights.get("file") != WEIGHTS_FILE:
        raise AgentFileError(
            f"{root / AGENT_FILE}: weights must be {{'file': {WEIGHTS_FILE!r}, 'sha256': ...}}"
        )
    wp = root / WEIGHTS_FILE
    try:
        data = read_regular_file(wp, WEIGHTS_FILE_LIMIT)
    except OSError as err:
        raise AgentFileError(f"{wp}: cannot be read ({err})") from None
    except ValueError as err:
        raise AgentFileError(str(err)) from None
    if hashlib.sha256(data).hexdigest() != weights.get("sha256"):
        raise AgentFileError(f"{wp}: sha256 does not match {AGENT_FILE}: the file is corrupt or was replaced")
    try:
        return torch.load(io.BytesIO(data), map_location=map_location(device), weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise AgentFileError(f"{wp}: not a tensors-only weights file ({first})") from None


def load_agent(path: str | os.PathLike, device: str = "cpu:0") -> Any:
    """The d3rlpy algorithm saved by :func:`save_agent` at ``path``; nothing in it is executed.

    Raises :class:`AgentFileError` naming the file for anything that is not a valid saved agent.
    """
    root = Path(path)
    doc = _read_doc(root)
    algo = _build(root / AGENT_FILE, doc, device)
    state = _read_weights(root, doc, device)
    modules = _modules(algo)
    if not isinstance(state, dict) or set(state) != set(modules):
        got = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise AgentFileError(f"{root / WEIGHTS_FILE}: holds {got}, the algorithm needs {sorted(modules)}")
    for name, module in modules.items():
        try:
            module.load_state_dict(state[name])
        except (RuntimeError, ValueError, KeyError, TypeError) as err:
            raise AgentFileError(f"{root / WEIGHTS_FILE}: {name!r} does not fit the config ({err})") from None
    return algo


class _AgentFileAdapter(FileAdapter):
    def save_model(self, epoch: int, algo: Any) -> None:
        save_agent(algo, os.path.join(self.logdir, f"model_{epoch}"))


@dataclasses.dataclass
class AgentCheckpoints:
    """A d3rlpy logger adapter factory: d3rlpy's file logs (params.json, one CSV per metric), but
    each checkpoint is a saved agent ``model_<step>/`` instead of a pickled ``model_<step>.d3``."""

    root_dir: str

    def create(self, algo: Any, experiment_name: str, n_steps_per_epoch: int) -> FileAdapter:
        return _AgentFileAdapter(algo, os.path.join(self.root_dir, experiment_name))
