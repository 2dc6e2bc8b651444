"""The seed lifecycle: stages, operations, legal transitions, gates and alpha schedules.

Called "Kasmina's lifecycle" in the original design. This module is pure Python (no torch):
the engine asks it whether an operation is legal (:func:`illegal_reason`) and applies its
transitions to a slot's :class:`SlotState` (:func:`germinate`, :func:`advance`,
:func:`set_alpha_target`, :func:`prune`, :func:`fossilize` and the per-epoch :func:`tick`); the
engine only adds what needs torch (building, training and deleting the seed module).

Stages::

    DORMANT -> GERMINATED -> TRAINING -> BLENDING -> HOLDING -> FOSSILIZED (permanent)
    any live stage (GERMINATED, TRAINING, BLENDING, HOLDING) -> PRUNED -> EMBARGOED -> DORMANT

* GERMINATED: the seed module exists but neither trains nor touches the host.
* TRAINING: the seed learns from the task on detached host features; the host's forward output
  and gradients are exactly those without the seed.
* BLENDING: alpha moves from its start value toward its target along a curve.
* HOLDING: alpha sits at its target; the seed's contribution is measured every epoch.
* FOSSILIZED: the seed is permanent; its parameters count as host parameters.
* PRUNED: alpha ramps down to 0, the seed no longer trains; then the module is deleted.
* EMBARGOED: the slot is empty but closed for ``EMBARGO_EPOCHS`` epochs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol

from esper_env.runtime import lookup


class Stage(IntEnum):
    DORMANT = 0
    GERMINATED = 1
    TRAINING = 2
    BLENDING = 3
    HOLDING = 4
    FOSSILIZED = 5
    PRUNED = 6
    EMBARGOED = 7


class Op(IntEnum):
    """The operation head of the factored action."""

    WAIT = 0
    GERMINATE = 1
    ADVANCE = 2
    SET_ALPHA_TARGET = 3
    PRUNE = 4
    FOSSILIZE = 5


class BlendStyle(IntEnum):
    """How a seed's delta enters the host features at a slot (alpha 0 is always the identity)."""

    ADDITIVE = 0  # h + alpha * delta
    MULTIPLICATIVE = 1  # h * (1 + alpha * tanh(delta))
    CHANNEL_GATED = 2  # h + alpha * sigmoid(w . pool(h) + b) * delta   (per-channel gate)
    SPATIAL_GATED = 3  # h + alpha * sigmoid(conv1x1(h)) * delta        (per-pixel gate)


class Tempo(IntEnum):
    """Length of the blend that follows TRAINING, chosen at GERMINATE."""

    FAST = 0
    STANDARD = 1
    SLOW = 2


class AlphaSpeed(IntEnum):
    """Length of an alpha change asked by SET_ALPHA_TARGET or PRUNE."""

    INSTANT = 0
    FAST = 1
    MEDIUM = 2
    SLOW = 3


class AlphaCurve(IntEnum):
    LINEAR = 0
    COSINE = 1
    SIGMOID = 2
    EASE_IN = 3
    EASE_OUT = 4


TEMPO_EPOCHS: dict[Tempo, int] = {Tempo.FAST: 3, Tempo.STANDARD: 5, Tempo.SLOW: 8}
SPEED_EPOCHS: dict[AlphaSpeed, int] = {
    AlphaSpeed.INSTANT: 1,
    AlphaSpeed.FAST: 2,
    AlphaSpeed.MEDIUM: 4,
    AlphaSpeed.SLOW: 8,
}
ALPHA_TARGETS: tuple[float, ...] = (0.5, 0.7, 1.0)

LIVE_STAGES = frozenset({Stage.GERMINATED, Stage.TRAINING, Stage.BLENDING, Stage.HOLDING})
#: Stages in which a seed module exists.
SEED_STAGES = LIVE_STAGES | {Stage.FOSSILIZED, Stage.PRUNED}
#: Stages whose seed is in the host's forward pass with a possibly non-zero alpha.
BLENDED_STAGES = frozenset({Stage.BLENDING, Stage.HOLDING, Stage.FOSSILIZED, Stage.PRUNED})
#: Stages whose contribution the validation pass measures.
MEASURED_STAGES = frozenset({Stage.BLENDING, Stage.HOLDING})
#: Stages whose seed parameters are updated by the optimizer.
TRAINABLE_STAGES = frozenset({Stage.TRAINING, Stage.BLENDING, Stage.HOLDING, Stage.FOSSILIZED})

