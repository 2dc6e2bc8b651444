"""What a policy needs to read Esper's flat observation and name compact actions.

Policies act from ``(observation, mask)`` only, so that one policy object serves a single env, a
vector env (one row per env) and logged data alike. What they need to read an observation is
fixed by the env's construction arguments, not its state: the observation schema, ``max_epochs``
(epoch counts are stored divided by it) and the compact action table. :class:`PolicySpec` holds
those three; :class:`esper_env.ObservationView` decodes one observation row with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import gymnasium as gym
import numpy as np

from esper_env.blueprints import BLUEPRINTS
from esper_env.env import EsperEnv
from esper_env.lifecycle import ALPHA_TARGETS, Op
from esper_env.spaces import FactoredAction, observation_schema
from esper_env.versions import CURRENT_VERSION, dynamics
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
        # The current version's schema, or an older version's that it extends (v1: without context).
        if dict(self.schema) not in (observation_schema(self.num_slots, context=c) for c in (True, False)):
            raise ValueError(
                f"schema does not match the Esper observation schema for num_slots={self.num_slots}"
            )

    @classmethod
    def from_args(
        cls, *, max_epochs: int = 25, num_slots: int = 3, context: bool | None = None
    ) -> PolicySpec:
        """``context``: whether the observation carries the task's context (default: as the
        current env version's; False for a v1 observation)."""
        if context is None:
            context = dynamics(CURRENT_VERSION).context
        table = tuple(compact_action_table(num_slots))
        return cls(observation_schema(num_slots, context=context), int(max_epochs), int(num_slots), table)

    @property
    def has_context(self) -> bool:
        """Whether the observation carries the task's context (``context/*``, env v2 on)."""
        return "context/rent" in self.schema

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
