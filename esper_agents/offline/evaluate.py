"""Evaluate offline agents: in the env (with masks), and on a dataset (FQE, agreement, action mix).

In the env, :func:`evaluate_in_env` runs ``N`` seeded episodes of an agent and returns a
JSON-able summary: mean and 95% confidence interval (Student t) of final validation accuracy,
test accuracy and return, the action mix (share of each op), and the number of illegal actions
the agent chose (0 for every agent of this package: their argmax runs over legal actions).

On a dataset (seed 001's results table), :func:`evaluate_on_dataset` reports the agreement with
the behavior policy (share of logged states where the agent's greedy action equals the logged
action), the agent's and the behavior's action mix over those states, and, for agents with a
value to evaluate, an off-policy estimate of the agent's value by d3rlpy's
:class:`~d3rlpy.ope.DiscreteFQE` (mean of ``Q_FQE(s0, pi(s0))`` over the episodes' initial
states, beside the behavior's own discounted return from them).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from esper_agents.offline.datasets import Agent, OfflineEpisode, dataset_arrays, rollout
from esper_agents.offline.masks import MaskInObservation

__all__ = [
    "action_mix",
    "action_names",
    "evaluate_in_env",
    "evaluate_on_dataset",
    "fqe_estimate",
    "make_eval_env",
    "mean_ci",
    "t_quantile_975",
]

# Two-sided 95% Student t quantiles (0.975) for 1..30 degrees of freedom.
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (error < 1e-4).

    A table up to 30; beyond, the Cornish-Fisher expansion around the normal quantile.
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df!r}")
    if df <= len(_T975):
        return _T975[df - 1]
    z, v = 1.959963984540054, float(df)
    return (
        z
        + (z**3 + z) / (4 * v)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
    )


def mean_ci(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample std and 95% t-interval ``mean +- t(0.975, n-1) * std / sqrt(n)``.

    With one value the interval is that value (half-width 0) and ``std`` is 0.
    """
    x = np.asarray([float(v) for v in values], dtype=np.float64)
    if not len(x):
        raise ValueError("no values to summarise")
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if len(x) > 1 else 0.0
    half = t_quantile_975(len(x) - 1) * std / math.sqrt(len(x)) if len(x) > 1 else 0.0
    return {
        "mean": mean,
        "ci95": [mean - half, mean + half],
        "half_width": half,
        "std": std,
        "n": len(x),
    }


def action_names(n_actions: int) -> list[str]:
    """The op name of each discrete action: the 4 classic actions, or a compact action set
    (WAIT, GERMINATE, ADVANCE, SET_ALPHA_TARGET, PRUNE, FOSSILIZE) for some number of slots;
    ``action_<i>`` for any other action count."""
    from esper_env.lifecycle import Op
    from esper_env.wrappers import ClassicActions, compact_action_table

    if n_actions == len(ClassicActions.NAMES):
        return list(ClassicActions.NAMES)
    for slots in range(1, 17):
        table = compact_action_table(slots)
        if len(table) == n_actions:
            return [Op(a.op).name for a in table]
    return [f"action_{i}" for i in range(n_actions)]


def action_mix(actions: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """The share of each op (by ``names[action]``) among ``actions``, every op listed."""
    counts = Counter(names[int(a)] for a in actions)
    total = max(len(actions), 1)
    order = list(dict.fromkeys(names))
    return {op: counts.get(op, 0) / total for op in order}


# --------------------------------------------------------------------------------------------- agents


def make_eval_env(
    env_id: str = "Esper-SynthCIFAR-v1",
    action_set: str = "compact",
    **env_kwargs: Any,
) -> MaskInObservation:
    """The env stack an agent of this package acts in: ``CompactActions`` (or, for
    ``action_set="classic"``, ``ClassicActions`` + ``ClassicObservation``) + ``MaskInObservation``."""
    import esper_env  # noqa: F401  (registers the ids)
    from esper_env.wrappers import ClassicActions, ClassicObservation, CompactActions

    env = gym.make(env_id, **env_kwargs)
    if action_set == "compact":
        return MaskInObservation(CompactActions(env))
    if action_set == "classic":
        return MaskInObservation(ClassicObservation(ClassicActions(env)))
    raise ValueError(f"unknown action_set {action_set!r}; valid are: 'compact', 'classic'")


def agent_action_set(algo: Any) -> str:
    """``"classic"`` for a model trained on the 4 classic actions, else ``"compact"``."""
    return "classic" if algo.impl.action_size == 4 else "compact"


def check_agent_fits(algo: Any, env: MaskInObservation) -> None:
    shape = tuple(int(d) for d in np.atleast_1d(algo.impl.observation_shape))
    if algo.impl.action_size != env.n_actions or shape != env.observation_space.shape:
        raise ValueError(
            f"the model expects observations {shape} and {algo.impl.action_size} actions, the env gives "
            f"{env.observation_space.shape} and {env.n_actions} (check --env, the slot count and the "
            "action set)"
        )


# --------------------------------------------------------------------------------------------- in the env


def summarize_episodes(
    records: Sequence[OfflineEpisode], illegal: int, names: Sequence[str]
) -> dict[str, Any]:
    """The JSON summary of evaluation episodes (see the module docstring)."""

    def field(key: str) -> list[float]:
        return [float(r.info[key]) for r in records if r.info.get(key) is not None]

    actions = np.concatenate([r.actions for r in records])
    overhead = [
        (r.info["host_params"] + r.info["seed_params"] - r.info["base_host_params"])
        / r.info["base_host_params"]
        for r in records
        if {"host_params", "seed_params", "base_host_params"} <= r.info.keys()
    ]
    summary: dict[str, Any] = {
        "episodes": len(records),
        "final_val_accuracy": mean_ci([r.final_accuracy for r in records]),
        "test_accuracy": mean_ci(field("test_accuracy")) if field("test_accuracy") else None,
        "return": mean_ci([float(np.sum(r.rewards)) for r in records]),
        "episode_length": float(np.mean([len(r) for r in records])),
        "illegal_actions": int(illegal),
        "action_mix": action_mix(actions, names),
        "param_overhead": mean_ci(overhead) if overhead else None,
        "termination_reasons": dict(Counter(str(r.info.get("termination_reason")) for r in records)),
    }
    for key in ("seeds_created", "seeds_fossilized", "seeds_pruned"):
        if field(key):
            summary[key] = float(np.mean(field(key)))
    return summary


def evaluate_in_env(agent: Agent, env: MaskInObservation, episodes: int, seed: int = 0) -> dict[str, Any]:
    """Run ``episodes`` episodes (reset seeds ``seed .. seed + episodes - 1``) and summarise them.

    ``agent`` maps masked observations ``(batch, features + n_actions)`` to actions, e.g. a d3rlpy
    algorithm's ``predict``.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes!r}")
    records, illegal = rollout(env, agent, episodes, seed)
    summary = summarize_episodes(records, illegal, action_names(env.n_actions))
    summary["seed"] = int(seed)
    return summary


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
