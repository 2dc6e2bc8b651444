"""Scores of the compact actions: the scale every rule-based policy shares.

Scores are log-preferences: at temperature 1 an action scoring d above another is e^d times as
likely. The scale is chosen so that at temperature 1 the rules' own choice carries about 90-99%
of the greedy mass and the rest goes, in order, to the alternatives the rules rank next;
epsilon-greedy then adds the uniform exploration. Families of interchangeable actions (GERMINATE
over slots x blueprints, SET_ALPHA_TARGET over targets) are ranked inside the family by
:data:`RANK_STEP`, so a family weighs about as much as one action of its top score: 36 legal
GERMINATE actions do not drown WAIT.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from esper_agents.policies.config import DEFAULT_BLUEPRINT_ORDER
from esper_agents.policies.observation import PolicySpec
from esper_env.lifecycle import ALPHA_TARGETS, Op

__all__ = [
    "ADVANCE_SCORE",
    "AVOID_SCORE",
    "DECISIVE_SCORE",
    "GERMINATE_SCORE",
    "RANK_STEP",
    "REVERSE_SCORE",
    "UNUSED_SCORE",
    "WAIT_SCORE",
    "ScoreBoard",
]

WAIT_SCORE = 0.0
#: GERMINATE when the rules call for growth.
GERMINATE_SCORE = 4.0
#: ADVANCE a seed whose gate is open.
ADVANCE_SCORE = 5.0
#: FOSSILIZE a seed that helps, PRUNE one that hurts: outranks everything else.
DECISIVE_SCORE = 6.0
#: Legal but against the rules (GERMINATE off a plateau, PRUNE a healthy seed...).
AVOID_SCORE = -6.0
#: SET_ALPHA_TARGET: the rule-based policies keep the default blend schedule.
UNUSED_SCORE = -7.0
#: The exact opposite of a decisive call (FOSSILIZE a seed that hurts, PRUNE one that helps).
REVERSE_SCORE = -9.0
#: Score drop per rank inside a family of alternatives (e^-3 ~ 0.05).
RANK_STEP = 3.0


class ScoreBoard:
    """Scores of every compact action, set by (op, slot) or by family.

    Starts from WAIT at :data:`WAIT_SCORE` and every other action at :data:`AVOID_SCORE`, with
    the GERMINATE family ranked (slots in index order, blueprints in the default order) and
    SET_ALPHA_TARGET at :data:`UNUSED_SCORE`, ranked by target, highest first.
    """

    def __init__(self, spec: PolicySpec) -> None:
        self.spec = spec
        self.scores = _default_scores(spec.num_slots).copy()

    def set(self, op: Op | int, slot: int, score: float) -> None:
        self.scores[self.spec.index_of(op, slot)] = score

    def set_germinate(self, slots: Sequence[int], blueprints: Sequence[str], score: float) -> None:
        """GERMINATE family, ``slots`` and ``blueprints`` most preferred first: the top pair gets
        ``score`` and each rank down in either costs :data:`RANK_STEP`. Unlisted pairs keep theirs."""
        _rank_germinate(self.spec, self.scores, slots, blueprints, score)


def _rank_germinate(
    spec: PolicySpec, scores: np.ndarray, slots: Sequence[int], blueprints: Sequence[str], score: float
) -> None:
    for rs, slot in enumerate(slots):
        for rb, bp in enumerate(blueprints):
            scores[spec.index_of(Op.GERMINATE, slot, blueprint=bp)] = score - RANK_STEP * (rs + rb)


@functools.lru_cache(maxsize=8)
def _default_scores(num_slots: int) -> np.ndarray:
    """The starting scores; they depend only on the action table, a function of ``num_slots``."""
    spec = PolicySpec.from_args(num_slots=num_slots)
    scores = np.full(spec.num_actions, AVOID_SCORE, dtype=np.float64)
    scores[spec.action_ops == Op.WAIT] = WAIT_SCORE
    for slot in range(num_slots):
        for rank, target in enumerate(reversed(range(len(ALPHA_TARGETS)))):
            index = spec.index_of(Op.SET_ALPHA_TARGET, slot, alpha_target=target)
            scores[index] = UNUSED_SCORE - RANK_STEP * rank
    _rank_germinate(spec, scores, range(num_slots), DEFAULT_BLUEPRINT_ORDER, AVOID_SCORE)
    scores.flags.writeable = False
    return scores
