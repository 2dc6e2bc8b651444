"""A pack as a d3rlpy ``ReplayBuffer``: :func:`to_d3rlpy`, :func:`save_d3rlpy`, :func:`load_d3rlpy`.

* :func:`to_d3rlpy`: a ``d3rlpy.dataset.ReplayBuffer`` (InfiniteBuffer) with the compact action
  index as the discrete action. d3rlpy counts ``size - 1`` transitions in an episode that did not
  terminate (it needs a next observation), so a TRUNCATED episode is stored with ``T + 1``
  observations (its final state last) and a dummy row ``T`` (reward 0, action ``n - 1``): all
  ``T`` real transitions are sampled, the last one bootstrapping from the true final state. A
  TERMINATED episode stores its ``T`` states and d3rlpy gives its last transition a zero next
  observation and ``terminal = 1``. (``d3rlpy.dataset.MDPDataset`` would drop the last transition
  of every timed-out episode, and ``d3rlpy.datasets.get_minari`` misaligns observations across
  episodes; neither is used.)
* Action size: a plain ``ReplayBuffer.load(f, InfiniteBuffer())`` takes ``1 +`` the largest
  action stored in any row (``d3rlpy.dataset.ReplayBuffer.__init__``), which undercounts when
  the last actions never occur. The dummy row's action is ``n - 1`` so that a plain load finds
  the true ``n``; no transition ever reads it (it is never sampled, and no algorithm here uses
  d3rlpy's ``next_action``). A pack whose episodes all terminate has no dummy row: then
  :func:`load_d3rlpy`, which reads the count from an HDF5 attribute :func:`save_d3rlpy` writes,
  is the one loader that knows it (``esper export`` prints which line to use).
* Rewards can be relabeled (``reward_mode``, :mod:`esper_agents.generation.relabel`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from esper_agents.common.io import atomic_path
from esper_agents.generation.collector import EpisodeRecord
from esper_agents.generation.packs import Pack, PackError, open_pack
from esper_agents.generation.relabel import episode_rewards, reward_config

__all__ = [
    "D3RLPY_ACTION_SIZE_ATTR", "d3rlpy_episode", "episode_from_arrays", "export_d3rlpy", "load_d3rlpy",
    "save_d3rlpy", "to_d3rlpy",
]  # fmt: skip

D3RLPY_ACTION_SIZE_ATTR = "esper_action_size"


def d3rlpy_episode(record: EpisodeRecord, rewards: np.ndarray, append_mask: bool = False) -> Any:
    """One logged episode as a d3rlpy ``Episode`` (see :func:`episode_from_arrays`)."""
    obs = np.asarray(record.arrays["observations"], dtype=np.float32)
    masks = record.arrays["masks"]
    if append_mask:
        obs = np.concatenate([obs, masks.astype(np.float32)], axis=1)
    return episode_from_arrays(
        obs, record.arrays["actions"], rewards, bool(record.metadata.done), masks.shape[1]
    )


def episode_from_arrays(
    observations: np.ndarray, actions: np.ndarray, rewards: np.ndarray, terminated: bool, n_actions: int
) -> Any:
    """A d3rlpy ``Episode`` from ``T + 1`` observations (the final state last), ``T`` actions and rewards.

    A terminated episode keeps its ``T`` states (d3rlpy gives the last transition a zero next
    observation). A truncated one keeps all ``T + 1``, with a dummy row ``T`` (action
    ``n_actions - 1``, reward 0) that d3rlpy never samples as a transition: it only supplies the
    last next-observation, so no transition is dropped (d3rlpy's own timeout handling drops the
    last one), and its action makes d3rlpy's inferred action size the true one.
    """
    from d3rlpy.dataset import Episode

    obs = np.asarray(observations, dtype=np.float32)
    actions = np.asarray(actions, dtype=np.int64).reshape(-1)
    rewards = np.asarray(rewards, dtype=np.float32).reshape(-1)
    if terminated:
        obs = obs[:-1]
    else:
        actions = np.append(actions, n_actions - 1)
        rewards = np.append(rewards, np.float32(0.0))
    return Episode(
        observations=obs,
        actions=actions.reshape(-1, 1),
        rewards=rewards.reshape(-1, 1).astype(np.float32),
        terminated=bool(terminated),
    )


def to_d3rlpy(
    pack: Pack | str | os.PathLike, reward_mode: str | None = None, *, append_mask: bool = False
) -> Any:
    """A d3rlpy ReplayBuffer holding every transition of the pack (see the module docstring).

    ``reward_mode`` relabels rewards ("shaped", "sparse", "contribution"); None keeps the logged
    ones. ``append_mask`` appends the ``n_actions`` legality mask to each observation.
    """
    pack = open_pack(pack)
    if len(pack) == 0:
        raise PackError(f"{pack.path}: the pack has no episodes to export")
    cfg = None if reward_mode is None else reward_config(pack, reward_mode)
    episodes = [d3rlpy_episode(r, episode_rewards(r, cfg), append_mask) for r in pack]
    return _replay_buffer(episodes, pack.n_actions)


def _replay_buffer(episodes: Sequence[Any], action_size: int | None) -> Any:
    from d3rlpy.constants import ActionSpace
    from d3rlpy.dataset import InfiniteBuffer, ReplayBuffer

    first = episodes[0]
    # Signatures given explicitly: d3rlpy would otherwise log its guesses to stdout.
    return ReplayBuffer(
        InfiniteBuffer(),
        episodes=episodes,
        observation_signature=first.observation_signature,
        action_signature=first.action_signature,
        reward_signature=first.reward_signature,
        action_space=ActionSpace.DISCRETE,
        action_size=action_size
        if action_size is not None
        else 1 + max(int(e.actions.max()) for e in episodes),
    )


def save_d3rlpy(buffer: Any, path: str | os.PathLike, action_size: int | None = None) -> Path:
    """``buffer.dump`` to ``path`` (.h5), plus the action count as an HDF5 attribute.

    Written to a temporary file beside ``path`` and renamed over it; nothing is left behind
    if that fails. ``path`` must not be a directory.
    """
    import h5py

    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{p} is a directory; the d3rlpy export is one .h5 file")
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(p) as tmp:
        with open(tmp, "w+b") as f:  # h5py reads back what it writes
            buffer.dump(f)
        size = action_size if action_size is not None else buffer.dataset_info.action_size
        with h5py.File(tmp, "a") as h5:
            h5.attrs[D3RLPY_ACTION_SIZE_ATTR] = int(size)
    return p


def load_d3rlpy(path: str | os.PathLike) -> Any:
    """Load a :func:`save_d3rlpy` file as a ReplayBuffer (InfiniteBuffer) with its true action count."""
    import h5py
    from d3rlpy.dataset import Episode
    from d3rlpy.dataset.io import load

    with h5py.File(path, "r") as h5:
        size = h5.attrs.get(D3RLPY_ACTION_SIZE_ATTR)
    with open(path, "rb") as f:
        episodes = load(Episode, f)
    if not episodes:
        raise ValueError(f"{path}: holds no episodes")
    return _replay_buffer(episodes, None if size is None else int(size))


def export_d3rlpy(pack: Pack | str | os.PathLike, path: str | os.PathLike, reward_mode: str | None = None,
                  *, append_mask: bool = False) -> Path:  # fmt: skip
    pack = open_pack(pack)
    return save_d3rlpy(to_d3rlpy(pack, reward_mode, append_mask=append_mask), path, pack.n_actions)
