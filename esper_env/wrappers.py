"""Discrete action wrappers, the classic observation, and the flat joint action encoding.

* :class:`CompactActions`: ``Discrete(n)`` over canonical combinations (WAIT; GERMINATE of each
  blueprint in each slot with default style, tempo and alpha target; ADVANCE, each alpha target,
  PRUNE and FOSSILIZE per slot). Its mask is exact: an index is legal iff the env would execute it.
* :class:`ClassicActions`: ``Discrete(4)``, the original imitation design's WAIT / GERMINATE / ADVANCE / CULL.
* :class:`ClassicObservation`: the original imitation design's 27-feature training snapshot.
* :class:`MatchTimeLimit`: makes ``gymnasium.make(..., max_episode_steps=K)`` and the env's
  ``max_epochs`` agree (registered on every id; not for direct use).
* :func:`encode_joint` / :func:`decode_joint`: one integer per canonical factored action, for
  datasets that need a single discrete action.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from esper_env.blueprints import BLUEPRINTS
from esper_env.env import EsperEnv
from esper_env.lifecycle import ALPHA_TARGETS, LIVE_STAGES, Op, Stage
from esper_env.spaces import NOOP_INDEX, WAIT_ACTION, FactoredAction, check_discrete_action, head_sizes


def _unwrapped(env: gym.Env) -> EsperEnv:
    base = env.unwrapped
    if not isinstance(base, EsperEnv):
        raise TypeError(f"this wrapper needs an EsperEnv underneath, got {type(base).__name__}")
    return base


def compact_action_table(num_slots: int, num_blueprints: int = len(BLUEPRINTS)) -> list[FactoredAction]:
    """The canonical factored actions that CompactActions enumerates, in index order (an env of
    version v0 has 13 blueprints: pass ``num_blueprints``)."""
    table = [WAIT_ACTION]
    for slot in range(num_slots):
        for bp in range(num_blueprints):
            if bp != NOOP_INDEX:
                table.append(FactoredAction(Op.GERMINATE, slot, blueprint=bp).canonical())
    for slot in range(num_slots):
        table.append(FactoredAction(Op.ADVANCE, slot).canonical())
        for t in range(len(ALPHA_TARGETS)):
            table.append(FactoredAction(Op.SET_ALPHA_TARGET, slot, alpha_target=t).canonical())
        table.append(FactoredAction(Op.PRUNE, slot).canonical())
        table.append(FactoredAction(Op.FOSSILIZE, slot).canonical())
    return table


class _MaskedDiscreteActions(gym.ActionWrapper):
    """A discrete action wrapper whose ``info["action_mask"]`` is its subclass's ``action_masks()``."""

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        info["action_mask"] = self.action_masks()
        return obs, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(self.action(action))
        info["action_mask"] = self.action_masks()
        return obs, reward, terminated, truncated, info


class CompactActions(_MaskedDiscreteActions, gym.utils.RecordConstructorArgs):
    """``Discrete(n)`` over canonical legal combinations, with an exact joint mask.

    ``info["action_mask"]`` and :meth:`action_masks` are boolean vectors of length ``n``;
    :attr:`actions` lists the factored action behind each index and :meth:`describe` names it.
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ActionWrapper.__init__(self, env)
        self.base = _unwrapped(env)
        self.actions = compact_action_table(self.base.num_slots, len(self.base.blueprints))
        self._index = {a: i for i, a in enumerate(self.actions)}
        self.action_space = spaces.Discrete(len(self.actions))

    def action(self, action: Any) -> np.ndarray:
        return self.actions[check_discrete_action(action, self.action_space)].to_array()

    def index_of(self, action: FactoredAction) -> int:
        """Index of a factored action's canonical form; KeyError if it has none here."""
        return self._index[FactoredAction(*action).canonical()]

    def describe(self, index: int) -> str:
        return self.actions[index].describe()

    def action_masks(self) -> np.ndarray:
        legal, supported = self.base.legal_actions(), self.base.blueprint_mask()
        return np.array(
            [
                legal[a.op, a.slot] and (a.op != Op.GERMINATE or bool(supported[a.blueprint]))
                for a in self.actions
            ]
        )


