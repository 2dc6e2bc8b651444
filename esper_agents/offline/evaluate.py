"""Evaluate d3rlpy agents: fit to an env, and on a dataset (FQE, agreement, action mix).

In-env evaluation is algorithm-neutral and lives in :mod:`esper_agents.common.evaluation`;
:func:`agent_action_set` and :func:`check_agent_fits` match a d3rlpy agent to the env it runs in.

On a dataset (the original improvement roadmap's results table), :func:`evaluate_on_dataset` reports the
agreement with the behavior policy (share of logged states where the agent's greedy action
equals the logged action), the agent's and the behavior's action mix over those states, and, for
agents with a value to evaluate, an off-policy estimate of the agent's value by d3rlpy's
:class:`~d3rlpy.ope.DiscreteFQE` (mean of ``Q_FQE(s0, pi(s0))`` over the episodes' initial
states, beside the behavior's own discounted return from them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from esper_agents.common.evaluation import action_mix, action_names
from esper_agents.common.masks import MaskInObservation
from esper_agents.offline.datasets import dataset_arrays

__all__ = ["agent_action_set", "check_agent_fits", "evaluate_on_dataset", "fqe_estimate"]

# --------------------------------------------------------------------------------------------- agents


def agent_action_set(algo: Any) -> str:
    """``"classic"`` for a model trained on the 4 classic actions, else ``"compact"``."""
    return "classic" if algo.impl.action_size == 4 else "compact"


def check_agent_fits(algo: Any, env: MaskInObservation) -> None:
    """Refuse an env whose observations or action count differ from what ``algo`` was trained on."""
    shape = tuple(int(d) for d in np.atleast_1d(algo.impl.observation_shape))
    if algo.impl.action_size != env.n_actions or shape != env.observation_space.shape:
        raise ValueError(
            f"the model expects observations {shape} and {algo.impl.action_size} actions, the env gives "
            f"{env.observation_space.shape} and {env.n_actions} (check --env, the slot count and the "
            "action set)"
        )


# --------------------------------------------------------------------------------------------- on a dataset


def evaluate_on_dataset(
    algo: Any,
    buffer: Any,
    fqe_steps: int = 0,
    fqe_seed: int = 0,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Agreement with the logged actions, action mixes, and (``fqe_steps > 0``) FQE's estimate.

    Returns ``agreement``, ``action_mix`` (the agent's greedy actions on the logged states),
    ``behavior_action_mix``, ``transitions`` and, with FQE, ``fqe`` (see :func:`fqe_estimate`).
    """
    from esper_agents.offline.bc import classification_report

    data = dataset_arrays(buffer)
    names = action_names(algo.impl.action_size)
    predicted = np.concatenate(
        [
            algo.predict(chunk)
            for chunk in np.array_split(data["observations"], max(1, len(data["actions"]) // 4096))
        ]
    ).astype(np.int64)
    report = classification_report(predicted, data["actions"], algo.impl.action_size)
    op_index = {op: i for i, op in enumerate(dict.fromkeys(names))}
    to_op = np.array([op_index[n] for n in names])
    op_report = classification_report(to_op[predicted], to_op[data["actions"]], len(op_index))
    result: dict[str, Any] = {
        "transitions": len(predicted),
        "agreement": report["accuracy"],
        "balanced_accuracy": report["balanced_accuracy"],
        "op_agreement": op_report["accuracy"],
        "op_balanced_accuracy": op_report["balanced_accuracy"],
        "op_per_class_accuracy": {list(op_index)[c]: v for c, v in op_report["per_class_accuracy"].items()},
        "op_confusion": {"ops": list(op_index), "matrix": op_report["confusion"]},
        "action_mix": action_mix(predicted, names),
        "behavior_action_mix": action_mix(data["actions"], names),
    }
    if fqe_steps > 0:
        result["fqe"] = fqe_estimate(algo, buffer, fqe_steps, seed=fqe_seed, show_progress=show_progress)
    return result


def fqe_estimate(
    algo: Any,
    buffer: Any,
    n_steps: int,
    seed: int = 0,
    gamma: float | None = None,
    learning_rate: float = 1e-4,
    show_progress: bool = False,
) -> dict[str, float]:
    """Fit d3rlpy's DiscreteFQE for ``algo``'s greedy (masked) policy on ``buffer``.

    Returns ``initial_value`` (mean over episodes of ``Q_FQE(s0, pi(s0))``), ``behavior_initial_return``
    (mean discounted return of the logged episodes from ``s0``, the behavior's value by Monte
    Carlo) and the ``gamma`` and ``steps`` used. The FQE network sees the features only and
    shares the agent's observation scaler (its target actions come from the agent's networks).
    """
    import d3rlpy
    from d3rlpy.logging import NoopAdapterFactory
    from d3rlpy.ope import DiscreteFQE, FQEConfig

    from esper_agents.offline.encoders import MaskedVectorEncoderFactory

    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"FQE steps must be a positive integer, got {n_steps!r}")
    gamma = float(algo.config.gamma if gamma is None else gamma)
    d3rlpy.seed(seed)
    n_actions = algo.impl.action_size
    fqe = DiscreteFQE(
        algo=algo,
        config=FQEConfig(
            encoder_factory=MaskedVectorEncoderFactory(mask_size=n_actions),
            observation_scaler=algo.config.observation_scaler,
            gamma=gamma,
            learning_rate=learning_rate,
            target_update_interval=max(1, min(100, n_steps // 10)),
        ),
    )
    fqe.fit(
        buffer,
        n_steps=n_steps,
        n_steps_per_epoch=n_steps,  # d3rlpy trains 0 steps if n_steps < n_steps_per_epoch
        logger_adapter=NoopAdapterFactory(),
        show_progress=show_progress,
    )
    starts = np.stack([np.asarray(ep.observations)[0] for ep in buffer.episodes])
    values = fqe.predict_value(starts, algo.predict(starts))
    returns = []
    for ep in buffer.episodes:
        r = np.asarray(ep.rewards).reshape(-1)[: ep.transition_count]
        returns.append(float(np.sum(r * gamma ** np.arange(len(r)))))
    return {
        "initial_value": float(np.mean(values)),
        "behavior_initial_return": float(np.mean(returns)),
        "gamma": gamma,
        "steps": int(n_steps),
    }
