"""Contrastive behavior policies (the original design): random, anti-heuristic, periodic.

They give the dataset a floor for value estimation: what uninformed, wrong-headed or blind
growth leads to.

* ``random``: uniform over the legal compact actions (epsilon = 1 in the original design's sense; its greedy
  distribution is already uniform, so any epsilon gives the same behavior).
* ``anti-heuristic`` (called "anti-kasmina" in the original design): the baseline's judgements inverted. It
  germinates while the host is still improving (and waits when the baseline would germinate, on
  a plateau), with the least preferred blueprint; it prunes blending seeds that clearly help,
  fossilizes HOLDING seeds whose contribution is <= 0 and prunes those that help, and never culls
  a stagnating seed. It still advances seeds through the lifecycle so that those inverted
  decisions are reached.
* ``periodic``: GERMINATE every ``germinate_every`` epochs whatever the state (first DORMANT
  slot, blueprints in turn); otherwise advance any seed that can move and fossilize every HOLDING
  seed as soon as it may, without looking at its contribution. It never prunes.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from esper_agents.policies.base import Policy
from esper_agents.policies.config import DEFAULT_BLUEPRINT_ORDER, BehaviorPolicyConfig
from esper_agents.policies.heuristic import THRESHOLD_VARIANTS, holding_measured
from esper_agents.policies.scores import (
    ADVANCE_SCORE,
    DECISIVE_SCORE,
    GERMINATE_SCORE,
    REVERSE_SCORE,
    ScoreBoard,
)
from esper_env.lifecycle import Op, Stage

__all__ = ["CONTRASTIVE_VARIANTS", "AntiHeuristicPolicy", "PeriodicPolicy", "RandomPolicy"]


class RandomPolicy(Policy):
    """Uniform over the legal actions: every score is equal."""

    def scores(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.zeros(self.spec.num_actions, dtype=np.float64)


class AntiHeuristicPolicy(Policy):
    """The baseline heuristic's judgements, inverted (see the module docstring)."""

    def scores(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        view = self.view(obs)
        mask = np.asarray(mask, dtype=bool)
        c = self.config
        board = ScoreBoard(self.spec)
        for slot in view.live_seeds():
            k = slot.index
            if holding_measured(slot, mask, self.spec):
                assert slot.contribution is not None
                helps = slot.contribution > 0
                board.set(Op.FOSSILIZE, k, REVERSE_SCORE if helps else DECISIVE_SCORE)
                board.set(Op.PRUNE, k, DECISIVE_SCORE if helps else REVERSE_SCORE)
            elif slot.stage == Stage.BLENDING and (slot.contribution or 0.0) > c.blend_prune_margin:
                board.set(Op.PRUNE, k, DECISIVE_SCORE)
            elif slot.stage in (Stage.GERMINATED, Stage.TRAINING, Stage.BLENDING):
                board.set(Op.ADVANCE, k, ADVANCE_SCORE)
        improving = view.epoch >= 1 and view.plateau_epochs == 0
        dormant = [s.index for s in view.dormant_slots()]
        if improving and dormant and len(view.live_seeds()) < c.max_live_seeds:
            board.set_germinate(dormant, tuple(reversed(DEFAULT_BLUEPRINT_ORDER)), GERMINATE_SCORE)
        return board.scores


class PeriodicPolicy(Policy):
    """GERMINATE on a fixed schedule; otherwise move every seed along (see the module docstring)."""

    def scores(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        view = self.view(obs)
        mask = np.asarray(mask, dtype=bool)
        n = self.config.germinate_every
        board = ScoreBoard(self.spec)
        for slot in view.live_seeds():
            k = slot.index
            if slot.stage == Stage.HOLDING:
                board.set(Op.FOSSILIZE, k, ADVANCE_SCORE)
            else:
                board.set(Op.ADVANCE, k, ADVANCE_SCORE)
        dormant = [s.index for s in view.dormant_slots()]
        if view.epoch > 0 and view.epoch % n == 0 and dormant:
            turn = (view.epoch // n - 1) % len(DEFAULT_BLUEPRINT_ORDER)
            order = DEFAULT_BLUEPRINT_ORDER[turn:] + DEFAULT_BLUEPRINT_ORDER[:turn]
            # On its epochs the schedule outranks moving seeds along.
            board.set_germinate(dormant, order, DECISIVE_SCORE)
        return board.scores


_BASE = THRESHOLD_VARIANTS["baseline"]

#: The three contrastive policies of the original design (anti-heuristic shares the baseline's thresholds).
CONTRASTIVE_VARIANTS: Mapping[str, tuple[type[Policy], BehaviorPolicyConfig]] = MappingProxyType(
    {
        "random": (RandomPolicy, BehaviorPolicyConfig("random", epsilon=1.0)),
        "anti-heuristic": (
            AntiHeuristicPolicy,
            BehaviorPolicyConfig(
                "anti-heuristic",
                min_epochs_before_germinate=_BASE.min_epochs_before_germinate,
                plateau_epochs_to_germinate=_BASE.plateau_epochs_to_germinate,
                cull_after_epochs_without_improvement=_BASE.cull_after_epochs_without_improvement,
            ),
        ),
        "periodic": (PeriodicPolicy, BehaviorPolicyConfig("periodic", germinate_every=5)),
    }
)
