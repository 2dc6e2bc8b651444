"""``rent-aware``: the best hand-written rule measured for the fast tier's instance distribution.

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
from esper_env.rewards import DEFAULT_RENT_WEIGHT

__all__ = ["BLUEPRINT", "MAX_RENT", "RentAwarePolicy"]

MAX_RENT = 0.1
BLUEPRINT = "widen_4x"


class RentAwarePolicy(Policy):
    """Widen the first block once, at once, unless the rent is at least ``MAX_RENT``."""

    def scores(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        view = self.view(obs)
        board = ScoreBoard(self.spec)
        for slot in view.live_seeds():
            board.set(Op.ADVANCE, slot.index, ADVANCE_SCORE)
            if slot.stage == Stage.HOLDING:
                board.set(Op.FOSSILIZE, slot.index, DECISIVE_SCORE)
        grown = any(s.stage != Stage.DORMANT for s in view.slots)
        rent = DEFAULT_RENT_WEIGHT if view.rent_weight is None else view.rent_weight
        if not grown and rent < MAX_RENT:
            board.set_germinate([0], [BLUEPRINT], GERMINATE_SCORE)
        return board.scores