#: Legal stage changes. Automatic ones (PRUNED -> EMBARGOED -> DORMANT, BLENDING <- HOLDING by
#: SET_ALPHA_TARGET) are listed too: every change the engine makes is checked against this table.
TRANSITIONS: dict[Stage, frozenset[Stage]] = {
    Stage.DORMANT: frozenset({Stage.GERMINATED}),
    Stage.GERMINATED: frozenset({Stage.TRAINING, Stage.PRUNED}),
    Stage.TRAINING: frozenset({Stage.BLENDING, Stage.PRUNED}),
    Stage.BLENDING: frozenset({Stage.HOLDING, Stage.BLENDING, Stage.PRUNED}),
    Stage.HOLDING: frozenset({Stage.FOSSILIZED, Stage.BLENDING, Stage.PRUNED}),
    Stage.FOSSILIZED: frozenset(),
    Stage.PRUNED: frozenset({Stage.EMBARGOED}),
    Stage.EMBARGOED: frozenset({Stage.DORMANT}),
}


@dataclass(frozen=True)
class Gates:
    """Minimum conditions an operation must meet; an op its gate refuses is illegal (masked)."""

    min_training_epochs: int = 2  # TRAINING -> BLENDING
    min_holding_epochs: int = 1  # HOLDING -> FOSSILIZED, and the contribution must be measured
    embargo_epochs: int = 3  # EMBARGOED -> DORMANT


class IllegalTransitionError(ValueError):
    """An operation was asked that the lifecycle or a gate refuses."""


def check_transition(src: Stage, dst: Stage) -> None:
    if dst not in TRANSITIONS[src]:
        allowed = ", ".join(s.name for s in sorted(TRANSITIONS[src])) or "none (permanent)"
        raise IllegalTransitionError(
            f"illegal transition {src.name} -> {dst.name}; from {src.name} the legal stages are: {allowed}"
        )


def curve_value(curve: AlphaCurve, progress: float) -> float:
    """Map progress in [0, 1] to [0, 1] along a curve; exact at both ends."""
    p = min(max(progress, 0.0), 1.0)
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    if curve == AlphaCurve.LINEAR:
        return p
    if curve == AlphaCurve.COSINE:
        return 0.5 - 0.5 * math.cos(math.pi * p)
    if curve == AlphaCurve.SIGMOID:
        k = 10.0
        lo, hi = 1 / (1 + math.exp(k / 2)), 1 / (1 + math.exp(-k / 2))
        return (1 / (1 + math.exp(-k * (p - 0.5))) - lo) / (hi - lo)
    if curve == AlphaCurve.EASE_IN:
        return p * p
    if curve == AlphaCurve.EASE_OUT:
        return 1 - (1 - p) * (1 - p)
    raise ValueError(f"unknown alpha curve {curve!r}; valid: {[c.name for c in AlphaCurve]}")


@dataclass
class AlphaSchedule:
    """Alpha moving from ``start`` to ``target`` over ``duration`` epochs along ``curve``.

    ``elapsed`` counts the epochs already taken. A schedule starts with ``elapsed=1``: the epoch
    that follows the decision already trains at the first point of the ramp.
    """

    start: float
    target: float
    duration: int
    curve: AlphaCurve = AlphaCurve.LINEAR
    elapsed: int = 1

    @property
    def value(self) -> float:
        if self.elapsed >= self.duration:
            return self.target
        frac = curve_value(self.curve, self.elapsed / self.duration)
        return self.start + (self.target - self.start) * frac

    @property
    def done(self) -> bool:
        return self.elapsed >= self.duration

    def tick(self) -> None:
        self.elapsed = min(self.elapsed + 1, self.duration)

    def to_dict(self) -> dict[str, float | int]:
        return {
            "start": self.start,
            "target": self.target,
            "duration": self.duration,
            "curve": int(self.curve),
            "elapsed": self.elapsed,
        }

    @classmethod
    def from_dict(cls, d: dict) -> AlphaSchedule:
        return cls(
            float(d["start"]),
            float(d["target"]),
            int(d["duration"]),
            AlphaCurve(int(d["curve"])),
            int(d["elapsed"]),
        )


def enum_value(enum: type[IntEnum], value: int | str | IntEnum) -> IntEnum:
    """Coerce an int, a name or a member to ``enum``; ValueError names the bad value otherwise."""
    if isinstance(value, enum):
        return value
    if isinstance(value, str):
        return lookup(enum.__name__, value.upper(), enum.__members__)
    try:
        return enum(int(value))
    except (ValueError, TypeError):
        valid = ", ".join(f"{m.value}={m.name}" for m in enum)
        raise ValueError(f"unknown {enum.__name__} {value!r}; valid values are: {valid}") from None


