"""Lifecycle options: an agent-side action abstraction in which one decision grows a whole graft.

In the raw factored space a graft takes five well-timed decisions (GERMINATE, three ADVANCEs
each legal only after the seed's stage has run its epochs, FOSSILIZE) with WAITs between them.
A randomly initialised policy almost never completes that sequence, so an online learner never
sees what a finished graft is worth (docs/LEARNING.md: 0.0 seeds fossilized per greedy episode
in every micro bench run). :class:`GrowOptions` makes each graft one *option* (Sutton, Precup and
Singh, 1999), in a factored space ``MultiDiscrete([num_slots, num_blueprints])``:
``(slot, blueprint)``,

* ``blueprint = noop``: WAIT one epoch (``slot`` ignored), "grow nothing";
* any other blueprint: GROW it in ``slot``: GERMINATE it (fast tempo), then ADVANCE it as soon as
  each stage allows and FOSSILIZE it, WAITing between, exactly as the scripted
  ``now:<blueprint>@<slot>`` schedules do.

WAIT is a value of the blueprint head, not of a head of its own, so that the policy gradient
compares WAIT with each blueprint on its own return: with a separate WAIT/GROW head, GROW's
advantage is the average over the blueprints tried, negative while most of them are harmful, and
the learner stops grafting before it finds the one graft that pays (docs/LEARNING.md measures
both designs).

An option runs until its seed is fossilized (or leaves the live stages) or the episode ends; the
step returns the last observation and info, the sum of the env rewards, and
``info["option_steps"]`` (env steps the option took) and ``info["option_ops"]`` (their op names).
The decision points are therefore the epochs at which no seed is in flight; the env's score,
rewards and time limit are the env's own. :meth:`GrowOptions.action_masks` gives the per-head
masks sb3-contrib's MaskablePPO reads (``num_slots + num_blueprints`` booleans), and they are
exact: the free slots (every slot when none is, where only WAIT is left), WAIT always, and the
blueprints the host supports while a slot is free; every pair they allow is legal. An illegal
choice runs as the env's WAIT.

An agent's step budget in this wrapper counts decisions, not env steps; the env steps are the
sum of ``option_steps`` (the online agents' ``episodes.csv`` records each episode's length in env
steps).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from esper_env.lifecycle import LIVE_STAGES, Op, Tempo
from esper_env.spaces import NOOP_INDEX, WAIT_ACTION, FactoredAction

__all__ = ["WAIT_BLUEPRINT", "GrowOptions", "set_wait_prior"]

#: The blueprint value that means WAIT (``noop``: grow nothing).
WAIT_BLUEPRINT = NOOP_INDEX


class GrowOptions(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """WAIT, or grow one blueprint in one slot through its whole lifecycle, as one action.

    >>> import gymnasium, esper_env
    >>> env = GrowOptions(gymnasium.make("Esper-Micro-v3"))
    >>> obs, info = env.reset(seed=0)
    >>> action = env.grow(0, "widen_4x")
    >>> env.describe(action)
    'GROW widen_4x @ slot 0'
    >>> obs, reward, terminated, truncated, info = env.step(action)
    >>> info["option_ops"][0], info["option_ops"][-1], info["option_steps"] > 4
    ('GERMINATE', 'FOSSILIZE', True)
    """

    def __init__(self, env: gym.Env) -> None:
        from esper_env import EsperEnv

        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        base = env.unwrapped
        if not isinstance(base, EsperEnv) or env.action_space != base.action_space:
            raise TypeError(
                "GrowOptions needs an Esper env with its factored MultiDiscrete action space, got "
                f"{type(base).__name__} with {env.action_space}"
            )
        self.base = base
        self.blueprint_names = list(base.blueprints)
        self.action_space = spaces.MultiDiscrete([base.num_slots, len(self.blueprint_names)])
        #: The WAIT action (slot 0, ``noop``).
        self.wait = np.array([0, WAIT_BLUEPRINT])

    def grow(self, slot: int, blueprint: str) -> np.ndarray:
        """The action that grows ``blueprint`` in ``slot`` (``ValueError`` naming the valid ones otherwise)."""
        real = [b for i, b in enumerate(self.blueprint_names) if i != NOOP_INDEX]
        if blueprint not in real or isinstance(slot, bool) or slot not in range(self.base.num_slots):
            raise ValueError(
                f"no option grows {blueprint!r} in slot {slot!r}: slots are 0..{self.base.num_slots - 1}, "
                f"blueprints {real}"
            )
        return np.array([slot, self.blueprint_names.index(blueprint)])

    def describe(self, action: Any) -> str:
        slot, blueprint = self._check(action)
        return (
            "WAIT" if blueprint == WAIT_BLUEPRINT else f"GROW {self.blueprint_names[blueprint]} @ slot {slot}"
        )

    def _check(self, action: Any) -> tuple[int, int]:
        a = np.asarray(action)
        if (
            a.shape != (2,)
            or not np.issubdtype(a.dtype, np.integer)
            or not self.action_space.contains(a.astype(np.int64))
        ):
            raise ValueError(
                f"an option is (slot, blueprint) within {self.action_space.nvec.tolist()}, got {action!r}"
            )
        return int(a[0]), int(a[1])

    def action_masks(self) -> np.ndarray:
        """Per-head masks, concatenated: slot, then blueprint (``noop``, WAIT, always allowed)."""
        free = self.base.legal_actions()[Op.GERMINATE]
        grow = self.base.blueprint_mask() & bool(free.any())
        grow[WAIT_BLUEPRINT] = True
        return np.concatenate([free if free.any() else np.ones_like(free), grow])

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
        slot, blueprint = self._check(action)
        wait = blueprint == WAIT_BLUEPRINT
        first = (
            WAIT_ACTION if wait else FactoredAction(Op.GERMINATE, slot, blueprint=blueprint, tempo=Tempo.FAST)
        )
        total, ops, act = 0.0, [], first
        while True:
            obs, reward, terminated, truncated, info = self.env.step(act.to_array())
            total += float(reward)
            ops.append(Op(act.op).name if info.get("action_valid", True) else "WAIT")
            if wait or terminated or truncated or not info.get("action_valid", True):
                break
            nxt = self._follow_up(slot)
            if nxt is None:
                break
            act = nxt
        info["option_steps"], info["option_ops"] = len(ops), ops
        info["action_mask"] = self.action_masks()
        return obs, total, terminated, truncated, info


def set_wait_prior(action_net: Any, space: spaces.MultiDiscrete, probability: float, grows: int) -> None:
    """Bias a policy's action logits (``action_net``, the ``torch.nn.Linear`` of an SB3 policy over
    the options ``space``) so that, with the logits near 0 (SB3 initialises its action layer with
    gain 0.01), the initial policy WAITs with ``probability`` at a decision where ``grows``
    blueprints are allowed, and picks among them evenly otherwise."""
    import math

    import torch

    if not 0.0 < probability < 1.0 or grows < 1:
        raise ValueError(
            f"a WAIT prior is a probability in (0, 1) over 1 or more blueprints, got {probability!r} over {grows!r}"
        )
    wait = int(space.nvec[0]) + WAIT_BLUEPRINT  # the blueprint head's logits follow the slot head's
    with torch.no_grad():
        action_net.bias[wait] = math.log(probability * grows / (1.0 - probability))