class MatchTimeLimit(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Registered on every Esper id, so Gymnasium applies it outside its ``TimeLimit``: with
    ``gymnasium.make(id, max_episode_steps=K)`` the env's ``max_epochs`` becomes
    ``min(max_epochs, K)`` (:meth:`EsperEnv.limit_epochs`). Without it the TimeLimit would cut
    the episode with no final summary while the observation still counted toward ``max_epochs``.
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        limit = env.spec.max_episode_steps if env.spec is not None else None
        if limit is not None:
            _unwrapped(env).limit_epochs(limit)


_ALWAYS_ILLEGAL = FactoredAction(Op.GERMINATE, 0, blueprint=NOOP_INDEX)


class ClassicActions(_MaskedDiscreteActions, gym.utils.RecordConstructorArgs):
    """The original imitation design's ``Discrete(4)``: WAIT, GERMINATE, ADVANCE, CULL.

    GERMINATE fills the first DORMANT slot with ``blueprint``; ADVANCE moves the furthest-along
    seed that can move (HOLDING seeds are fossilized); CULL prunes the live seed with the lowest
    measured contribution (unmeasured seeds first).
    """

    WAIT, GERMINATE, ADVANCE, CULL = range(4)
    NAMES = ("WAIT", "GERMINATE", "ADVANCE", "CULL")

    def __init__(self, env: gym.Env, blueprint: str = "conv_light") -> None:
        gym.utils.RecordConstructorArgs.__init__(self, blueprint=blueprint)
        gym.ActionWrapper.__init__(self, env)
        self.base = _unwrapped(env)
        names = self.base.blueprints
        self.blueprint = names.index(blueprint) if blueprint in names else None
        if self.blueprint is None or self.blueprint == NOOP_INDEX:
            valid = [b for b in names if b != names[NOOP_INDEX]]
            raise ValueError(f"unknown blueprint {blueprint!r}; valid blueprints are: {valid}")
        self.action_space = spaces.Discrete(4)

    def _choices(self) -> list[FactoredAction | None]:
        legal = self.base.legal_actions()
        slots = self.base.engine.slots
        germ = next((s.index for s in slots if legal[Op.GERMINATE, s.index]), None)
        advance = None
        for s in sorted(slots, key=lambda s: -int(s.stage)):
            if legal[Op.FOSSILIZE, s.index]:
                advance = FactoredAction(Op.FOSSILIZE, s.index)
                break
            if legal[Op.ADVANCE, s.index]:
                advance = FactoredAction(Op.ADVANCE, s.index)
                break
        live = [s for s in slots if legal[Op.PRUNE, s.index]]
        cull = min(
            live, key=lambda s: -2.0 if s.state.contribution is None else s.state.contribution, default=None
        )
        return [
            WAIT_ACTION,
            None if germ is None else FactoredAction(Op.GERMINATE, germ, blueprint=self.blueprint),
            advance,
            None if cull is None else FactoredAction(Op.PRUNE, cull.index, alpha_speed=0),
        ]

    def action(self, action: Any) -> np.ndarray:
        chosen = self._choices()[check_discrete_action(action, self.action_space)]
        # An illegal classic action is sent as GERMINATE(noop), which is never legal, so the env
        # reports action_valid=False and runs WAIT, exactly as for the full space.
        return (chosen or _ALWAYS_ILLEGAL).to_array()

    def action_masks(self) -> np.ndarray:
        return np.array([c is not None for c in self._choices()])


CLASSIC_FEATURES: tuple[str, ...] = (
    "epoch", "global_step", "train_loss", "val_loss", "loss_delta", "train_accuracy", "val_accuracy",
    "accuracy_delta", "plateau_epochs", "best_val_accuracy", "best_val_loss",
    *(f"loss_history_5[{i}]" for i in range(5)), *(f"accuracy_history_5[{i}]" for i in range(5)),
    "has_active_seed", "seed_stage", "seed_epochs_in_stage", "seed_alpha", "seed_improvement", "available_slots",
)  # fmt: skip


class ClassicObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """The original imitation design's 27-feature ``TrainingSnapshot``, in its order (accuracies as fractions).

    The "seed" features describe the live seed furthest along its lifecycle (stage as its
    integer value, -1 when there is none); unmeasured values are -1.
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        self.base = _unwrapped(env)
        self.observation_space = spaces.Box(-1e6, 1e6, shape=(len(CLASSIC_FEATURES),), dtype=np.float32)

    def observation(self, observation: Any) -> np.ndarray:
        e, h = self.base.engine, self.base.engine.history

        def last(xs: list[float], back: int = 1) -> float:
            return xs[-back] if len(xs) >= back else -1.0

        def hist5(xs: list[float]) -> list[float]:
            return [-1.0] * (5 - len(xs[-5:])) + xs[-5:]

        live = [s for s in e.slots if s.stage in LIVE_STAGES]
        seed = max(live, key=lambda s: int(s.stage), default=None)
        if seed is None:
            seed_feats = [0.0, -1.0, -1.0, -1.0, -1.0]
        else:
            st = seed.state
            improvement = (
                h.val_accuracy[-1] - st.accuracy_at_stage_start
                if h.val_accuracy and st.accuracy_at_stage_start is not None
                else -1.0
            )
            seed_feats = [1.0, float(st.stage), float(st.epochs_in_stage), st.alpha, improvement]
        values = [
            h.epoch, h.global_step, last(h.train_loss), last(h.val_loss),
            h.val_loss[-1] - h.val_loss[-2] if len(h.val_loss) >= 2 else -1.0,
            last(h.train_accuracy), last(h.val_accuracy),
            h.val_accuracy[-1] - h.val_accuracy[-2] if len(h.val_accuracy) >= 2 else -1.0,
            h.plateau_epochs, -1.0 if h.best_val_accuracy is None else h.best_val_accuracy,
            -1.0 if h.best_val_loss is None else h.best_val_loss,
            *hist5(h.val_loss), *hist5(h.val_accuracy), *seed_feats,
            sum(s.stage == Stage.DORMANT for s in e.slots),
        ]  # fmt: skip
        return np.nan_to_num(np.asarray(values, dtype=np.float32), nan=-1.0)


def joint_size(num_slots: int) -> int:
    return int(np.prod(head_sizes(num_slots)))


def encode_joint(action: Any, num_slots: int) -> int:
    """Mixed-radix index of the action's canonical form (ignored heads set to defaults)."""
    canonical = FactoredAction(*(int(v) for v in action)).canonical()
    sizes = head_sizes(num_slots)
    bad = [(v, n) for v, n in zip(canonical, sizes) if not 0 <= v < n]
    if bad:
        raise ValueError(f"action {list(action)} is outside the heads {sizes}")
    return int(np.ravel_multi_index(tuple(canonical), sizes))


def decode_joint(index: int, num_slots: int) -> FactoredAction:
    size = joint_size(num_slots)
    if not 0 <= int(index) < size:
        raise ValueError(f"joint action index {index!r} is outside 0..{size - 1}")
    return FactoredAction(*(int(v) for v in np.unravel_index(int(index), head_sizes(num_slots))))
