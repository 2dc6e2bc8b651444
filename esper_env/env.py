"""``EsperEnv``: grow a CNN while it trains, one epoch per step."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, ClassVar, SupportsFloat

import gymnasium as gym
import numpy as np
import torch

from esper_env.blueprints import blueprints_for
from esper_env.configs import EnvironmentConfig, Fidelity, get_config, get_fidelity
from esper_env.data import load_dataset
from esper_env.datasets import dataset_record
from esper_env.engine import TrainingEngine
from esper_env.history import EpochResult
from esper_env.instance_setup import instance_setup
from esper_env.instances import Distribution, Instance, Split, get_distribution
from esper_env.lifecycle import Op
from esper_env.observation import ObservationContext, encode_observation, feature_table
from esper_env.pricing import version_engine_kwargs
from esper_env.rewards import (
    DEFAULT_RENT_WEIGHT,
    RewardConfig,
    benchmark_score,
    get_reward_config,
    log_size_ratio,
    potential,
    relabel,
)
from esper_env.runtime import check_int, torch_threads  # also imported from here (bench)
from esper_env.snapshots import ENV_SNAPSHOT_VERSION, SNAPSHOT_KEYS, check_snapshot_fields, copy_state
from esper_env.spaces import (
    NOOP_INDEX,
    WAIT_ACTION,
    FactoredAction,
    check_action,
    flat_action_mask,
    make_action_space,
    make_observation_space,
    observation_features,
    observation_schema,
    op_params,
)
from esper_env.versions import dynamics


class EsperEnv(gym.Env[np.ndarray, np.ndarray]):
    """Grow a host CNN while it trains: graft, blend, fossilize or prune seed modules.

    ## Description

    Each step trains a host CNN (CIFAR-10, CIFAR-100 or the offline procedural SynthCIFAR) for one
    epoch. Before the epoch, the agent may graft a *seed* module into one of the host's slots and
    steer its lifecycle: DORMANT -> GERMINATED -> TRAINING (learns on detached features; the host
    is untouched) -> BLENDING (alpha ramps toward its target) -> HOLDING -> FOSSILIZED (permanent),
    or PRUNED -> EMBARGOED -> DORMANT. The agent is judged by the host's final validation
    accuracy and what its growth cost in parameters.

    ## Action Space

    ``MultiDiscrete([6, num_slots, 16, 4, 3, 3, 4, 5])``, heads ``(op, slot, blueprint, style,
    tempo, alpha_target, alpha_speed, alpha_curve)``. Ops: 0 WAIT, 1 GERMINATE(slot, blueprint,
    style, tempo, alpha_target), 2 ADVANCE(slot), 3 SET_ALPHA_TARGET(slot, alpha_target,
    alpha_speed, alpha_curve), 4 PRUNE(slot, alpha_speed, alpha_curve), 5 FOSSILIZE(slot). Heads an
    op does not use are ignored. ``info["action_mask"]`` and :meth:`action_masks` give the flat
    per-head mask (sb3-contrib's format); :meth:`legal_actions` the exact (op, slot) legality and
    :meth:`is_legal_action` whether a whole factored action would run (GERMINATE with the
    ``noop`` blueprint never does). An action in the space but illegal now runs as WAIT with
    ``info["action_valid"] = False``; an action outside the space raises ``ValueError``.

    ## Observation Space

    A flat ``float32`` Box; ``observation_schema`` maps each feature name to its slice. Base
    features (epoch, accuracies, losses, deltas, plateau, 5-epoch histories, seed and slot
    summary, last action feedback) are followed by the same block per slot (``slotK/stage``
    one-hot, alpha, target, epochs in stage, blueprint and style one-hots, contribution, size,
    embargo). A measurement not yet taken is -1. From v2 on, the task's context follows (rent,
    learning rate, training images, classes; each slot's host width and parameter share). With 3 slots:

    {feature_table}

    ## Rewards

    ``info["reward_components"]`` holds the raw terms; the reward is :func:`esper_env.rewards.relabel`
    of them under ``reward`` (``"shaped"`` default, ``"sparse"``, ``"contribution"``).

    ## Starting State

    A freshly initialised host (seeded from ``reset(seed=...)``), all slots DORMANT, no epoch
    trained: every measured feature is -1.

    ## Episode End

    1. Truncation: ``max_epochs`` epochs trained (``termination_reason="max_epochs"``). With
       ``gymnasium.make(..., max_episode_steps=K)`` the env's ``max_epochs`` is ``min(max_epochs,
       K)`` (:meth:`limit_epochs`), so Gymnasium's TimeLimit and the env end on the same step and
       that step's info carries the summary below.
    2. Termination: training diverged: non-finite loss or validation accuracy at chance for
       several epochs (``"diverged"``).
    3. Termination: no validation improvement for ``early_stop_patience`` epochs, when set
       (``"early_stop"``).

    The last step's info also carries ``final_val_accuracy``, ``best_val_accuracy``,
    ``test_accuracy``, ``host_params``, ``seed_params`` and ``seeds_created/fossilized/pruned``.

    ## Arguments

    ``dataset`` ("synthcifar", "cifar10", "cifar100"), ``config`` (an environment preset, default
    "baseline"), ``fidelity`` ("full", "fast", "tiny", "test"), ``max_epochs`` (25), ``num_slots``
    (3), ``reward`` (mode name or RewardConfig), ``device`` ("auto"), ``num_threads`` (1: the env's
    torch work runs on one intra-op thread, set around each reset and step and restored after, so
    it neither collapses when other processes share the cores nor depends on the caller's
    setting; ``None`` leaves torch's setting alone), ``render_mode`` ("ansi" or "rgb_array"),
    ``data_dir``, ``download`` (False), ``synth_seed`` (0), ``early_stop_patience`` (None),
    ``version`` (the dataset's newest: 2 on images, 3 on the fast tier's; see Version History), ``instances``
    (a task distribution of :mod:`esper_env.instances`: each reset draws an instance from the
    split ``[start_level, start_level + num_levels)``; ``reset(options={"instance": k})`` pins one).
    Integers must be ints (a bool, string or float is refused with a ``ValueError``).
    ``env.metadata`` records ``torch_version`` and ``torch_num_threads``: episodes are
    reproducible bit for bit only under the same torch version and thread count.

    >>> import gymnasium, esper_env
    >>> env = gymnasium.make("Esper-SynthCIFAR-v2", fidelity="test", max_epochs=3)
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape == env.observation_space.shape
    True

    ## Vectorized environment

    ``gymnasium.make_vec(id, num_envs=N, vectorization_mode="sync" | "async")``. Every env sees the
    same amount of data per step whatever N.

    ## Version History

    * v3: ``Esper-Micro`` only (the image ids stay at v2). On its MLP hosts a seed's GroupNorm takes
      one group (v2's 1-3 values per group on 1x1 maps degenerated), and the network is priced as the
      CNN host of the same widths with the same seeds (``esper_env/pricing.py``): a growth's rent costs what it costs at "tiny".
    * v2: v1 with the task's context (``context/*``) appended to the observation, so that tiers
      drawing a task per episode keep one observation space; v1's dynamics, rewards and scores
      (an episode reproduces v1's bit for bit; v1's reference scores serve v2).
    * v1: growth that adds capacity. Three blueprints after the original design's (``conv_wide``, a
      residual seed with 4x hidden width, and ``widen_2x``/``widen_4x``, Net2Net-style widening
      seeds that add channels to the block before the slot), so the blueprint head has 16 values
      and each slot's blueprint one-hot 16 features; presets gain ``seed_lr_multiplier``; the
      reward components gain ``log_size_ratio`` and the parameter rent is charged on the log2 of
      the network's size ratio (see the benchmark score in docs/ENV_CARD.md, Rewards).
    * v0: initial release (the original design's 13 blueprints, so a blueprint head of 13 values and
      13-feature blueprint one-hots; seed lr 1x the host's; a linear parameter rent, 0.05 x added
      / base parameters, in the sparse and contribution modes). Registered again beside v1 (as
      Gymnasium keeps ``CartPole-v0``): ``gymnasium.make("Esper-CIFAR10-v0")`` builds it, and an
      episode reproduces one recorded by the v0 code bit for bit (the reward components add v1's
      ``log_size_ratio`` terms, which v0's rewards ignore). Benchmarks and defaults use v2.
    """

    __doc__ = (__doc__ or "").replace("{feature_table}", feature_table(3).replace("\n", "\n    "))
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 2}

    def __init__(
        self,
        dataset: str = "synthcifar",
        config: str | EnvironmentConfig = "baseline",
        fidelity: str | Fidelity = "tiny",
        max_epochs: int = 25,
        num_slots: int = 3,
        reward: str | RewardConfig = "shaped",
        device: str | torch.device = "auto",
        num_threads: int | None = 1,
        render_mode: str | None = None,
        data_dir: str | os.PathLike | None = None,
        download: bool = False,
        synth_seed: int = 0,
        early_stop_patience: int | None = None,
        version: int | None = None,
        instances: str | Distribution | None = None,
        num_levels: int = 0,
        start_level: int = 0,
    ) -> None:
        version = dataset_record(dataset).check_version(version)  # ValueErrors naming the valid ones
        #: The task distribution each reset draws an instance from (``None``: one fixed task).
        self.distribution = None if instances is None else get_distribution(instances)
        #: The instance indices this env draws from (Procgen's ``num_levels``/``start_level``).
        self.split = Split(start_level=start_level, num_levels=num_levels)
        if self.distribution is None and (num_levels or start_level):
            raise ValueError(
                "num_levels and start_level split an instance distribution: pass instances=... too"
            )
        if dataset == "clusters" and self.distribution is None:
            raise ValueError(
                "the clusters dataset (Esper-Micro) draws its task per instance: pass instances=..."
            )
        #: The instance of the current episode (``None`` without a distribution).
        self.instance: Instance | None = None
        self.version, self.dynamics = version, dynamics(version)
        #: The blueprints of this version: the values of the blueprint head, in order.
        self.blueprints = blueprints_for(self.version)
        self.config = get_config(config)
        if self.dynamics.seed_lr_multiplier is not None:
            self.config = dataclasses.replace(
                self.config, seed_lr_multiplier=self.dynamics.seed_lr_multiplier
            )
        self.fidelity = get_fidelity(fidelity)
        self.reward_config = get_reward_config(reward, self.version)
        self._preset, self._reward_by_name = self.config, isinstance(reward, str)
        self._max_epochs = check_int("max_epochs", max_epochs, 1)
        self._time_limit: int | None = None
        self.num_slots = check_int("num_slots", num_slots, 1)
        self.early_stop_patience = check_int("early_stop_patience", early_stop_patience, 1, optional=True)
        self.num_threads = check_int("num_threads", num_threads, 1, optional=True)
        check_int("synth_seed", synth_seed, 0)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"unknown render_mode {render_mode!r}; valid are: {self.metadata['render_modes']}"
            )
        self.metadata = {
            **type(self).metadata,
            "torch_version": torch.__version__,
            "torch_num_threads": self.num_threads
            if self.num_threads is not None
            else torch.get_num_threads(),
        }
        self.dataset = dataset
        self.synth_seed = int(synth_seed)
        self.device = device
        self.render_mode = render_mode
        self._init_kwargs = {
            "dataset": dataset, "config": self.config, "fidelity": self.fidelity, "max_epochs": max_epochs,
            "num_slots": num_slots, "reward": reward, "device": device, "num_threads": num_threads,
            "render_mode": render_mode, "data_dir": data_dir, "download": download, "synth_seed": synth_seed,
            "early_stop_patience": early_stop_patience, "version": version, "instances": instances,
            "num_levels": num_levels, "start_level": start_level,
        }  # fmt: skip
        with torch_threads(self.num_threads):
            # Loading here makes a missing dataset fail at make(), with the error that says how to get it;
            # the clusters task is drawn per instance (_use_instance).
            self.data = (
                None
                if dataset == "clusters"
                else load_dataset(
                    dataset,
                    self.fidelity,
                    data_dir=data_dir,
                    download=download,
                    synth_seed=synth_seed,
                    env_version=self.version,
                )
            )
            n, context = len(self.blueprints), self.dynamics.context
            self.action_space = make_action_space(self.num_slots, n)
            self.observation_space = make_observation_space(self.num_slots, n, context)
            self.observation_schema = observation_schema(self.num_slots, n, context)
            self._features = observation_features(self.num_slots, n, context)
            if self.distribution is not None:
                self._use_instance(self.split.start_level)
            # Built for real at reset(); one engine now so that spaces, masks and params are defined.
            self.engine = self._new_engine(0)
        self._base_host_params = self.engine.pricing.base
        self._reset_episode_state()

    @property
    def max_epochs(self) -> int:
        """Epochs per episode: the ``max_epochs`` argument, or a smaller time limit set by
        :meth:`limit_epochs` (what ``gymnasium.make(..., max_episode_steps=K)`` does)."""
        return self._max_epochs if self._time_limit is None else min(self._max_epochs, self._time_limit)

    def limit_epochs(self, max_episode_steps: int) -> None:
        """End episodes after ``min(max_epochs, max_episode_steps)`` epochs, so that a Gymnasium
        TimeLimit of ``max_episode_steps`` and the env truncate on the same step (the observation's
        budget counts against it and the last info carries the summary). Applied to every Esper
        id by :class:`esper_env.wrappers.MatchTimeLimit`."""
        self._time_limit = check_int("max_episode_steps", max_episode_steps, 1)

    # ------------------------------------------------------------------ gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        options = {} if options is None else options
        if not isinstance(options, dict) or set(options) - {"instance"}:
            raise ValueError(f"reset options are a dict with at most the key 'instance', got {options!r}")
        if self.distribution is None and options.get("instance") is not None:
            raise ValueError("options['instance'] needs an env with an instance distribution (instances=...)")
        drawn = self.split.sample(self.np_random) if self.distribution is not None else None
        pinned = options.get("instance")
        index = self.split.check(pinned) if pinned is not None else drawn
        self._episode_seed = int(self.np_random.integers(2**31 - 1))
        with torch_threads(self.num_threads):
            if index is not None:
                self._use_instance(index)
            self.engine = self._new_engine(self._episode_seed)
        self._base_host_params = self.engine.pricing.base
        self._reset_episode_state()
        info = self._info()
        if self.instance is not None:
            info["instance_fields"] = self.instance.to_dict()
        return self._observation(), info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        with torch_threads(self.num_threads):
            return self._step(action)

    def _step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._done:
            raise RuntimeError("step() called after the episode ended; call reset() first")
        requested = check_action(action, self.action_space)
        self._last_action_valid = self._is_legal(requested)
        executed = requested.canonical() if self._last_action_valid else WAIT_ACTION
        size_before = self._total_params()
        self._execute(executed)
        result = self.engine.run_epoch()
        self._last_op = Op(executed.op)

        terminated, truncated, reason = False, False, None
        if result.diverged:
            terminated, reason = True, "diverged"
        elif (
            self.early_stop_patience is not None
            and self.engine.history.plateau_epochs >= self.early_stop_patience
        ):
            terminated, reason = True, "early_stop"
        if not terminated and self.engine.history.epoch >= self.max_epochs:
            truncated, reason = True, "max_epochs"
        self._done = terminated or truncated

        components = self._reward_components(result, Op(executed.op), terminated, self._done, size_before)
        reward = relabel(components, self.reward_config)
        self._episode_return += reward
        info = self._info()
        info.update(
            action_valid=self._last_action_valid,
            requested_action=requested.to_array(),
            executed_action=executed.to_array(),
            reward_components=components,
            epoch_result={k: v for k, v in vars(result).items() if k != "contributions"},
        )
        if self._done:
            info.update(self._final_info(reason))
        return self._observation(), reward, terminated, truncated, info

    def render(self) -> str | np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'rgb_array'")
            return None
        from esper_env.render import render_ansi, render_rgb

        return render_ansi(self) if self.render_mode == "ansi" else render_rgb(self)

    # ------------------------------------------------------------------ masks

    def legal_actions(self) -> np.ndarray:
        """Boolean ``[6, num_slots]`` matrix: is op ``o`` on slot ``s`` legal now (gates included).

        It covers the (op, slot) heads only: GERMINATE with the ``noop`` blueprint is never legal
        even where ``legal[GERMINATE, s]`` is True. :meth:`is_legal_action` checks a whole action.
        """
        legal = np.zeros((len(Op), self.num_slots), dtype=bool)
        legal[Op.WAIT, :] = True
        for op in list(Op)[1:]:
            for s in range(self.num_slots):
                legal[op, s] = self.engine.is_legal(op, s)
        return legal

    def action_masks(self) -> np.ndarray:
        """Flat boolean mask over the concatenated head values (sb3-contrib's MaskablePPO format)."""
        return flat_action_mask(
            self.legal_actions(), self.num_slots, len(self.blueprints), self.blueprint_mask()
        )

    def is_legal_action(self, action: Any) -> bool:
        """Would :meth:`step` execute ``action`` (a factored action in the space) as given now,
        rather than run it as WAIT? ``ValueError`` if it is not in the action space."""
        return self._is_legal(check_action(action, self.action_space))

    def blueprint_mask(self) -> np.ndarray:
        """Boolean mask over the blueprint head: the blueprints GERMINATE accepts on this host
        (``noop`` never; an MLP host masks the blueprints with spatial kernels)."""
        supported = self.engine.supported_blueprints
        mask = np.array([supported is None or b in supported for b in self.blueprints])
        mask[NOOP_INDEX] = False
        return mask

    def _is_legal(self, action: FactoredAction) -> bool:
        if action.op == Op.GERMINATE and not self.blueprint_mask()[action.blueprint]:
            return False
        return self.engine.is_legal(action.op, action.slot)

    def _execute(self, a: FactoredAction) -> None:
        self.engine.apply(a.op, a.slot, **op_params(a))

    # ------------------------------------------------------------------ observation, reward, info

    def _new_engine(self, seed: int) -> TrainingEngine:
        kwargs = version_engine_kwargs(self.config.architecture, self.dynamics)
        return TrainingEngine(
            self.config, self.data, num_slots=self.num_slots, device=self.device, seed=seed, **kwargs
        )

    def _instance_setup(self, index: int) -> dict[str, Any]:
        assert self.distribution is not None
        return instance_setup(
            self.distribution.draw(index), self._preset, self.dataset, self.fidelity, self.data,
            self.reward_config if self._reward_by_name else None,
        )  # fmt: skip

    def _use_instance(self, index: int) -> None:
        for name, value in self._instance_setup(index).items():
            setattr(self, name, value)

    @property
    def rent_weight(self) -> float:
        """The benchmark score's price per doubling of the network: the instance's rent, else the default."""
        return DEFAULT_RENT_WEIGHT if self.instance is None else self.instance.rent

    def _reset_episode_state(self) -> None:
        self._last_action_valid = True
        self._last_op = Op.WAIT
        self._done = False
        self._episode_return = 0.0
        self._potential = 0.0

    def _observation(self) -> np.ndarray:
        return encode_observation(
            self.engine,
            self.observation_space,
            self.observation_schema,
            max_epochs=self.max_epochs,
            base_host_params=self._base_host_params,
            last_action_valid=self._last_action_valid,
            last_op=self._last_op,
            context=ObservationContext.of(self) if self.dynamics.context else None,
        )

    def _total_params(self) -> int:
        """Parameters of the whole network: host, fossilized and live seeds."""
        return self.engine.host_parameters() + self.engine.seed_parameters()

    def _reward_components(
        self, result: EpochResult, op: Op, terminated: bool, done: bool, size_before: int
    ) -> dict[str, Any]:
        h = self.engine.history
        chance = 1.0 / self.data.num_classes
        prev_acc = h.val_accuracy[-2] if len(h.val_accuracy) >= 2 else chance
        prev_loss = h.val_loss[-2] if len(h.val_loss) >= 2 else float(np.log(self.data.num_classes))
        acc = result.val_accuracy
        potential_prev = self._potential
        potential_next = (
            0.0
            if terminated
            else potential(h.best_val_accuracy, h.plateau_epochs, self.reward_config.patience)
        )
        self._potential = potential_next
        total = self._total_params()
        added = total - self._base_host_params
        size = log_size_ratio(total, self._base_host_params)
        size_delta = size - log_size_ratio(size_before, self._base_host_params)
        contributions = [float(result.contributions.get(i, 0.0)) for i in range(self.num_slots)]
        return {
            "accuracy_delta": acc - prev_acc,
            "loss_delta": float(np.nan_to_num(result.val_loss - prev_loss, nan=0.0)),
            "potential_prev": potential_prev,
            "potential_next": potential_next,
            "intervention_cost": float(self.reward_config.intervention_costs[op.name]),
            "param_rent": added / self._base_host_params,
            "log_size_ratio": size,
            "log_size_ratio_delta": size_delta,
            "sparse": acc if done else 0.0,
            "terminal": float(done),
            "contributions": contributions,
        }

    def _info(self) -> dict[str, Any]:
        h = self.engine.history
        return {
            "action_mask": self.action_masks(),
            "epoch": h.epoch,
            "val_accuracy": h.val_accuracy[-1] if h.val_accuracy else -1.0,
            "slot_stages": [s.stage.name for s in self.engine.slots],
        } | ({} if self.instance is None else {"instance": self.instance.index})

    def _final_info(self, reason: str | None) -> dict[str, Any]:
        e, h = self.engine, self.engine.history
        return {
            "termination_reason": reason,
            "final_val_accuracy": h.val_accuracy[-1],
            "best_val_accuracy": h.best_val_accuracy,
            "test_accuracy": e.test_accuracy(),
            "host_params": e.host_parameters(),
            "base_host_params": self._base_host_params,
            "seed_params": e.seed_parameters(),
            "score": benchmark_score(
                h.val_accuracy[-1], self._total_params(), self._base_host_params, self.rent_weight
            ),
            "seeds_created": e.counters.created,
            "seeds_fossilized": e.counters.fossilized,
            "seeds_pruned": e.counters.pruned,
            "episode_return": self._episode_return,
            "episode_length": h.epoch,
        }

    # ------------------------------------------------------------------ snapshot, restore, fork

    def snapshot(self) -> dict[str, Any]:
        """The env's whole state (engine, RNG, episode bookkeeping) as tensors and plain values."""
        return {
            "version": ENV_SNAPSHOT_VERSION,
            "instance": None if self.instance is None else self.instance.index,
            "settings": self._settings(),
            "engine": self.engine.snapshot(),
            "np_random": copy_state(self.np_random.bit_generator.state),
            "episode_seed": getattr(self, "_episode_seed", 0),
            "last_action_valid": self._last_action_valid,
            "last_op": int(self._last_op),
            "done": self._done,
            "episode_return": self._episode_return,
            "potential": self._potential,
        }

    def _settings(self) -> dict[str, Any]:
        """What a snapshot must agree on to be restored here."""
        settings = {
            "config": self._preset.config_id, "dataset": self.dataset, "synth_seed": self.synth_seed,
            "fidelity": dict(vars(self.fidelity)), "max_epochs": self.max_epochs, "num_slots": self.num_slots,
            "env_version": self.version,
        }  # fmt: skip
        if self.distribution is not None:  # left out otherwise: older snapshots stay restorable
            settings["instances"] = self.distribution.name
            settings["split"] = [self.split.start_level, self.split.num_levels]
        return settings

    def restore(self, snap: dict[str, Any]) -> None:
        """Put the env in the state of ``snap`` (from :meth:`snapshot` of a compatible env).

        ``ValueError`` if ``snap`` is not a snapshot of this version, lacks a key, comes from an
        env with another version, preset, dataset, fidelity, ``max_epochs`` or ``num_slots`` (the
        message lists what differs), or holds a malformed field (the message names it). The whole
        snapshot is checked, and the engine restored into a fresh engine, before anything changes:
        after a refusal the env is unchanged.
        """
        if not isinstance(snap, dict):
            raise ValueError(f"an env snapshot is a dict, got {type(snap).__name__}")
        if not isinstance(snap.get("settings", {}), dict):
            raise ValueError(f"the snapshot's settings must be a dict, got {type(snap['settings']).__name__}")
        if snap.get("version") != ENV_SNAPSHOT_VERSION:
            raise ValueError(
                f"env snapshot version {snap.get('version')!r} is not supported (expected {ENV_SNAPSHOT_VERSION})"
            )
        missing = [k for k in SNAPSHOT_KEYS if k not in snap]
        if missing:
            raise ValueError(f"the env snapshot lacks keys {missing}")
        # Snapshots from before env versions were recorded are of v2 (the fast tier's ids came later).
        ours, theirs = self._settings(), {"env_version": 2, **snap["settings"]}
        differ = [
            f"{k}: snapshot {theirs.get(k)!r}, env {v!r}" for k, v in ours.items() if theirs.get(k) != v
        ]
        if differ:
            raise ValueError(f"the snapshot comes from an incompatible env ({'; '.join(differ)})")
        fields = check_snapshot_fields(snap, self.np_random.bit_generator)
        if not isinstance(snap["engine"], dict):
            raise ValueError(f"the snapshot's engine must be a dict, got {type(snap['engine']).__name__}")
        setup = None
        if self.distribution is not None:
            index = snap.get("instance")
            if index is None:
                raise ValueError("the snapshot names no instance; this env draws one per episode")
            setup = self._instance_setup(self.split.check(index))
        elif snap.get("instance") is not None:
            raise ValueError(
                f"the snapshot is of instance {snap['instance']!r}; this env has no distribution"
            )
        saved = {k: getattr(self, k) for k in setup or {}}
        try:  # restored into a fresh engine: a refusal leaves this env's engine untouched
            for name, value in (setup or {}).items():
                setattr(self, name, value)
            engine = self._new_engine(fields["episode_seed"])
            engine.restore(snap["engine"])
        except Exception as err:  # noqa: BLE001 - any malformed engine state is one refusal
            for name, value in saved.items():
                setattr(self, name, value)
            raise ValueError(
                f"the snapshot's engine state does not fit this env ({type(err).__name__}: {err})"
            ) from None
        self.engine = engine
        self._base_host_params = engine.pricing.base
        self.np_random.bit_generator.state = fields["np_random"]
        self._episode_seed = fields["episode_seed"]
        self._last_action_valid = fields["last_action_valid"]
        self._last_op = fields["last_op"]
        self._done = fields["done"]
        self._episode_return = fields["episode_return"]
        self._potential = fields["potential"]

    def fork(self) -> EsperEnv:
        """An independent copy in the same state: run alternative actions from here."""
        other = EsperEnv(**{**self._init_kwargs, "max_epochs": self.max_epochs})
        other.reset()
        other.restore(self.snapshot())
        return other