class LifecycleState(Protocol):
    """What legality reads of a slot's state (``esper_env.slots.SlotState`` has it)."""

    stage: Stage
    alpha: float
    alpha_target: float
    schedule: AlphaSchedule | None
    epochs_in_stage: int
    measured_in_stage: bool


def illegal_reason(op: Op, st: LifecycleState, gates: Gates, *, slot: int = 0) -> str | None:
    """Why ``op`` on a slot in state ``st`` is illegal, or None if it is legal (``gates`` included).

    The one definition of op legality: the engine refuses, and the env masks, exactly what this
    refuses. ``slot`` only names the slot in the reason.
    """
    if op == Op.WAIT:
        return None
    if op == Op.GERMINATE:
        return None if st.stage == Stage.DORMANT else f"slot {slot} is {st.stage.name}, not DORMANT"
    if op == Op.ADVANCE:
        if st.stage == Stage.GERMINATED:
            return None
        if st.stage == Stage.TRAINING:
            if st.epochs_in_stage < gates.min_training_epochs:
                return (
                    f"slot {slot} has trained {st.epochs_in_stage} epochs; the gate needs "
                    f"{gates.min_training_epochs}"
                )
            return None
        if st.stage == Stage.BLENDING:
            if st.schedule is not None and not st.schedule.done:
                return f"slot {slot} alpha {st.alpha:.3f} has not reached its target {st.alpha_target}"
            return None
        return f"slot {slot} is {st.stage.name}; ADVANCE needs GERMINATED, TRAINING or BLENDING"
    if op == Op.SET_ALPHA_TARGET:
        ok = st.stage in (Stage.BLENDING, Stage.HOLDING)
        return None if ok else f"slot {slot} is {st.stage.name}; SET_ALPHA_TARGET needs BLENDING or HOLDING"
    if op == Op.PRUNE:
        ok = st.stage in LIVE_STAGES
        return None if ok else f"slot {slot} is {st.stage.name}; PRUNE needs a live seed"
    if op == Op.FOSSILIZE:
        if st.stage != Stage.HOLDING:
            return f"slot {slot} is {st.stage.name}; FOSSILIZE needs HOLDING"
        if st.epochs_in_stage < gates.min_holding_epochs or not st.measured_in_stage:
            return f"slot {slot} has no contribution measured in HOLDING yet"
        return None
    raise AssertionError(op)


# ---------------------------------------------------------------------------------------------
# A slot's state and its transitions


@dataclass
class SlotState:
    """Lifecycle state of one slot; plain data so that it snapshots without pickle."""

    stage: Stage = Stage.DORMANT
    blueprint: str | None = None
    style: BlendStyle = BlendStyle.ADDITIVE
    alpha: float = 0.0
    alpha_target: float = 1.0
    schedule: AlphaSchedule | None = None
    tempo_epochs: int = 5
    epochs_in_stage: int = 0
    embargo_remaining: int = 0
    seed_id: int = -1
    #: Last measured counterfactual contribution (accuracy with the seed minus with alpha 0), or None.
    contribution: float | None = None
    #: Whether a contribution was measured since the seed entered its current stage.
    measured_in_stage: bool = False
    #: Host validation accuracy when the seed entered its current stage (for "seed improvement").
    accuracy_at_stage_start: float | None = None
    history: list[float] = field(default_factory=list)  # contributions measured, oldest first

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": int(self.stage),
            "blueprint": self.blueprint,
            "style": int(self.style),
            "alpha": self.alpha,
            "alpha_target": self.alpha_target,
            "schedule": None if self.schedule is None else self.schedule.to_dict(),
            "tempo_epochs": self.tempo_epochs,
            "epochs_in_stage": self.epochs_in_stage,
            "embargo_remaining": self.embargo_remaining,
            "seed_id": self.seed_id,
            "contribution": self.contribution,
            "measured_in_stage": self.measured_in_stage,
            "accuracy_at_stage_start": self.accuracy_at_stage_start,
            "history": list(self.history),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SlotState:
        return cls(
            stage=Stage(int(d["stage"])),
            blueprint=d["blueprint"],
            style=BlendStyle(int(d["style"])),
            alpha=float(d["alpha"]),
            alpha_target=float(d["alpha_target"]),
            schedule=None if d["schedule"] is None else AlphaSchedule.from_dict(d["schedule"]),
            tempo_epochs=int(d["tempo_epochs"]),
            epochs_in_stage=int(d["epochs_in_stage"]),
            embargo_remaining=int(d["embargo_remaining"]),
            seed_id=int(d["seed_id"]),
            contribution=d["contribution"],
            measured_in_stage=bool(d["measured_in_stage"]),
            accuracy_at_stage_start=d["accuracy_at_stage_start"],
            history=[float(x) for x in d["history"]],
        )


