"""Lifecycle options: an agent-side action abstraction in which one decision grows a whole graft.

In the raw factored space a graft takes five well-timed decisions (GERMINATE, three ADVANCEs
each legal only after the seed's stage has run its epochs, FOSSILIZE) with WAITs between them.
A randomly initialised policy almost never completes that sequence, so an online learner never
sees what a finished graft is worth (docs/LEARNING.md: 0.0 seeds fossilized per greedy episode
in every micro bench run). :class:`GrowOptions` makes each graft one *option* (Sutton, Precup and
Singh, 1999): ``Discrete(1 + num_slots * (num_blueprints - 1))``,

* ``0``: WAIT one epoch;
* ``1 + slot * (num_blueprints - 1) + j``: GROW the ``j``-th real blueprint in ``slot``: GERMINATE
  it (fast tempo), then ADVANCE it as soon as each stage allows and FOSSILIZE it, WAITing between,
  exactly as the scripted ``now:<blueprint>@<slot>`` schedules do.

An option runs until its seed is fossilized (or leaves the live stages) or the episode ends; the
step returns the last observation and info, the sum of the env rewards, and
``info["option_steps"]`` (env steps the option took) and ``info["option_ops"]`` (their op names).
The decision points are therefore the epochs at which no seed is in flight; the env's score,
rewards and time limit are the env's own. :meth:`action_masks` is exact: GROW is legal where the
env would germinate that blueprint in that slot.

An agent's step budget in this wrapper counts decisions, not env steps; the env steps are the
sum of ``option_steps`` (the online agents' ``episodes.csv`` records both).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from esper_env.blueprints import BLUEPRINTS
from esper_env.lifecycle import LIVE_STAGES, Op, Tempo
from esper_env.spaces import NOOP_INDEX, WAIT_ACTION, FactoredAction, check_discrete_action

__all__ = ["GrowOptions", "option_table"]


def option_table(num_slots: int, num_blueprints: int = len(BLUEPRINTS)) -> list[tuple[int, int] | None]:
    """The options in index order: ``None`` (WAIT), then ``(slot, blueprint index)`` per slot."""
    return [None] + [(s, b) for s in range(num_slots) for b in range(num_blueprints) if b != NOOP_INDEX]


class GrowOptions(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """WAIT, or grow one blueprint in one slot through its whole lifecycle, as one action.

    >>> import gymnasium, esper_env
    >>> env = GrowOptions(gymnasium.make("Esper-Micro-v2"))
    >>> obs, info = env.reset(seed=0)
    >>> grow = env.index_of(0, "widen_4x")
    >>> env.describe(grow)
    'GROW widen_4x @ slot 0'
    >>> obs, reward, terminated, truncated, info = env.step(grow)
    >>> info["option_ops"][0], info["option_ops"][-1], info["option_steps"] > 4
    ('GERMINATE', 'FOSSILIZE', True)
    """

    def __init__(self, env: gym.Env) -> None:
        from esper_env import EsperEnv

        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        base = env.unwrapped
        if not isinstance(base, EsperEnv) or not isinstance(env.action_space, spaces.MultiDiscrete):
            raise TypeError(
                "GrowOptions needs an Esper env with its factored MultiDiscrete action space, got "
                f"{type(base).__name__} with {env.action_space}"
            )
        self.base = base
        self.blueprint_names = list(base.blueprints)
        self.options = option_table(base.num_slots, len(self.blueprint_names))
        self.action_space = spaces.Discrete(len(self.options))

    def index_of(self, slot: int, blueprint: str) -> int:
        """The index of GROW ``blueprint`` in ``slot`` (``ValueError`` naming the valid ones otherwise)."""
        if (
            blueprint not in self.blueprint_names
            or (slot, self.blueprint_names.index(blueprint)) not in self.options
        ):
            raise ValueError(
                f"no option grows {blueprint!r} in slot {slot!r}: slots are 0..{self.base.num_slots - 1}, "
                f"blueprints {[b for i, b in enumerate(self.blueprint_names) if i != NOOP_INDEX]}"
            )
        return self.options.index((slot, self.blueprint_names.index(blueprint)))

    def describe(self, index: int) -> str:
        option = self.options[index]
        if option is None:
            return "WAIT"
        return f"GROW {self.blueprint_names[option[1]]} @ slot {option[0]}"

    def action_masks(self) -> np.ndarray:
        legal, supported = self.base.legal_actions(), self.base.blueprint_mask()
        return np.array(
            [o is None or bool(legal[Op.GERMINATE, o[0]] and supported[o[1]]) for o in self.options]
        )

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        info["action_mask"] = self.action_masks()
        return obs, info

    def _follow_up(self, slot: int) -> FactoredAction | None:
        """The next step of the graft in ``slot``: ADVANCE or FOSSILIZE when legal, WAIT while the
        seed is live, ``None`` once it is not (fossilized, or gone)."""
        legal = self.base.legal_actions()
        if legal[Op.ADVANCE, slot]:
            return FactoredAction(Op.ADVANCE, slot)
        if legal[Op.FOSSILIZE, slot]:
            return FactoredAction(Op.FOSSILIZE, slot)
        if self.base.engine.slots[slot].stage in LIVE_STAGES:
            return WAIT_ACTION
        return None

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        option = self.options[check_discrete_action(action, self.action_space)]
        if option is None:
            first = WAIT_ACTION
        else:
            first = FactoredAction(Op.GERMINATE, option[0], blueprint=option[1], tempo=Tempo.FAST)
        total, ops, act = 0.0, [], first
        while True:
            obs, reward, terminated, truncated, info = self.env.step(act.to_array())
            total += float(reward)
            ops.append(Op(act.op).name if info.get("action_valid", True) else "WAIT")
            if option is None or terminated or truncated or not info.get("action_valid", True):
                break
            nxt = self._follow_up(option[0])
            if nxt is None:
                break
            act = nxt
        info["option_steps"], info["option_ops"] = len(ops), ops
        info["action_mask"] = self.action_masks()
        return obs, total, terminated, truncated, info
