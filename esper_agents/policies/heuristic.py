"""The threshold heuristic (called "Kasmina" in the original design) and its 8 variants.

The rules, for one observation (each action gets a score; see :mod:`esper_agents.policies.base`
for the scale):

* GERMINATE into the first DORMANT slot, with the most preferred blueprint, when
  ``epoch >= min_epochs_before_germinate``, the trigger holds, fewer than ``max_live_seeds``
  seeds are alive, the network is under its size budget (``max_size_ratio``) and the remaining
  epochs can hold a whole lifecycle (germinate, train, blend, hold, fossilize). The original design's
  trigger (``"plateau"``): validation accuracy has not improved for
  ``plateau_epochs_to_germinate`` epochs. The ``"underfit"`` trigger of the ``capacity`` variant:
  training accuracy is at most ``underfit_gap`` above validation accuracy, i.e. the host lacks
  capacity, which is when widening it pays (``benchmarks/growth_headroom.py``).
* ADVANCE a GERMINATED seed at once; ADVANCE TRAINING -> BLENDING and BLENDING -> HOLDING as soon
  as the gate allows (the mask says when).
* In HOLDING, once a contribution has been measured there (FOSSILIZE is legal): FOSSILIZE if the
  contribution is > 0, PRUNE if it is <= 0.
* PRUNE a BLENDING seed whose measured contribution is below ``-blend_prune_margin``, and a
  blended seed (BLENDING or HOLDING) whose host has not improved for
  ``cull_after_epochs_without_improvement`` epochs since the seed was germinated, unless its
  last measured contribution is positive.
* Otherwise WAIT.

Two choices differ from the original controller, on purpose. A seed in TRAINING is never culled
for a host plateau: it learns on detached features, so the host's accuracy cannot reflect it (the
original culled such seeds before they could ever blend, which is one reason it never fossilized).
And the measured contribution overrides the plateau clock: a seed that measurably helps is kept.

The observation has no "epochs since germination" feature, so the cull clock uses a lower bound:
epochs in the current stage plus the shortest possible time in the earlier stages.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from esper_agents.policies.base import Policy
from esper_agents.policies.config import (
    DEFAULT_BLUEPRINT_ORDER,
    REAL_BLUEPRINTS,
    ROTATE,
    BehaviorPolicyConfig,
)
from esper_agents.policies.observation import PolicySpec
from esper_agents.policies.scores import (
    ADVANCE_SCORE,
    DECISIVE_SCORE,
    GERMINATE_SCORE,
    REVERSE_SCORE,
    ScoreBoard,
)
from esper_env.lifecycle import TEMPO_EPOCHS, Gates, Op, Stage, Tempo
from esper_env.observation import ObservationView, SlotView

__all__ = [
    "DEFAULT_HEURISTIC",
    "GROWTH_VARIANTS",
    "LIFECYCLE_STEPS",
    "THRESHOLD_VARIANTS",
    "BehaviorPolicyConfig",
    "ThresholdPolicy",
    "blueprint_order",
    "seed_age_lower_bound",
]

_GATES = Gates()
#: Steps from GERMINATE to FOSSILIZE inclusive with the compact action set (STANDARD tempo):
#: 1 GERMINATED + training gate + blend epochs + holding gate + the FOSSILIZE step.
LIFECYCLE_STEPS = (
    1 + _GATES.min_training_epochs + (TEMPO_EPOCHS[Tempo.STANDARD] - 1) + _GATES.min_holding_epochs + 1
)


def blueprint_order(config: BehaviorPolicyConfig, view: ObservationView) -> list[str]:
    """All real blueprints, most preferred first, for a GERMINATE decided at ``view``.

    ``"rotate"`` starts the canonical order at ``epoch mod (number of real blueprints)`` and moves blueprints already in
    use in another slot (live or fossilized) to the back, so one episode's seeds differ and the
    starting blueprint cycles with the epoch across episodes. The policy stays a function of the
    observation alone.
    """
    pref = config.blueprint_preference
    if pref is None:
        return list(DEFAULT_BLUEPRINT_ORDER)
    if pref == ROTATE:
        k = view.epoch % len(REAL_BLUEPRINTS)
        order = list(REAL_BLUEPRINTS[k:] + REAL_BLUEPRINTS[:k])
        in_use = {s.blueprint for s in view.slots if s.blueprint is not None}
        return [b for b in order if b not in in_use] + [b for b in order if b in in_use]
    listed = list(pref)
    return listed + [b for b in DEFAULT_BLUEPRINT_ORDER if b not in listed]


def seed_age_lower_bound(slot: SlotView) -> int:
    """Fewest epochs since the seed in ``slot`` was germinated, given its stage and time in it."""
    before = {
        Stage.GERMINATED: 0,
        Stage.TRAINING: 1,
        Stage.BLENDING: 1 + _GATES.min_training_epochs,
        Stage.HOLDING: 1 + _GATES.min_training_epochs + TEMPO_EPOCHS[Tempo.FAST] - 1,
    }
    return before.get(slot.stage, 0) + slot.epochs_in_stage


def holding_measured(slot: SlotView, mask: np.ndarray, spec: PolicySpec) -> bool:
    """A HOLDING seed has a contribution measured in HOLDING exactly when FOSSILIZE is legal."""
    return slot.stage == Stage.HOLDING and bool(mask[spec.index_of(Op.FOSSILIZE, slot.index)])


class ThresholdPolicy(Policy):
    """The threshold heuristic; its variants differ only in their :class:`BehaviorPolicyConfig`."""

    def scores(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        view = self.view(obs)
        mask = np.asarray(mask, dtype=bool)
        board = ScoreBoard(self.spec)
        for slot in view.live_seeds():
            self._score_seed(board, view, slot, mask)
        if self.wants_to_germinate(view):
            slots = [s.index for s in view.dormant_slots()]
            board.set_germinate(slots, blueprint_order(self.config, view), GERMINATE_SCORE)
        return board.scores

    # ------------------------------------------------------------------ rules

    def triggered(self, view: ObservationView) -> bool:
        c = self.config
        if c.germinate_trigger == "underfit":
            if view.train_accuracy is None or view.val_accuracy is None:
                return False
            return view.train_accuracy - view.val_accuracy <= c.underfit_gap
        return view.plateau_epochs >= c.plateau_epochs_to_germinate

    def under_budget(self, view: ObservationView) -> bool:
        budget = self.config.max_size_ratio
        return budget is None or 1.0 + view.seed_params + view.fossil_params < budget

    def wants_to_germinate(self, view: ObservationView) -> bool:
        c = self.config
        return (
            view.epoch >= c.min_epochs_before_germinate
            and self.triggered(view)
            and self.under_budget(view)
            and len(view.live_seeds()) < c.max_live_seeds
            and bool(view.dormant_slots())
            and view.max_epochs - view.epoch >= LIFECYCLE_STEPS
        )

    def is_stale(self, view: ObservationView, slot: SlotView) -> bool:
        """The host has not improved for the cull period since this blended seed was germinated."""
        if slot.stage not in (Stage.BLENDING, Stage.HOLDING):
            return False
        if slot.contribution is not None and slot.contribution > 0:
            return False
        age = seed_age_lower_bound(slot)
        return age >= self.config.cull_after_epochs_without_improvement and view.plateau_epochs >= age

    def is_harmful_while_blending(self, slot: SlotView) -> bool:
        return (
            slot.stage == Stage.BLENDING
            and slot.contribution is not None
            and slot.contribution < -self.config.blend_prune_margin
        )

    def _score_seed(self, board: ScoreBoard, view: ObservationView, slot: SlotView, mask: np.ndarray) -> None:
        k = slot.index
        if holding_measured(slot, mask, self.spec):
            assert slot.contribution is not None
            helps = slot.contribution > 0
            board.set(Op.FOSSILIZE, k, DECISIVE_SCORE if helps else REVERSE_SCORE)
            board.set(Op.PRUNE, k, REVERSE_SCORE if helps else DECISIVE_SCORE)
            return
        if self.is_harmful_while_blending(slot) or self.is_stale(view, slot):
            board.set(Op.PRUNE, k, DECISIVE_SCORE)
            return
        if slot.stage in (Stage.GERMINATED, Stage.TRAINING, Stage.BLENDING):
            board.set(Op.ADVANCE, k, ADVANCE_SCORE)


def _variant(
    policy_id: str, min_epochs: int, plateau: int, cull: int, blueprints: str | None = None
) -> BehaviorPolicyConfig:
    return BehaviorPolicyConfig(
        policy_id=policy_id,
        min_epochs_before_germinate=min_epochs,
        plateau_epochs_to_germinate=plateau,
        cull_after_epochs_without_improvement=cull,
        blueprint_preference=blueprints,
    )


#: The original design's table of threshold variants.
THRESHOLD_VARIANTS: Mapping[str, BehaviorPolicyConfig] = MappingProxyType(
    {
        c.policy_id: c
        for c in (
            _variant("baseline", 5, 3, 5),
            _variant("early-intervener", 3, 2, 5),
            _variant("late-intervener", 8, 5, 5),
            _variant("quick-culler", 5, 3, 3),
            _variant("patient-culler", 5, 3, 8),
            _variant("blueprint-explorer", 5, 3, 5, ROTATE),
            _variant("aggressive", 3, 2, 3),
            _variant("conservative", 8, 5, 8),
        )
    }
)


#: Variants beyond the original design's table. ``capacity``: germinate as soon as the host underfits (from
#: epoch 1), preferring the widening blueprints, until the network is 1.5x the base host. On the
#: narrow ``impaired`` host the original design's plateau trigger never fires (it is still climbing at epoch
#: 25), while growth pays most early; the budget stops growth where the benchmark score's rent
#: starts to outweigh it.
GROWTH_VARIANTS: Mapping[str, BehaviorPolicyConfig] = MappingProxyType(
    {
        "capacity": BehaviorPolicyConfig(
            policy_id="capacity",
            min_epochs_before_germinate=1,
            germinate_trigger="underfit",
            max_size_ratio=1.5,
            blueprint_preference=("widen_4x", "widen_2x", "conv_wide"),
        )
    }
)

#: The heuristic the benchmarks compare against (``baseline`` is the original design's rule).
DEFAULT_HEURISTIC = "capacity"
