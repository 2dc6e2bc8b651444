"""The observation, both ways: :func:`encode_observation` writes each feature by its schema name,
:class:`ObservationView` (with a :class:`SlotView` per slot) reads them back by name.

The schema (:func:`esper_env.spaces.observation_schema`) maps each feature name to its slice of
the flat ``float32`` vector; the features and their bounds are in :mod:`esper_env.spaces`, and
:func:`feature_table` renders them as the Markdown table of the env's docstring and env card. A
measurement not yet taken is written as -1 and read back as None.

From env v2 on the observation ends with the task's context (``context/*``, see
:data:`esper_env.spaces.CONTEXT_FEATURES`): the env passes an :class:`ObservationContext` each
step, and the per-slot values (host width, parameter share) come from the engine's priced host, computed
once per host. A v1 observation decodes with those fields None.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
from gymnasium import spaces

from esper_env.blueprints import BLUEPRINTS
from esper_env.hosts import count_parameters
from esper_env.lifecycle import LIVE_STAGES, BlendStyle, Op, Stage
from esper_env.spaces import observation_features
from esper_env.versions import CURRENT_VERSION, dynamics

if TYPE_CHECKING:
    from esper_env.engine import TrainingEngine
    from esper_env.env import EsperEnv
    from esper_env.hosts import HostNetwork

__all__ = [
    "ObservationContext", "ObservationLayout", "ObservationView", "SlotView", "encode_observation", "feature_table",
]  # fmt: skip


@dataclass(frozen=True)
class ObservationContext:
    """The task's context that the observation shows from env v2 on (the ``context/*`` features).

    The env builds one for every observation from its current settings, so a setting drawn per
    episode shows up at the next reset.
    """

    #: The score's price per doubling of the network (``RewardConfig.rent_weight``).
    rent_weight: float
    #: The host's learning rate (``EnvironmentConfig.learning_rate``).
    learning_rate: float
    #: Training images per epoch.
    train_images: int
    num_classes: int

    @classmethod
    def of(cls, env: EsperEnv) -> ObservationContext:
        """``env``'s context now: its reward's rent (on the fast tier, the instance's, which is also
        the benchmark score's price), its preset's learning rate, its data."""
        return cls(
            rent_weight=env.reward_config.rent_weight,
            learning_rate=env.config.learning_rate,
            train_images=len(env.data.train_y),
            num_classes=env.data.num_classes,
        )

    def features(self) -> dict[str, float]:
        """The four global ``context/*`` features, scaled to [0, 1] (clipped)."""
        return {
            "context/rent": _unit(self.rent_weight * 10),
            "context/log_lr": _unit((math.log10(self.learning_rate) + 4) / 4)
            if self.learning_rate > 0
            else 0.0,
            "context/train_images": _unit(math.log2(self.train_images) / 16)
            if self.train_images > 0
            else 0.0,
            "context/num_classes": _unit(math.log10(self.num_classes) / 2) if self.num_classes > 0 else 0.0,
        }


def _unit(x: float) -> float:
    return min(max(float(x), 0.0), 1.0)


#: host -> ``(host_width, param_share)`` per slot point: fixed for a host (growth never changes
#: its modules), computed once per host (one per episode), not per step.
_SLOT_CONTEXT: weakref.WeakKeyDictionary[HostNetwork, tuple[tuple[float, float], ...]] = (
    weakref.WeakKeyDictionary()
)


def slot_context(host: HostNetwork) -> tuple[tuple[float, float], ...]:
    """``(host_width, param_share)`` of every slot point of ``host``, as the observation shows them:
    ``log2(channels) / 10`` and the parameters of the segments before and after the slot (the
    ones a widening seed there widens) over all of the host's, both clipped to [0, 1]."""
    cached = _SLOT_CONTEXT.get(host)
    if cached is None:
        sizes = [count_parameters(seg) for seg in host.segments]
        total = max(count_parameters(host), 1)
        cached = tuple(
            (_unit(math.log2(c) / 10), _unit((sizes[k] + sizes[k + 1]) / total))
            for k, c in enumerate(host.slot_channels)
        )
        _SLOT_CONTEXT[host] = cached
    return cached


def encode_observation(
    engine: TrainingEngine,
    space: spaces.Box,
    schema: dict[str, slice],
    *,
    max_epochs: int,
    base_host_params: int,
    last_action_valid: bool,
    last_op: Op,
    context: ObservationContext | None = None,
) -> np.ndarray:
    """The observation of ``engine``'s state, each feature written at ``schema[name]``.

    Epoch counts are divided by ``max_epochs`` and parameter counts, as the engine prices them
    (:class:`esper_env.pricing.Pricing`), by ``base_host_params``; NaN becomes -1 and the vector is
    clipped to ``space``'s bounds. A schema with the ``context/*`` features (env v2 on) needs
    ``context``; the per-slot ones are read from ``engine.pricing.priced_host``.
    """
    e, h, T = engine, engine.history, max_epochs
    base = base_host_params
    obs = np.zeros(space.shape, dtype=np.float32)

    def put(name: str, value: object) -> None:
        obs[schema[name]] = value

    def last(xs: list[float]) -> float:
        return xs[-1] if xs else -1.0

    def hist5(xs: list[float]) -> list[float]:
        tail = xs[-5:]
        return [-1.0] * (5 - len(tail)) + tail

    def one_hot(n: int, i: int | None) -> np.ndarray:
        v = np.zeros(n)
        if i is not None:
            v[i] = 1.0
        return v

    fossil = sum(e.pricing.seed(s) for s in e.slots if s.stage == Stage.FOSSILIZED)
    put("epoch", h.epoch / T)
    put("budget_remaining", max(T - h.epoch, 0) / T)
    put("val_accuracy", last(h.val_accuracy))
    put("val_loss", last(h.val_loss))
    put("train_accuracy", last(h.train_accuracy))
    put("train_loss", last(h.train_loss))
    put("accuracy_delta", h.val_accuracy[-1] - h.val_accuracy[-2] if len(h.val_accuracy) >= 2 else -1.0)
    put("loss_delta", h.val_loss[-1] - h.val_loss[-2] if len(h.val_loss) >= 2 else -1.0)
    put("plateau_epochs", min(h.plateau_epochs / T, 1.0))
    put("best_val_accuracy", -1.0 if h.best_val_accuracy is None else h.best_val_accuracy)
    put("best_val_loss", -1.0 if h.best_val_loss is None else h.best_val_loss)
    put("accuracy_history_5", hist5(h.val_accuracy))
    put("loss_history_5", hist5(h.val_loss))
    put("has_active_seed", float(any(s.stage in LIVE_STAGES for s in e.slots)))
    put("available_slots", sum(s.stage == Stage.DORMANT for s in e.slots) / len(e.slots))
    put("seed_params", e.seed_parameters() / base)
    put("fossil_params", fossil / base)
    put("last_action_success", float(last_action_valid))
    put("last_op", one_hot(len(Op), last_op))
    for k, s in enumerate(e.slots):
        st, p = s.state, f"slot{k}/"
        has_blueprint = st.blueprint is not None
        put(p + "stage", one_hot(len(Stage), st.stage))
        put(p + "alpha", st.alpha)
        put(p + "alpha_target", st.alpha_target if s.seed is not None else 0.0)
        put(p + "epochs_in_stage", min(st.epochs_in_stage / T, 1.0))
        hot = schema[p + "blueprint"]  # as many values as the env version has blueprints
        put(
            p + "blueprint",
            one_hot(hot.stop - hot.start, BLUEPRINTS.index(st.blueprint) if has_blueprint else None),
        )
        put(p + "style", one_hot(len(BlendStyle), st.style if has_blueprint else None))
        put(p + "contribution", -1.0 if st.contribution is None else float(np.clip(st.contribution, -1, 1)))
        put(p + "contribution_measured", float(st.contribution is not None))
        put(p + "seed_params", e.pricing.seed(s) / base)
        put(p + "embargo", st.embargo_remaining / max(e.gates.embargo_epochs, 1))
    if "context/rent" in schema:
        if context is None:
            raise ValueError("this observation schema has the context/* features: pass an ObservationContext")
        for name, value in context.features().items():
            put(name, value)
        per_slot = slot_context(e.pricing.priced_host)
        for k in range(len(e.slots)):
            put(f"context/slot{k}/host_width", per_slot[k][0])
            put(f"context/slot{k}/param_share", per_slot[k][1])
    obs = np.nan_to_num(obs, nan=-1.0, posinf=1e6, neginf=-1e6)
    return np.clip(obs, space.low, space.high).astype(np.float32)


class ObservationLayout(Protocol):
    """What decoding needs: the schema, ``max_epochs`` and ``num_slots`` (a ``PolicySpec`` has them)."""

    @property
    def schema(self) -> dict[str, slice]: ...
    @property
    def max_epochs(self) -> int: ...
    @property
    def num_slots(self) -> int: ...
    @property
    def obs_size(self) -> int: ...


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
    #: The host's channels at this slot (env v2 on; None in an older version's observation).
    host_width: int | None = None
    #: Parameters of the host blocks before and after the slot / host parameters (env v2 on).
    param_share: float | None = None

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
    #: The task's context (env v2 on; None in an older version's observation), in its own units:
    #: the score's price per doubling, the host's learning rate, training images, classes. Values
    #: beyond the features' [0, 1] range read back as the range's end.
    rent_weight: float | None = None
    learning_rate: float | None = None
    train_images: int | None = None
    num_classes: int | None = None

    @property
    def has_context(self) -> bool:
        """Whether the observation carries the task's context (env v2 on)."""
        return self.rent_weight is not None

    @classmethod
    def decode(cls, obs: np.ndarray, spec: ObservationLayout) -> ObservationView:
        """Decode one observation row laid out as ``spec`` says (a ``PolicySpec`` is one)."""
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
            return round(val(name) * T)

        epoch = epochs("epoch")
        has_context = "context/rent" in sc
        slots = []
        for k in range(spec.num_slots):
            p, c = f"slot{k}/", f"context/slot{k}/"
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
                    host_width=round(2 ** (10 * val(c + "host_width"))) if has_context else None,
                    param_share=val(c + "param_share") if has_context else None,
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
            available_slots=round(val("available_slots") * spec.num_slots),
            seed_params=val("seed_params"),
            fossil_params=val("fossil_params"),
            last_action_success=val("last_action_success") > 0.5,
            last_op=Op(int(np.argmax(obs[sc["last_op"]]))),
            slots=tuple(slots),
            rent_weight=val("context/rent") / 10 if has_context else None,
            learning_rate=10 ** (4 * val("context/log_lr") - 4) if has_context else None,
            train_images=round(2 ** (16 * val("context/train_images"))) if has_context else None,
            num_classes=round(10 ** (2 * val("context/num_classes"))) if has_context else None,
        )

    def live_seeds(self) -> list[SlotView]:
        return [s for s in self.slots if s.live]

    def dormant_slots(self) -> list[SlotView]:
        return [s for s in self.slots if s.stage == Stage.DORMANT]


def feature_table(num_slots: int = 3, context: bool | None = None) -> str:
    """The observation's features as a Markdown table (slot 0 in full, the other slots summarised).

    ``context``: whether to list the ``context/*`` features; default: as the current env version.
    """
    if context is None:
        context = dynamics(CURRENT_VERSION).context
    feats = observation_features(num_slots, context=context)
    per_slot = sum(f.size for f in feats if f.name.startswith("slot0/"))
    rows = ["| index | name | min | max | description |", "|---|---|---|---|---|"]
    start = 0
    for i, f in enumerate(feats):
        if f.name.startswith("slot") and not f.name.startswith("slot0/"):
            start += f.size
            last_of_block = i + 1 == len(feats) or not feats[i + 1].name.startswith("slot")
            if last_of_block:
                rows.append(
                    f"| ... | `slotK/*`, K = 1..{num_slots - 1} | | | the same {per_slot} features, "
                    f"offset by {per_slot} x K |"
                )
            continue
        idx = str(start) if f.size == 1 else f"{start}-{start + f.size - 1}"
        rows.append(f"| {idx} | `{f.name}` | {f.low:g} | {f.high:g} | {f.description} |")
        start += f.size
    rows.append(f"\nTotal: {start} features with {num_slots} slots.")
    return "\n".join(rows)
