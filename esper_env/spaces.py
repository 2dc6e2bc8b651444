"""The factored action space, its masks, and the observation schema (its encoder and decoder are
in :mod:`esper_env.observation`).

Action: ``MultiDiscrete([6, num_slots, 16, 4, 3, 3, 4, 5])``, one value per head (13 blueprint
values in env v0: the functions that size a space take ``num_blueprints``, default all 16)::

    op, slot, blueprint, style, tempo, alpha_target, alpha_speed, alpha_curve

Heads the chosen op does not use are ignored (WAIT ignores all but ``op``).

Legality is exact per (op, slot) pair: :meth:`EsperEnv.legal_actions` gives the boolean matrix
(from :func:`esper_env.lifecycle.illegal_reason`). The flat per-head mask that sb3-contrib's
MaskablePPO expects (:func:`flat_action_mask`) is its projection: a head value is allowed when it
is part of at least one legal action. Per-head masks cannot say
"this slot only with this op"; the discrete wrappers in :mod:`esper_env.wrappers` are exact.
:func:`sample_mask` gives either in the form ``action_space.sample(mask=...)`` takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from esper_env.blueprints import BLUEPRINTS, NOOP_BLUEPRINT, blueprints_for
from esper_env.lifecycle import (
    ALPHA_TARGETS,
    AlphaCurve,
    AlphaSpeed,
    BlendStyle,
    Op,
    Stage,
    Tempo,
)
from esper_env.versions import dynamics

HEADS: tuple[str, ...] = (
    "op",
    "slot",
    "blueprint",
    "style",
    "tempo",
    "alpha_target",
    "alpha_speed",
    "alpha_curve",
)
#: Which heads each op reads (besides ``op``).
OP_HEADS: dict[Op, tuple[str, ...]] = {
    Op.WAIT: (),
    Op.GERMINATE: ("slot", "blueprint", "style", "tempo", "alpha_target"),
    Op.ADVANCE: ("slot",),
    Op.SET_ALPHA_TARGET: ("slot", "alpha_target", "alpha_speed", "alpha_curve"),
    Op.PRUNE: ("slot", "alpha_speed", "alpha_curve"),
    Op.FOSSILIZE: ("slot",),
}
NOOP_INDEX = BLUEPRINTS.index(NOOP_BLUEPRINT)


def op_params(action: FactoredAction) -> dict[str, object]:
    """The keyword arguments of :meth:`TrainingEngine.apply` for ``action`` (its op's heads, decoded)."""
    op = Op(action.op)
    if op == Op.GERMINATE:
        return {
            "blueprint": BLUEPRINTS[action.blueprint],
            "style": BlendStyle(action.style),
            "tempo": Tempo(action.tempo),
            "alpha_target": ALPHA_TARGETS[action.alpha_target],
        }
    if op == Op.SET_ALPHA_TARGET:
        return {
            "alpha_target": ALPHA_TARGETS[action.alpha_target],
            "speed": AlphaSpeed(action.alpha_speed),
            "curve": AlphaCurve(action.alpha_curve),
        }
    if op == Op.PRUNE:
        return {"speed": AlphaSpeed(action.alpha_speed), "curve": AlphaCurve(action.alpha_curve)}
    return {}


def head_sizes(num_slots: int, num_blueprints: int = len(BLUEPRINTS)) -> tuple[int, ...]:
    return (
        len(Op),
        num_slots,
        num_blueprints,
        len(BlendStyle),
        len(Tempo),
        len(ALPHA_TARGETS),
        len(AlphaSpeed),
        len(AlphaCurve),
    )


def make_action_space(num_slots: int, num_blueprints: int = len(BLUEPRINTS)) -> spaces.MultiDiscrete:
    return spaces.MultiDiscrete(np.array(head_sizes(num_slots, num_blueprints), dtype=np.int64))


class FactoredAction(NamedTuple):
    op: int
    slot: int = 0
    blueprint: int = 1
    style: int = 0
    tempo: int = 1
    alpha_target: int = 2
    alpha_speed: int = 2
    alpha_curve: int = 0

    def to_array(self) -> np.ndarray:
        return np.array(self, dtype=np.int64)

    def canonical(self) -> FactoredAction:
        """The same action with the heads its op ignores set to their defaults."""
        used = OP_HEADS[Op(self.op)]
        default = FactoredAction(op=self.op)
        return FactoredAction(
            *(v if h == "op" or h in used else getattr(default, h) for h, v in zip(HEADS, self))
        )

    def describe(self) -> str:
        op = Op(self.op)
        if op == Op.WAIT:
            return "WAIT"
        parts = [f"slot={self.slot}"]
        if "blueprint" in OP_HEADS[op]:
            parts += [
                f"blueprint={BLUEPRINTS[self.blueprint]}",
                f"style={BlendStyle(self.style).name}",
                f"tempo={Tempo(self.tempo).name}",
            ]
        if "alpha_target" in OP_HEADS[op]:
            parts.append(f"alpha_target={ALPHA_TARGETS[self.alpha_target]}")
        if "alpha_speed" in OP_HEADS[op]:
            parts += [
                f"speed={AlphaSpeed(self.alpha_speed).name}",
                f"curve={AlphaCurve(self.alpha_curve).name}",
            ]
        return f"{op.name}({', '.join(parts)})"


WAIT_ACTION = FactoredAction(op=int(Op.WAIT))


def check_action(action: object, space: spaces.MultiDiscrete) -> FactoredAction:
    """Convert ``action`` to a FactoredAction, or raise a ValueError that shows it and the space.

    Each head must be an integer (an integral float is accepted); values are range-checked
    before any conversion, so the message shows the values as given.
    """
    try:
        arr = np.asarray(action)
    except (ValueError, TypeError):  # ragged nesting: numpy cannot make an array of it
        arr = None
    integral = (
        arr is not None
        and arr.shape == space.nvec.shape
        and (
            arr.dtype.kind in "iu"
            or (arr.dtype.kind == "f" and bool(np.all(np.isfinite(arr) & (np.mod(arr, 1) == 0))))
        )
    )
    if not integral:
        raise ValueError(
            f"action {action!r} is not in the action space {space}: expected {len(space.nvec)} integers "
            f"for the heads {HEADS}"
        )
    assert arr is not None
    values = arr.tolist()
    bad = [f"{h}={v} (valid 0..{n - 1})" for h, v, n in zip(HEADS, values, space.nvec) if not 0 <= v < n]
    if bad:
        raise ValueError(f"action {values} is not in the action space {space}: {', '.join(bad)}")
    return FactoredAction(*(int(v) for v in values))


def check_discrete_action(action: object, space: spaces.Discrete) -> int:
    """``action`` as an index of ``space``; ValueError showing it unless it is an integer in range.

    Accepted: a Python or NumPy integer, or a 0-d integer array. Floats, strings and bools are
    refused rather than converted (``2.9`` would silently become 2).
    """
    value = action.item() if isinstance(action, np.ndarray) and action.ndim == 0 else action
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"action {action!r} is not in the action space {space}: expected an integer")
    index = int(value)
    if not space.contains(index):
        raise ValueError(f"action {action!r} is not in the action space {space}: valid 0..{int(space.n) - 1}")
    return index


