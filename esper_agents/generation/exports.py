"""Pack exports: a d3rlpy ReplayBuffer and a Minari dataset, and the pack's rewards (as logged or relabeled).

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
* :func:`to_minari`: a Minari dataset (``minari.load_dataset``), one Minari episode per pack
  episode, observations ``[T + 1, D]``, actions ``[T]``, the exact action mask and the episode's
  preset in ``infos``, an env spec that ``recover_environment()`` rebuilds the env from, and
  Esper's reference returns as ``ref_min_score`` / ``ref_max_score`` where they apply.
* Rewards can be relabeled (``reward_mode``) from the logged components with
  :func:`esper_env.rewards.relabel`, using the pack's reward weights.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from esper_agents.common.io import atomic_path
from esper_agents.generation.collector import EpisodeRecord
from esper_agents.generation.packs import Pack, PackError, open_pack
from esper_env.rewards import REWARD_MODES, RewardConfig, relabel

D3RLPY_ACTION_SIZE_ATTR = "esper_action_size"
EXPORT_FORMATS: tuple[str, ...] = ("d3rlpy", "minari")


def reward_config(pack: Pack, mode: str | None = None) -> RewardConfig:
    """The pack's reward config (its weights and costs), in ``mode`` if given."""
    d = pack.reward_config
    cfg = RewardConfig(**{**d, "intervention_costs": dict(d["intervention_costs"])})
    if mode is not None:
        if mode not in REWARD_MODES:
            raise ValueError(f"unknown reward mode {mode!r}; valid modes are: {', '.join(REWARD_MODES)}")
        cfg = dataclasses.replace(cfg, mode=mode)
    return cfg


def episode_rewards(record: EpisodeRecord, config: RewardConfig | None = None) -> np.ndarray:
    """``[T]`` rewards: as logged if ``config`` is None, else relabeled from the components."""
    if config is None:
        return np.asarray(record.arrays["rewards"], dtype=np.float64)
    return np.asarray(relabel(record.reward_components, config), dtype=np.float64).reshape(len(record))


def iter_records(pack: Pack | str | os.PathLike) -> Iterator[EpisodeRecord]:
    """Every episode of a pack (checksums verified), sorted by episode id."""
    yield from open_pack(pack)


# ---------------------------------------------------------------------------------------------
# d3rlpy


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


# ---------------------------------------------------------------------------------------------
# Minari


@contextlib.contextmanager
def _minari_root(path: str | os.PathLike | None) -> Iterator[None]:
    if path is None:
        yield
        return
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(Path(path).resolve())
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


#: Dataset metadata key of the preset names that ``infos["preset"]`` indexes.
MINARI_PRESETS_KEY = "esper_presets"


def pack_presets(pack: Pack) -> list[str]:
    """The presets (env configs) of a pack's episodes: the generation matrix's, in its order, then any
    other an episode was logged in (in episode order)."""
    names = list(pack.header["generation_spec"]["matrix"]["configs"])
    for eid in pack.episode_ids:
        preset = episode_preset(pack.metadata(eid))
        if preset not in names:
            names.append(preset)
    return names


def episode_preset(metadata: Any) -> str:
    """The preset (config id) an episode was logged in, from its ``EpisodeMetadata``."""
    return str(metadata.environment.get("config_id") or metadata.config_id)


def minari_env_kwargs(pack: Pack, config: str, reward_mode: str | None = None) -> dict[str, Any]:
    """The kwargs of ``gymnasium.make(env_id, **kwargs)`` that rebuild the env of the pack's episodes in
    preset ``config`` (those :meth:`EnvSettings.make <esper_agents.generation.collector.EnvSettings.make>`
    passed), with reward mode ``reward_mode`` (default: the pack's). Plain JSON values only: the reward
    is its mode's name, so the env gets that mode's default weights (see :func:`to_minari`)."""
    env = pack.environment
    kwargs: dict[str, Any] = {
        "config": config,
        "fidelity": str(env["fidelity"]),
        "max_epochs": pack.max_epochs,
        "num_slots": pack.num_slots,
        "reward": reward_mode or str(pack.reward_config["mode"]),
        "num_threads": env.get("torch_num_threads", 1),
        "early_stop_patience": env.get("early_stop_patience"),
    }
    if str(env["env_id"]).startswith("Esper-SynthCIFAR"):
        kwargs["synth_seed"] = int(env.get("synth_seed", 0))
    return kwargs


