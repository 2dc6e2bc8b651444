"""Decode Esper's flat observation into typed fields, without touching the env.

Policies act from ``(observation, mask)`` only, so that one policy object serves a single env, a
vector env (one row per env) and logged data alike. What they need to read an observation is
fixed by the env's construction arguments, not its state: the observation schema, ``max_epochs``
(epoch counts are stored divided by it) and the compact action table. :class:`PolicySpec` holds
those three; :class:`ObservationView` decodes one observation row with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import gymnasium as gym
import numpy as np

from esper_env.blueprints import BLUEPRINTS
from esper_env.env import EsperEnv
from esper_env.lifecycle import ALPHA_TARGETS, BlendStyle, Op, Stage
from esper_env.spaces import FactoredAction, observation_schema
from esper_env.wrappers import compact_action_table


@dataclass(frozen=True)
class PolicySpec:
    """What a policy needs to read observations and name compact actions.

    Build it from an env (:meth:`from_env`, any wrapper stack over an :class:`EsperEnv`) or, for
    async vector envs and logged data, from the env's arguments (:meth:`from_args`).
    """

    schema: dict[str, slice]
    max_epochs: int
    num_slots: int
    actions: tuple[FactoredAction, ...]

    def __post_init__(self) -> None:
        if self.max_epochs < 1:
            raise ValueError(f"max_epochs must be a positive integer, got {self.max_epochs!r}")
        expected = observation_schema(self.num_slots)
        if dict(self.schema) != expected:
            raise ValueError(
                f"schema does not match the Esper observation schema for num_slots={self.num_slots}"
            )

    @classmethod
    def from_args(cls, *, max_epochs: int = 25, num_slots: int = 3) -> PolicySpec:
        table = tuple(compact_action_table(num_slots))
        return cls(observation_schema(num_slots), int(max_epochs), int(num_slots), table)

    @classmethod
    def from_env(cls, env: gym.Env | EsperEnv) -> PolicySpec:
        base = env.unwrapped
        if not isinstance(base, EsperEnv):
            raise TypeError(f"a policy needs an EsperEnv underneath, got {type(base).__name__}")
        table = tuple(compact_action_table(base.num_slots))
        return cls(dict(base.observation_schema), base.max_epochs, base.num_slots, table)

    @cached_property
    def obs_size(self) -> int:
        return max(s.stop for s in self.schema.values())

    @property
    def num_actions(self) -> int:
        return len(self.actions)

    @cached_property
    def action_ops(self) -> np.ndarray:
        """The op of each compact action, as an int array."""
        return np.array([a.op for a in self.actions], dtype=np.int64)

    @cached_property
    def _lookup(self) -> np.ndarray:
        """``[op, slot, blueprint, alpha_target]`` -> compact index, -1 where there is none."""
        table = np.full((len(Op), self.num_slots, len(BLUEPRINTS), len(ALPHA_TARGETS)), -1, dtype=np.int64)
        for i, a in enumerate(self.actions):
            if a.op == Op.GERMINATE:
                table[a.op, a.slot, a.blueprint, :] = i
            elif a.op == Op.SET_ALPHA_TARGET:
                table[a.op, a.slot, :, a.alpha_target] = i
            else:
                table[a.op, a.slot if a.op != Op.WAIT else slice(None), :, :] = i
        return table

    def index_of(
        self, op: Op | int, slot: int = 0, blueprint: str | int | None = None, alpha_target: int | None = None
    ) -> int:
        """Index of a compact action. ``blueprint`` (a name or index) is read only for GERMINATE,
        ``alpha_target`` (an index into ALPHA_TARGETS) only for SET_ALPHA_TARGET."""
        if isinstance(blueprint, str):
            if blueprint not in BLUEPRINTS:
                valid = ", ".join(BLUEPRINTS)
                raise ValueError(f"unknown blueprint {blueprint!r}; valid blueprints are: {valid}")
            blueprint = BLUEPRINTS.index(blueprint)
        defaults = FactoredAction._field_defaults
        key = (
            int(op),
            int(slot),
            defaults["blueprint"] if blueprint is None else int(blueprint),
            defaults["alpha_target"] if alpha_target is None else int(alpha_target),
        )
        inside = all(0 <= k < n for k, n in zip(key, self._lookup.shape))
        index = int(self._lookup[key]) if inside else -1
        if index < 0:
            raise ValueError(f"(op, slot, blueprint, alpha_target) = {key} is not in the compact action set")
        return index

    def describe(self, index: int) -> str:
        return self.actions[int(index)].describe()


def as_spec(source: PolicySpec | gym.Env | EsperEnv) -> PolicySpec:
    """A :class:`PolicySpec` from a spec or an env."""
    return source if isinstance(source, PolicySpec) else PolicySpec.from_env(source)


@dataclass(frozen=True)
class SlotView:
    """One slot as the observation shows it."""

    index: int
    stage: Stage
    alpha: float
    alpha_target: float
    epochs_in_stage: int
    blueprint: str | None
    style: BlendStyle | None
    #: Last measured counterfactual contribution (val accuracy with the seed minus with alpha 0, a
    #: fraction), or None if none was ever measured for this seed. Clipped to [-1, 1] by the env.
    contribution: float | None
    seed_params: float  # seed parameters / base host parameters
    embargo: float  # embargo epochs remaining / embargo length

    @property
    def has_seed(self) -> bool:
        return self.blueprint is not None

    @property
    def live(self) -> bool:
        return self.stage in (Stage.GERMINATED, Stage.TRAINING, Stage.BLENDING, Stage.HOLDING)


@dataclass(frozen=True)
class ObservationView:
    """Typed fields of one flat observation. A measurement not yet taken is None."""

    epoch: int
    max_epochs: int
    budget_remaining: float
    val_accuracy: float | None
    val_loss: float | None
    train_accuracy: float | None
    train_loss: float | None
    accuracy_delta: float | None
    loss_delta: float | None
    plateau_epochs: int
    best_val_accuracy: float | None
    best_val_loss: float | None
    accuracy_history: tuple[float | None, ...]  # oldest first
    loss_history: tuple[float | None, ...]
    has_active_seed: bool
    available_slots: int
    seed_params: float
    fossil_params: float
    last_action_success: bool
    last_op: Op
    slots: tuple[SlotView, ...]

    @classmethod
    def decode(cls, obs: np.ndarray, spec: PolicySpec) -> ObservationView:
        obs = np.asarray(obs, dtype=np.float64)
        if obs.shape != (spec.obs_size,):
            raise ValueError(f"observation has shape {obs.shape}; this spec expects ({spec.obs_size},)")
        sc, T = spec.schema, spec.max_epochs

        def val(name: str) -> float:
            return float(obs[sc[name]][0])

        def measured(name: str, early: bool = False) -> float | None:
            # -1 marks "not measured"; deltas can legitimately be negative, so they are None only
            # before the second epoch.
            v = val(name)
            if early:
                return None if epoch < 2 else v
            return None if v == -1.0 else v

        def epochs(name: str) -> int:
            return int(round(val(name) * T))

        epoch = epochs("epoch")
        slots = []
        for k in range(spec.num_slots):
            p = f"slot{k}/"
            stage = Stage(int(np.argmax(obs[sc[p + "stage"]])))
            bp_hot = obs[sc[p + "blueprint"]]
            style_hot = obs[sc[p + "style"]]
            has_seed = bool(bp_hot.max() > 0.5)
            slots.append(
                SlotView(
                    index=k,
                    stage=stage,
                    alpha=val(p + "alpha"),
                    alpha_target=val(p + "alpha_target"),
                    epochs_in_stage=epochs(p + "epochs_in_stage"),
                    blueprint=BLUEPRINTS[int(np.argmax(bp_hot))] if has_seed else None,
                    style=BlendStyle(int(np.argmax(style_hot))) if has_seed else None,
                    contribution=val(p + "contribution") if val(p + "contribution_measured") > 0.5 else None,
                    seed_params=val(p + "seed_params"),
                    embargo=val(p + "embargo"),
                )
            )
        return cls(
            epoch=epoch,
            max_epochs=T,
            budget_remaining=val("budget_remaining"),
            val_accuracy=measured("val_accuracy"),
            val_loss=measured("val_loss"),
            train_accuracy=measured("train_accuracy"),
            train_loss=measured("train_loss"),
            accuracy_delta=measured("accuracy_delta", early=True),
            loss_delta=measured("loss_delta", early=True),
            plateau_epochs=epochs("plateau_epochs"),
            best_val_accuracy=measured("best_val_accuracy"),
            best_val_loss=measured("best_val_loss"),
            accuracy_history=tuple(None if v == -1.0 else float(v) for v in obs[sc["accuracy_history_5"]]),
            loss_history=tuple(None if v == -1.0 else float(v) for v in obs[sc["loss_history_5"]]),
            has_active_seed=val("has_active_seed") > 0.5,
            available_slots=int(round(val("available_slots") * spec.num_slots)),
            seed_params=val("seed_params"),
            fossil_params=val("fossil_params"),
            last_action_success=val("last_action_success") > 0.5,
            last_op=Op(int(np.argmax(obs[sc["last_op"]]))),
            slots=tuple(slots),
        )

    def live_seeds(self) -> list[SlotView]:
        return [s for s in self.slots if s.live]

    def dormant_slots(self) -> list[SlotView]:
        return [s for s in self.slots if s.stage == Stage.DORMANT]