def flat_action_mask(
    legal: np.ndarray,
    num_slots: int,
    num_blueprints: int = len(BLUEPRINTS),
    blueprints: np.ndarray | None = None,
) -> np.ndarray:
    """The per-head mask sb3-contrib expects: concatenated boolean vectors, one per head.

    ``legal`` is the ``[6, num_slots]`` joint legality of (op, slot). WAIT is always legal.
    ``blueprints`` is the boolean mask of the blueprints the host supports (``None``: all of
    them); ``noop`` is always masked.
    """
    op_mask = legal.any(axis=1)
    op_mask[Op.WAIT] = True
    non_wait = legal[1:].any(axis=0)
    slot_mask = non_wait if non_wait.any() else np.ones(num_slots, dtype=bool)
    blueprint_mask = np.ones(num_blueprints, dtype=bool) if blueprints is None else blueprints.copy()
    blueprint_mask[NOOP_INDEX] = False
    rest = [np.ones(n, dtype=bool) for n in head_sizes(num_slots, num_blueprints)[3:]]
    return np.concatenate([op_mask, slot_mask, blueprint_mask, *rest])


def sample_mask(env: gym.Env) -> np.ndarray | tuple[np.ndarray, ...]:
    """The mask that ``env.action_space.sample(mask=...)`` takes (Gymnasium 1.0), from ``action_masks()``.

    ``env`` is an Esper env, wrapped or not; the mask is that of its outermost ``action_masks()``
    and fits its outermost action space:

    * ``MultiDiscrete`` (the base env): a tuple of int8 arrays, one per head, the per-head split of
      :func:`flat_action_mask`. Per-head masks are a superset of the exact joint legality: a
      sample takes each head value from a legal action, but the op and slot it combines may not
      form one (ADVANCE on a slot where only PRUNE is legal), and the env then runs WAIT.
    * ``Discrete`` (:class:`~esper_env.wrappers.CompactActions` and the other discrete
      wrappers): an int8 array over the indices, exact: every sample is a legal action.

    ``info["action_mask"]`` stays the flat boolean mask that sb3-contrib's MaskablePPO reads.

    >>> import gymnasium as gym, esper_env
    >>> env = gym.make("Esper-SynthCIFAR-v2", fidelity="test", max_epochs=2, device="cpu")
    >>> _ = env.reset(seed=0)
    >>> action = env.action_space.sample(mask=esper_env.sample_mask(env))
    """
    space = env.action_space
    mask = np.asarray(env.get_wrapper_attr("action_masks")(), dtype=bool)
    if isinstance(space, spaces.Discrete):
        return mask.astype(np.int8)
    if isinstance(space, spaces.MultiDiscrete) and space.nvec.ndim == 1:
        return tuple(m.astype(np.int8) for m in np.split(mask, np.cumsum(space.nvec)[:-1]))
    raise TypeError(f"sample_mask needs a Discrete or 1-d MultiDiscrete action space, got {space}")