def minari_env_spec(pack: Pack, config: str, reward_mode: str | None = None) -> Any:
    """The ``EnvSpec`` of ``CompactActions(gymnasium.make(env_id, **minari_env_kwargs(...)))``: the registered
    spec of the pack's env id with those kwargs, and its registered wrappers (``MatchTimeLimit``) followed
    by ``CompactActions``, so that ``gymnasium.make(spec)`` builds that same stack. Built without making
    the env (which would load its dataset); ``TypeError`` if it is not JSON-serialisable."""
    import gymnasium as gym

    from esper_env.wrappers import CompactActions

    registered = gym.spec(str(pack.environment["env_id"]))
    spec = dataclasses.replace(
        registered,
        kwargs={**registered.kwargs, **minari_env_kwargs(pack, config, reward_mode)},
        additional_wrappers=(*registered.additional_wrappers, CompactActions.wrapper_spec()),
    )
    spec.to_json()  # Minari would only warn, and store no spec
    return spec


def minari_ref_scores(pack: Pack, presets: Sequence[str], mode: str) -> tuple[dict[str, Any], str]:
    """Minari's reference-score metadata (``ref_min_score``: always-WAIT's mean return in ``mode``,
    ``ref_max_score``: the default heuristic's, ``num_episodes_average_score``: their seed count) from
    :func:`esper_env.references.reference_scores`, and a sentence for the description. Empty where the pack
    spans several presets, the registry has no entry (or no return in ``mode``), or the heuristic's return
    is not above WAIT's (a normalised score would be undefined or inverted)."""
    from esper_env import references

    env_id, fidelity = str(pack.environment["env_id"]), str(pack.environment["fidelity"])
    if len(presets) != 1:
        return {}, f"No reference scores: the pack spans {len(presets)} presets and they are per preset."
    key = references.reference_key(env_id, presets[0], fidelity, pack.max_epochs)
    try:
        ref = references.reference_scores(
            env_id, config=presets[0], fidelity=fidelity, max_epochs=pack.max_epochs
        )
        low, high = float(ref.returns["wait"][mode]), float(ref.returns["heuristic"][mode])
    except LookupError:  # KeyError too: an entry without returns in this mode
        return {}, f"No reference scores: Esper's reference registry has no {mode!r} returns for {key!r}."
    if not high > low:
        return {}, (
            f"No reference scores: in Esper's reference entry {key!r} the heuristic's mean {mode!r} return "
            f"({high!r}) is not above always-WAIT's ({low!r})."
        )
    meta = {"ref_min_score": low, "ref_max_score": high, "num_episodes_average_score": len(ref.seeds)}
    return meta, (
        f"ref_min_score / ref_max_score are the mean undiscounted {mode!r} returns of always-WAIT and the "
        f"default heuristic ({ref.heuristic_policy}) over {len(ref.seeds)} seeds, from Esper's reference "
        f"entry {key!r}: minari.get_normalized_score gives 0 at WAIT and 1 at the heuristic."
    )


