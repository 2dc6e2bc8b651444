"""The online algorithms, defined once: :data:`ONLINE_ALGORITHMS` (name -> :class:`OnlineAlgorithm`).

The CLI's ``--algo`` choices, the trainer, saved-model loading and the benchmarks read this
table. Hyperparameters are sized for Esper's short episodes (25 steps at the default budget):
a rollout of ``n_steps`` per env covers two episodes, and PPO updates often.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from esper_env.configs import lookup

__all__ = ["BEST_HEURISTIC", "ONLINE_ALGORITHMS", "OnlineAlgorithm", "get_online_algorithm", "model_class"]

#: ``OnlineAlgorithm.warm_start``'s value for "the best heuristic the reference registry records for
#: the run's env" (``rent-aware`` on the fast tier's ``bottlenecks``, ``curve-aware`` on ``optimizers``);
#: ``FALLBACK_TEACHER`` where the registry has no entry for it.
BEST_HEURISTIC = "best-heuristic"
FALLBACK_TEACHER = "rent-aware"

#: PPO settings shared by the three algorithms (SB3 names).
PPO_DEFAULTS: dict[str, Any] = {
    "n_steps": 50,
    "batch_size": 50,
    "n_epochs": 4,
    "learning_rate": 3e-4,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "ent_coef": 0.01,
    "clip_range": 0.2,
}


@dataclasses.dataclass(frozen=True)
class OnlineAlgorithm:
    """One online algorithm: its SB3 class (``module:Class``), policy, and the env stack it acts in.

    ``action_set`` is ``"compact"`` (``CompactActions`` + ``MaskInObservation``),
    ``"options"`` (:class:`~esper_agents.common.options.GrowOptions` + ``MaskInObservation``: one
    decision grows a whole graft; its steps count decisions) or ``"factored"`` (the full
    ``MultiDiscrete`` space + ``LegalityInObservation``);
    ``masked`` says whether the learner itself never picks an illegal action.
    """

    name: str
    model: str
    policy: str
    action_set: str
    masked: bool
    recurrent: bool
    description: str
    policy_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: The initial policy's probability of WAIT at a decision (options only; 0: the policy's own
    #: initialisation). An even choice among WAIT and the host's blueprints grows at almost every
    #: decision, three grafts per episode, most of them harmful; 0.92 makes the first policy graft
    #: about once per 25-epoch episode, at a random time, in a random slot, with a random blueprint.
    wait_prior: float = 0.0
    #: A behavior policy (options only, masked only), or :data:`BEST_HEURISTIC`, whose greedy
    #: decisions on training episodes the new policy is cloned from before PPO
    #: (:mod:`esper_agents.online.warm_start`): one episode per 50 steps of the budget that creates
    #: the model, at most ``warm_start_episodes``.
    warm_start: str | None = None
    warm_start_episodes: int = 0


_RECURRENT_PPO = OnlineAlgorithm(
    "recurrent-ppo",
    "sb3_contrib:RecurrentPPO",
    "MlpLstmPolicy",
    "compact",
    masked=False,
    recurrent=True,
    description="sb3-contrib RecurrentPPO (LSTM, no masks: an illegal action runs as WAIT)",
    policy_kwargs={"lstm_hidden_size": 128},
)
_MASKABLE_PPO = OnlineAlgorithm(
    "maskable-ppo",
    "sb3_contrib:MaskablePPO",
    "MlpPolicy",
    "compact",
    masked=True,
    recurrent=False,
    description="sb3-contrib MaskablePPO with the exact joint mask of CompactActions (no memory)",
)
#: The options variants: the same learners over :class:`~esper_agents.common.options.GrowOptions`.
_OPTIONS = {"action_set": "options", "wait_prior": 0.92}

ONLINE_ALGORITHMS: dict[str, OnlineAlgorithm] = {
    a.name: a
    for a in (
        _RECURRENT_PPO,
        _MASKABLE_PPO,
        dataclasses.replace(
            _RECURRENT_PPO, name="recurrent-ppo-options", **_OPTIONS,
            description="RecurrentPPO over lifecycle options (WAIT, or grow a blueprint in a slot to fossilization)",
        ),
        dataclasses.replace(
            _MASKABLE_PPO, name="maskable-ppo-options", **_OPTIONS,
            description="MaskablePPO over lifecycle options (factored heads, exact per-head masks)",
        ),
        dataclasses.replace(
            _MASKABLE_PPO, name="maskable-ppo-options-bc", **{**_OPTIONS, "wait_prior": 0.0},
            description="maskable-ppo-options started from a clone of the env's best heuristic (reference "
                        "registry) on 200 training episodes",
            warm_start=BEST_HEURISTIC, warm_start_episodes=200,
        ),
        OnlineAlgorithm(
            "masked-recurrent-ppo",
            "esper_agents.online.masked_recurrent_ppo:MaskedRecurrentPPO",
            "FactoredLstmPolicy",
            "factored",
            masked=True,
            recurrent=True,
            description="Esper's masked recurrent PPO: factored heads with dependent masks, op-conditioned critic",
        ),
    )
}  # fmt: skip


def get_online_algorithm(name: str) -> OnlineAlgorithm:
    """The record of ``name``, or a ValueError naming it and the valid algorithms."""
    return lookup("online algorithm", name, ONLINE_ALGORITHMS)


def model_class(name: str) -> type:
    """The SB3 algorithm class of ``name`` (imported on demand)."""
    import importlib

    module, _, cls = get_online_algorithm(name).model.partition(":")
    return getattr(importlib.import_module(module), cls)