# ---------------------------------------------------------------------------------------------
# Observation


#: Losses and relative sizes are clipped to these bounds so the Box is finite.
LOSS_MAX = 100.0
SIZE_MAX = 100.0


@dataclass(frozen=True)
class Feature:
    name: str
    size: int
    low: float
    high: float
    description: str


BASE_FEATURES: tuple[Feature, ...] = (
    Feature("epoch", 1, 0.0, 1.0, "epochs trained / max_epochs"),
    Feature("budget_remaining", 1, 0.0, 1.0, "(max_epochs - epoch) / max_epochs"),
    Feature("val_accuracy", 1, -1.0, 1.0, "validation accuracy of the last epoch"),
    Feature("val_loss", 1, -1.0, LOSS_MAX, "validation loss of the last epoch"),
    Feature("train_accuracy", 1, -1.0, 1.0, "training accuracy of the last epoch"),
    Feature("train_loss", 1, -1.0, LOSS_MAX, "training loss of the last epoch"),
    Feature("accuracy_delta", 1, -1.0, 1.0, "val accuracy change over the last epoch"),
    Feature("loss_delta", 1, -LOSS_MAX, LOSS_MAX, "val loss change over the last epoch"),
    Feature("plateau_epochs", 1, 0.0, 1.0, "epochs since best val accuracy improved / max_epochs"),
    Feature("best_val_accuracy", 1, -1.0, 1.0, "best validation accuracy so far"),
    Feature("best_val_loss", 1, -1.0, LOSS_MAX, "best validation loss so far"),
    Feature("accuracy_history_5", 5, -1.0, 1.0, "val accuracy of the last 5 epochs, oldest first"),
    Feature("loss_history_5", 5, -1.0, LOSS_MAX, "val loss of the last 5 epochs, oldest first"),
    Feature("has_active_seed", 1, 0.0, 1.0, "1 if any slot holds a live (not fossilized) seed"),
    Feature("available_slots", 1, 0.0, 1.0, "DORMANT slots / num_slots"),
    Feature("seed_params", 1, 0.0, SIZE_MAX, "parameters of live seeds / base host parameters"),
    Feature("fossil_params", 1, 0.0, SIZE_MAX, "parameters of fossilized seeds / base host parameters"),
    Feature("last_action_success", 1, 0.0, 1.0, "1 if the last action was legal and executed (1 at reset)"),
    Feature("last_op", len(Op), 0.0, 1.0, "one-hot of the last executed op (WAIT at reset)"),
)


