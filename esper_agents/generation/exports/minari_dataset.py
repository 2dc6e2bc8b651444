"""A pack as a Minari dataset: :func:`to_minari`, and the env spec it stores (:func:`minari_env_spec`).

:func:`to_minari` writes one Minari episode per pack episode, observations ``[T + 1, D]``, actions
``[T]``, the exact action mask and the episode's preset in ``infos``, an env spec that
``recover_environment()`` rebuilds the env from (built from the pack's
:class:`~esper_env.settings.EnvSettings`), and Esper's reference returns as ``ref_min_score`` /
``ref_max_score`` where they apply. Rewards can be relabeled (``reward_mode``,
:mod:`esper_agents.generation.relabel`).
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

from esper_agents.generation.packs import Pack, PackError, open_pack
from esper_agents.generation.relabel import episode_rewards, reward_config
from esper_env.settings import EnvSettings

__all__ = [
    "MINARI_PRESETS_KEY", "episode_preset", "minari_env_settings", "minari_env_spec", "minari_ref_scores",
    "pack_presets", "to_minari",
]  # fmt: skip


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


def minari_env_settings(pack: Pack, config: str, reward_mode: str | None = None) -> EnvSettings:
    """The settings that rebuild the env of the pack's episodes in preset ``config``, with reward mode
    ``reward_mode`` (default: the pack's). The reward is its mode's name, so the env gets that mode's
    default weights (see :func:`to_minari`)."""
    settings = pack.settings.replace(config=config)
    return settings if reward_mode is None else settings.replace(reward=reward_mode)


def minari_env_spec(pack: Pack, config: str, reward_mode: str | None = None) -> Any:
    """The ``EnvSpec`` of ``CompactActions(minari_env_settings(...).make())``: the registered spec of the
    pack's env id with the settings' kwargs, and its registered wrappers (``MatchTimeLimit``) followed
    by ``CompactActions``, so that ``gymnasium.make(spec)`` builds that same stack. Built without making
    the env (which would load its dataset); ``TypeError`` if it is not JSON-serialisable."""
    import gymnasium as gym

    from esper_env.wrappers import CompactActions

    settings = minari_env_settings(pack, config, reward_mode)
    registered = gym.spec(settings.env_id)
    spec = dataclasses.replace(
        registered,
        kwargs={**registered.kwargs, **settings.to_kwargs()},
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

    env_id, fidelity = pack.settings.env_id, pack.settings.resolved_fidelity
    if len(presets) != 1:
        return {}, f"No reference scores: the pack spans {len(presets)} presets and they are per preset."
    instances = pack.settings.instances
    key = references.reference_key(env_id, presets[0], fidelity, pack.max_epochs, instances)
    try:
        ref = references.reference_scores(
            env_id, config=presets[0], fidelity=fidelity, max_epochs=pack.max_epochs, instances=instances
        )
        low, high = float(ref.returns["wait"][mode]), float(ref.returns["heuristic"][mode])
        key = ref.key  # the id it was measured on: one of the same dynamics (v1's entries serve v2)
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
      (``"esper_preset"``) and the pack's episode id (``"esper_episode_id"``), and, on an id with an
      instance distribution (``Esper-Micro``), the task instance (``"esper_instance"``). Numeric infos and
      episode metadata read back alike from every Minari storage format.
    * Env spec: ``dataset.recover_environment()`` (and ``eval_env=True``, the same env) is
      ``CompactActions(gymnasium.make(env_id, **kwargs))``, the stack the episodes were logged in:
      observations are the raw env observation, actions CompactActions indices. ``kwargs`` are
      ``minari_env_settings(...).to_kwargs()``, with the export's reward mode (the rewards stored) by name, so the
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

    from esper_env.datasets import env_version
    from esper_env.rewards import get_reward_config
    from esper_env.spaces import version_observation

    pack = open_pack(pack)
    if len(pack) == 0:
        raise PackError(f"{pack.path}: the pack has no episodes to export")
    cfg = None if reward_mode is None else reward_config(pack, reward_mode)
    mode = reward_mode or pack.settings.reward
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
            meta = {"esper_preset": preset, "esper_episode_id": r.metadata.episode_id}
            if r.metadata.instance is not None:  # the task instance (ids with an instance distribution)
                meta["esper_instance"] = int(r.metadata.instance)
            episode_meta.append(meta)
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
                observation_space=version_observation(env_version(pack.settings.env_id), pack.num_slots)[1],
                algorithm_name="esper behavior policies: " + ", ".join(spec["matrix"]["policies"]),
                description=(
                    f"Esper pack {pack.name!r} ({pack.settings.env_id}, "
                    f"fidelity {pack.settings.resolved_fidelity}, "
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