def to_minari(pack: Pack | str | os.PathLike, dataset_id: str, path: str | os.PathLike | None = None,
              reward_mode: str | None = None, *, force: bool = False) -> Any:  # fmt: skip
    """Create the Minari dataset ``dataset_id`` under ``path`` (Minari's datasets root; default
    ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``) and return it.

    Load it back with ``MINARI_DATASETS_PATH=path`` and ``minari.load_dataset(dataset_id)``.
    An existing dataset of that id is an error unless ``force``.

    * Per step, ``infos["action_mask"]`` (``[T + 1, n]`` bool) is the exact legality mask and
      ``infos["timestep"]`` the step index.
    * Preset: ``infos["preset"]`` (``[T + 1]`` int64, constant over an episode) indexes the preset
      names in the dataset metadata ``dataset.storage.metadata["esper_presets"]`` (the generation
      matrix's presets in order); ``dataset.storage.get_episode_metadata([i])`` also holds the name
      (``"esper_preset"``) and the pack's episode id (``"esper_episode_id"``). Numeric infos and episode
      metadata read back alike from every Minari storage format.
    * Env spec: ``dataset.recover_environment()`` (and ``eval_env=True``, the same env) is
      ``CompactActions(gymnasium.make(env_id, **kwargs))``, the stack the episodes were logged in:
      observations are the raw env observation, actions CompactActions indices. ``kwargs`` are
      :func:`minari_env_kwargs`, with the export's reward mode (the rewards stored) by name, so the
      env has that mode's default weights (a warning says so where the pack's differ). A pack spanning
      several presets gets the matrix's first; ``recover_environment(config=name)`` makes another.
    * ``ref_min_score`` / ``ref_max_score``: see :func:`minari_ref_scores`; the description says
      where they come from or why there are none.
    """
    try:
        import minari
        from minari.data_collector import EpisodeBuffer
    except ImportError:
        raise RuntimeError("the Minari export needs Minari: pip install 'esper[minari]'") from None
    from gymnasium import spaces

    from esper_env.rewards import get_reward_config
    from esper_env.spaces import make_observation_space

    pack = open_pack(pack)
    if len(pack) == 0:
        raise PackError(f"{pack.path}: the pack has no episodes to export")
    cfg = None if reward_mode is None else reward_config(pack, reward_mode)
    mode = reward_mode or pack.reward_config["mode"]
    if (cfg if cfg is not None else reward_config(pack)).to_dict() != get_reward_config(mode).to_dict():
        warnings.warn(
            f"{pack.path}: the pack's reward weights differ from the {mode!r} defaults; the Minari env "
            "spec names the mode only, so a recovered env uses the defaults",
            UserWarning,
            stacklevel=2,
        )
    presets = pack_presets(pack)
    env_spec = minari_env_spec(pack, presets[0], reward_mode)
    ref_meta, ref_note = minari_ref_scores(pack, presets, mode)
    with _minari_root(path):
        if dataset_id in minari.list_local_datasets():
            if not force:
                raise FileExistsError(
                    f"Minari dataset {dataset_id!r} already exists under {path or 'the Minari root'}; "
                    "pass force=True (--force) to replace it"
                )
            minari.delete_dataset(dataset_id)
        buffers, episode_meta = [], []
        for i, r in enumerate(pack):
            T = len(r)
            preset = episode_preset(r.metadata)
            buffers.append(
                EpisodeBuffer(
                    id=i,
                    seed=int(r.metadata.random_seed),
                    observations=np.asarray(r.arrays["observations"], dtype=np.float32),
                    actions=np.asarray(r.arrays["actions"], dtype=np.int64),
                    rewards=episode_rewards(r, cfg).astype(np.float64),
                    terminations=np.asarray(r.arrays["terminated"], dtype=bool),
                    truncations=np.asarray(r.arrays["truncated"], dtype=bool),
                    infos={
                        "action_mask": np.asarray(r.arrays["masks"], dtype=bool),
                        "timestep": np.arange(T + 1, dtype=np.int64),
                        "preset": np.full(T + 1, presets.index(preset), dtype=np.int64),
                    },
                )
            )
            episode_meta.append({"esper_preset": preset, "esper_episode_id": r.metadata.episode_id})
        spec = pack.header["generation_spec"]
        env_note = (
            f"dataset.recover_environment() makes CompactActions(gymnasium.make({env_spec.id!r}, "
            f"config={presets[0]!r}, ...)), the env the episodes were logged in"
            if len(presets) == 1
            else f"The pack spans presets {presets}; dataset.recover_environment() (and the eval env) makes "
            f"CompactActions(gymnasium.make({env_spec.id!r}, config={presets[0]!r}, ...)), the generation "
            "matrix's first preset: pass config=NAME for another"
        )
        with warnings.catch_warnings():
            # Minari nags about metadata a pack does not have (author, contact, code link), and about the
            # env spec, written below.
            warnings.filterwarnings(
                "ignore", message=".*(author|code_permalink|env_spec is None).*", category=UserWarning
            )
            # env=None: given an EnvSpec (and ref scores) Minari makes the env, which loads its dataset.
            dataset = minari.create_dataset_from_buffers(
                dataset_id=dataset_id,
                buffer=buffers,
                env=None,
                eval_env=env_spec,
                action_space=spaces.Discrete(pack.n_actions),
                observation_space=make_observation_space(pack.num_slots),
                algorithm_name="esper behavior policies: " + ", ".join(spec["matrix"]["policies"]),
                description=(
                    f"Esper pack {pack.name!r} ({pack.environment['env_id']}, "
                    f"fidelity {pack.environment['fidelity']}, "
                    f"max_epochs {pack.max_epochs}), {len(pack)} episodes, reward mode {mode!r}. Actions are "
                    "esper_env.wrappers.CompactActions indices; infos['action_mask'] is the exact "
                    f"legality mask; infos['preset'] indexes metadata[{MINARI_PRESETS_KEY!r}]. "
                    f"{env_note}. {ref_note}"
                ),
            )
        try:
            dataset.storage.update_metadata(
                {"env_spec": env_spec.to_json(), MINARI_PRESETS_KEY: presets, **ref_meta}
            )
            dataset.storage.update_episode_metadata(episode_meta)
        except BaseException:
            minari.delete_dataset(dataset_id)
            raise
    return minari.MinariDataset(dataset.storage.data_path)  # read again: with its env spec


__all__: Sequence[str] = (
    "EXPORT_FORMATS",
    "MINARI_PRESETS_KEY",
    "episode_from_arrays",
    "episode_preset",
    "episode_rewards",
    "export_d3rlpy",
    "iter_records",
    "load_d3rlpy",
    "minari_env_kwargs",
    "minari_env_spec",
    "minari_ref_scores",
    "pack_presets",
    "reward_config",
    "save_d3rlpy",
    "to_d3rlpy",
    "to_minari",
)