def slot_features(num_blueprints: int = len(BLUEPRINTS)) -> tuple[Feature, ...]:
    """The features of one slot (the blueprint one-hot has ``num_blueprints`` values)."""
    return (
        Feature("stage", len(Stage), 0.0, 1.0, "one-hot lifecycle stage"),
        Feature("alpha", 1, 0.0, 1.0, "current blend weight"),
        Feature("alpha_target", 1, 0.0, 1.0, "alpha target (0 when the slot holds no seed)"),
        Feature("epochs_in_stage", 1, 0.0, 1.0, "epochs in the current stage / max_epochs"),
        Feature("blueprint", num_blueprints, 0.0, 1.0, "one-hot blueprint (all 0 when empty)"),
        Feature("style", len(BlendStyle), 0.0, 1.0, "one-hot blend style (all 0 when empty)"),
        Feature(
            "contribution", 1, -1.0, 1.0, "last measured counterfactual contribution; -1 if never measured"
        ),
        Feature("contribution_measured", 1, 0.0, 1.0, "1 if a contribution was measured for this seed"),
        Feature("seed_params", 1, 0.0, SIZE_MAX, "seed parameters / base host parameters"),
        Feature("embargo", 1, 0.0, 1.0, "embargo epochs remaining / embargo length"),
    )


SLOT_FEATURES: tuple[Feature, ...] = slot_features()


#: The task's context (env v2 on, :attr:`esper_env.versions.Dynamics.context`): appended after
#: every slot block, so an older version's observation is a prefix of the newer one's. All in
#: [0, 1]; what :func:`esper_env.observation.encode_observation` writes is clipped to it.
CONTEXT_FEATURES: tuple[Feature, ...] = (
    Feature("context/rent", 1, 0.0, 1.0, "the score's price per doubling of the network x 10 (0.03 -> 0.3)"),
    Feature("context/log_lr", 1, 0.0, 1.0, "(log10(host learning rate) + 4) / 4"),
    Feature("context/train_images", 1, 0.0, 1.0, "log2(training images per epoch) / 16"),
    Feature("context/num_classes", 1, 0.0, 1.0, "log10(number of classes) / 2"),
)


def slot_context_features(k: int) -> tuple[Feature, ...]:
    """The context features of slot ``k`` (after :data:`CONTEXT_FEATURES`, one pair per slot)."""
    return (
        Feature(f"context/slot{k}/host_width", 1, 0.0, 1.0, "log2(host channels at the slot) / 10"),
        Feature(
            f"context/slot{k}/param_share",
            1,
            0.0,
            1.0,
            "parameters of the host blocks before and after the slot / host parameters (what widening it costs)",
        ),
    )


def observation_features(
    num_slots: int, num_blueprints: int = len(BLUEPRINTS), context: bool = False
) -> list[Feature]:
    """Every feature of the flat observation, in order, with slot features prefixed ``slotK/``;
    with ``context`` (env v2 on) the ``context/`` features follow the last slot block."""
    feats = list(BASE_FEATURES)
    per_slot = slot_features(num_blueprints)
    for k in range(num_slots):
        feats += [Feature(f"slot{k}/{f.name}", f.size, f.low, f.high, f.description) for f in per_slot]
    if context:
        feats += CONTEXT_FEATURES
        for k in range(num_slots):
            feats += slot_context_features(k)
    return feats


def observation_schema(
    num_slots: int, num_blueprints: int = len(BLUEPRINTS), context: bool = False
) -> dict[str, slice]:
    schema, start = {}, 0
    for f in observation_features(num_slots, num_blueprints, context):
        schema[f.name] = slice(start, start + f.size)
        start += f.size
    return schema


def make_observation_space(
    num_slots: int, num_blueprints: int = len(BLUEPRINTS), context: bool = False
) -> spaces.Box:
    feats = observation_features(num_slots, num_blueprints, context)
    low = np.concatenate([np.full(f.size, f.low, dtype=np.float32) for f in feats])
    high = np.concatenate([np.full(f.size, f.high, dtype=np.float32) for f in feats])
    return spaces.Box(low=low, high=high, dtype=np.float32)


def version_observation(version: int, num_slots: int) -> tuple[dict[str, slice], spaces.Box]:
    """The observation schema and space of env ``version`` (its blueprint count and context), for
    readers of logged data that have the env id (:func:`esper_env.datasets.env_version`), not the env."""
    n, context = len(blueprints_for(version)), dynamics(version).context
    return observation_schema(num_slots, n, context), make_observation_space(num_slots, n, context)
