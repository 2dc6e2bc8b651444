"""``bottleneck``: a hand-written rule for a distribution of task instances (issue 22's baseline).

It reads what env v2's observation adds (the task's context: ``rent_weight``, per-slot
``host_width``) and the learning curve:

1. Watch the first ``OBSERVE_EPOCHS`` epochs without growing.
2. Then, once: if the validation accuracy is still below ``HARD_ACCURACY`` (the task is hard for
   this host) and the rent is below ``MAX_RENT`` (growth is affordable), germinate ``widen_4x``
   in the narrowest slot (the first one when all are equally wide); otherwise never grow.
3. Move the seed through its lifecycle as fast as the gates allow and fossilize it.

On an observation without context (v1) it acts as if every slot were equally wide and the rent
were the default. Thresholds were chosen on the fast tier's *training* instances
(``benchmarks/micro_tier.py headroom``; docs/FAST_TIER.md), never on held-out ones.
"""

from __future__ import annotations

import numpy as np

from esper_agents.policies.base import Policy
from esper_agents.policies.scores import ADVANCE_SCORE, DECISIVE_SCORE, GERMINATE_SCORE, ScoreBoard
from esper_env.lifecycle import Op, Stage
from esper_env.rewards import DEFAULT_RENT_WEIGHT

__all__ = ["HARD_ACCURACY", "MAX_RENT", "OBSERVE_EPOCHS", "BottleneckPolicy"]

OBSERVE_EPOCHS = 5
HARD_ACCURACY = 0.8
MAX_RENT = 0.1
BLUEPRINT = "widen_4x"


class BottleneckPolicy(Policy):
    """Widen the narrowest block once, if the task is hard for the host and growth is affordable."""

    def scores(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        view = self.view(obs)
        board = ScoreBoard(self.spec)
        for slot in view.live_seeds():
            board.set(Op.ADVANCE, slot.index, ADVANCE_SCORE)
            if slot.stage == Stage.HOLDING:
                board.set(Op.FOSSILIZE, slot.index, DECISIVE_SCORE)
        grown = any(s.stage != Stage.DORMANT for s in view.slots)
        rent = DEFAULT_RENT_WEIGHT if view.rent_weight is None else view.rent_weight
        hard = view.val_accuracy is not None and view.val_accuracy < HARD_ACCURACY
        if not grown and view.epoch >= OBSERVE_EPOCHS and hard and rent < MAX_RENT:
            widths = [s.host_width or 0 for s in view.slots]
            narrowest = min(range(len(widths)), key=lambda k: (widths[k], k))
            board.set_germinate([narrowest], [BLUEPRINT], GERMINATE_SCORE)
        return board.scores
