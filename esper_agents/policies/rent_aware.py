"""``rent-aware``, ``lr-aware`` and ``curve-aware``: the hand-written rules measured for the fast tier's instance distributions.

``rent-aware`` is the rule for ``bottlenecks``; ``lr-aware`` (:class:`LrAwarePolicy`) the one for
``optimizers``, where the price is fixed and what pays depends on how fast the host learns;
``curve-aware`` (:class:`CurveAwarePolicy`) adds to ``lr-aware`` what the learning curve tells
about the optimizer the observation does not show.

It reads one feature that env v2's observation adds, the task's rent (``context/rent``):

* rent below ``MAX_RENT`` (10 points per doubling of the network): germinate ``widen_4x`` in the
  first block at once, move it through its lifecycle as fast as the gates allow and fossilize it;
* otherwise: never grow.

On the clusters task the first block is where width pays (it carves the blobs; widening a narrow
later block barely helps), so "widen the first block unless growth is expensive" beat the other
rules tried on the fast tier's *training* instances (docs/FAST_TIER.md): waiting a few epochs
to read the learning curve first, and widening the narrowest block (the rule ``bottleneck`` of
the first build). On an observation without context (v1) the rent is the default (3 points).
"""

from __future__ import annotations

import numpy as np

from esper_agents.policies.base import Policy
from esper_agents.policies.scores import ADVANCE_SCORE, DECISIVE_SCORE, GERMINATE_SCORE, ScoreBoard
from esper_env.lifecycle import Op, Stage
from esper_env.observation import ObservationView
from esper_env.rewards import DEFAULT_RENT_WEIGHT

__all__ = [
    "BLUEPRINT",
    "CURVE_EPOCH",
    "CURVE_MAX_ACCURACY",
    "CURVE_SLOT",
    "MAX_FIRST_WIDTH",
    "MAX_LEARNING_RATE",
    "MAX_RENT",
    "CurveAwarePolicy",
    "LrAwarePolicy",
    "RentAwarePolicy",
    "slow_rate",
]

MAX_RENT = 0.1
BLUEPRINT = "widen_4x"
#: ``lr-aware``'s thresholds, fitted on the ``optimizers`` distribution's 40 first training
#: instances by ``benchmarks/micro_tier.py headroom``'s context rule (docs/FAST_TIER.md).
MAX_LEARNING_RATE = 0.03
MAX_FIRST_WIDTH = 16
#: ``curve-aware``'s reading of the curve, fitted on the same 40 training instances by
#: ``benchmarks/micro_tier.py headroom``'s curve rule (docs/FAST_TIER.md): after ``CURVE_EPOCH``
#: epochs, a validation accuracy below ``CURVE_MAX_ACCURACY`` (the slow SGD hosts) widens block
#: ``CURVE_SLOT``.
CURVE_EPOCH = 2
CURVE_MAX_ACCURACY = 0.15
CURVE_SLOT = 2


def slow_rate(view: ObservationView) -> bool:
    """The host's learning rate is at most ``MAX_LEARNING_RATE`` (False without env v2's context)."""
    rate = view.learning_rate
    return rate is not None and rate <= MAX_LEARNING_RATE * (1 + 1e-6)  # decoded from a float32 feature


class RentAwarePolicy(Policy):
    """Widen the first block once, at once, unless the rent is at least ``MAX_RENT``."""

    def grows(self, view: ObservationView) -> bool:
        """Whether to widen the first block (asked until a seed exists)."""
        rent = DEFAULT_RENT_WEIGHT if view.rent_weight is None else view.rent_weight
        return rent < MAX_RENT

    def scores(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        view = self.view(obs)
        board = ScoreBoard(self.spec)
        for slot in view.live_seeds():
            board.set(Op.ADVANCE, slot.index, ADVANCE_SCORE)
            if slot.stage == Stage.HOLDING:
                board.set(Op.FOSSILIZE, slot.index, DECISIVE_SCORE)
        grown = any(s.stage != Stage.DORMANT for s in view.slots)
        slot = None if grown else self.growth_slot(view)
        if slot is not None:
            board.set_germinate([slot], [BLUEPRINT], GERMINATE_SCORE)
        return board.scores

    def growth_slot(self, view: ObservationView) -> int | None:
        """The block to widen now (asked until a seed exists), or None to wait."""
        return 0 if self.grows(view) else None


class LrAwarePolicy(RentAwarePolicy):
    """Widen the first block once, at once, where the host learns slowly (learning rate at most
    ``MAX_LEARNING_RATE``) and that block is narrow (at most ``MAX_FIRST_WIDTH`` channels), unless
    the rent is at least ``MAX_RENT``. It reads the context of env v2's observation; without it
    (v1) it never grows. The optimizer, which decides as much on ``optimizers``, is not observed."""

    def grows(self, view: ObservationView) -> bool:
        width = view.slots[0].host_width
        return width is not None and super().grows(view) and slow_rate(view) and width <= MAX_FIRST_WIDTH


class CurveAwarePolicy(LrAwarePolicy):
    """``lr-aware``, and where it does not grow, widen the last block after ``CURVE_EPOCH`` epochs
    if the validation accuracy then is below ``CURVE_MAX_ACCURACY`` and the learning rate at most
    ``MAX_LEARNING_RATE`` (unless the rent is at least ``MAX_RENT``). On ``optimizers`` those are
    mostly SGD hosts at a slow learning rate whose first block is too wide for ``lr-aware``: the
    curve tells them from the Adam hosts at the same rate, which learn several times faster."""

    def growth_slot(self, view: ObservationView) -> int | None:
        if self.grows(view):
            return 0
        slow = (
            view.epoch == CURVE_EPOCH
            and view.val_accuracy is not None
            and view.val_accuracy < CURVE_MAX_ACCURACY
            and slow_rate(view)
        )
        return CURVE_SLOT if slow and RentAwarePolicy.grows(self, view) else None