def move_to(st: SlotState, stage: Stage, *, accuracy: float | None) -> None:
    """Change stage after checking the transition table; resets the per-stage counters."""
    check_transition(st.stage, stage)
    st.stage = stage
    st.epochs_in_stage = 0
    st.measured_in_stage = False
    st.accuracy_at_stage_start = accuracy


def clear_seed(st: SlotState) -> None:
    """Forget the seed (its ramp-down after a prune is over): alpha 0, no blueprint, no history."""
    st.alpha = 0.0
    st.schedule = None
    st.blueprint = None
    st.contribution = None
    st.history = []


def germinate(
    st: SlotState,
    blueprint: str,
    style: BlendStyle,
    tempo: Tempo,
    alpha_target: float,
    *,
    seed_id: int,
    accuracy: float | None,
) -> None:
    """DORMANT -> GERMINATED with a new seed of ``blueprint`` (alpha 0 until it blends)."""
    move_to(st, Stage.GERMINATED, accuracy=accuracy)
    st.blueprint = blueprint
    st.style = style
    st.alpha = 0.0
    st.alpha_target = alpha_target
    st.tempo_epochs = TEMPO_EPOCHS[tempo]
    st.seed_id = seed_id
    st.contribution = None
    st.history = []


def advance(st: SlotState, *, accuracy: float | None) -> Stage:
    """GERMINATED -> TRAINING, TRAINING -> BLENDING (alpha starts its tempo's ramp), or BLENDING
    (ramp done) -> HOLDING. Returns the new stage."""
    if st.stage == Stage.GERMINATED:
        move_to(st, Stage.TRAINING, accuracy=accuracy)
    elif st.stage == Stage.TRAINING:
        move_to(st, Stage.BLENDING, accuracy=accuracy)
        st.schedule = AlphaSchedule(0.0, st.alpha_target, st.tempo_epochs, AlphaCurve.LINEAR)
        st.alpha = st.schedule.value
    else:  # BLENDING with its schedule done
        move_to(st, Stage.HOLDING, accuracy=accuracy)
        st.schedule = None
    return st.stage


def set_alpha_target(
    st: SlotState, alpha_target: float, speed: AlphaSpeed, curve: AlphaCurve, *, accuracy: float | None
) -> None:
    """A new alpha target reached over ``speed`` epochs along ``curve`` (HOLDING goes back to BLENDING)."""
    if st.stage == Stage.HOLDING:
        move_to(st, Stage.BLENDING, accuracy=accuracy)
    st.alpha_target = alpha_target
    st.schedule = AlphaSchedule(st.alpha, alpha_target, SPEED_EPOCHS[speed], curve)
    st.alpha = st.schedule.value


def prune(st: SlotState, speed: AlphaSpeed, curve: AlphaCurve, *, accuracy: float | None) -> None:
    """Live -> PRUNED: alpha ramps down to 0 over ``speed`` epochs (one if it is already 0)."""
    duration = SPEED_EPOCHS[speed] if st.alpha > 0 else 1
    move_to(st, Stage.PRUNED, accuracy=accuracy)
    st.schedule = AlphaSchedule(st.alpha, 0.0, duration, curve)
    st.alpha = st.schedule.value


def fossilize(st: SlotState, *, accuracy: float | None) -> None:
    """HOLDING -> FOSSILIZED: the seed becomes part of the host for good."""
    move_to(st, Stage.FOSSILIZED, accuracy=accuracy)
    st.schedule = None


def tick(st: SlotState, gates: Gates) -> bool:
    """Advance the slot's timers and alpha schedule by one trained epoch.

    EMBARGOED counts down to DORMANT; a PRUNED ramp moves on, and once it is done the slot is
    EMBARGOED. Returns True when the seed module must be deleted now (the prune finished).
    """
    if st.stage == Stage.DORMANT:
        return False
    st.epochs_in_stage += 1
    if st.stage == Stage.EMBARGOED:
        st.embargo_remaining -= 1
        if st.embargo_remaining <= 0:
            move_to(st, Stage.DORMANT, accuracy=None)
    elif st.stage == Stage.PRUNED:
        assert st.schedule is not None
        if st.schedule.done:
            clear_seed(st)
            move_to(st, Stage.EMBARGOED, accuracy=None)
            st.embargo_remaining = gates.embargo_epochs
            return True
        st.schedule.tick()
        st.alpha = st.schedule.value
    elif st.stage == Stage.BLENDING:
        assert st.schedule is not None
        st.schedule.tick()
        st.alpha = st.schedule.value
    return False
