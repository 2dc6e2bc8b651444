"""One entry point for the four offline algorithms: ``train_offline(algo, episodes, ...)``.

The algorithms and their default configs are in :mod:`esper_agents.offline.algorithms`.
Training writes into ``out``:

* ``agent/``: the trained agent as a saved-agent directory (``agent.json`` + ``weights.pt``,
  :mod:`esper_agents.offline.saved`; load it with :func:`esper_agents.offline.load_agent`);
* ``logs/<algo>_<timestamp>/``: d3rlpy's logs (params.json, one CSV per loss) and a checkpoint
  ``model_<step>/`` per logging epoch, in the same saved-agent format;
* ``summary.json``: what was trained on what, and the metrics on the training data
  (agreement, action mixes, and for bc/rwbc the balanced accuracy and confusion matrix).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Sequence
from typing import Any

from esper_agents.common.episodes import LoggedEpisode
from esper_agents.generation.schema import jsonable
from esper_agents.offline.algorithms import ALGORITHMS, make_config
from esper_agents.offline.bc import DEFAULT_BETA, classification_report
from esper_agents.offline.datasets import build_replay_buffer, dataset_arrays, rwbc_dataset
from esper_agents.offline.saved import AgentCheckpoints, save_agent

#: ``ALGORITHMS`` (the names ``train_offline`` accepts) is part of this module's API; it is defined
#: in :mod:`esper_agents.offline.algorithms`.
__all__ = ["AGENT_DIR", "ALGORITHMS", "TrainResult", "holdout_report", "train_offline"]

#: Where :func:`train_offline` saves the agent inside its output directory.
AGENT_DIR = "agent"


@dataclasses.dataclass
class TrainResult:
    algo: Any  # the trained d3rlpy algorithm
    model_path: str
    summary: dict[str, Any]


def train_offline(
    algo: str,
    episodes: Sequence[LoggedEpisode],
    n_steps: int,
    out: str | os.PathLike,
    seed: int = 0,
    n_steps_per_epoch: int | None = None,
    class_weight_beta: float = DEFAULT_BETA,
    rwbc_mode: str = "filter",
    rwbc_quantile: float = 0.5,
    rwbc_baseline: float | None = None,
    rwbc_scale: float | None = None,
    show_progress: bool = True,
    config_overrides: dict[str, Any] | None = None,
    source: dict[str, Any] | None = None,
    device: str = "cpu:0",
) -> TrainResult:
    """Train ``algo`` (one of :data:`ALGORITHMS`) on ``episodes`` for ``n_steps`` gradient steps.

    ``n_steps_per_epoch`` (default ``min(n_steps, 1000)``) is d3rlpy's logging and checkpoint
    period; it is capped at ``n_steps`` because d3rlpy trains zero steps otherwise, and must
    divide ``n_steps`` because d3rlpy trains whole epochs only. bc and rwbc
    get effective-number class weights (``class_weight_beta``) from the actions they train on;
    rwbc relabels the episodes with :func:`~esper_agents.offline.datasets.rwbc_dataset`.
    ``source`` (e.g. the pack path and its metadata) is copied into the summary. ``device`` is
    d3rlpy's (``"cpu:0"``, ``"cuda:0"``).
    """
    import d3rlpy

    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    if n_steps_per_epoch is not None and (
        isinstance(n_steps_per_epoch, bool) or not isinstance(n_steps_per_epoch, int) or n_steps_per_epoch < 1
    ):
        raise ValueError(f"n_steps_per_epoch must be a positive integer or None, got {n_steps_per_epoch!r}")
    if not episodes:
        raise ValueError("no episodes to train on")
    out = os.fspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"output {out!r} exists and is not a directory")
    os.makedirs(out, exist_ok=True)
    per_epoch = min(n_steps, 1000 if n_steps_per_epoch is None else n_steps_per_epoch)
    if n_steps % per_epoch:
        # d3rlpy runs n_steps // n_steps_per_epoch whole epochs: the remainder would be dropped.
        raise ValueError(
            f"steps ({n_steps}) must be a multiple of the steps per epoch ({per_epoch}), since d3rlpy "
            "trains only "
            f"whole epochs; e.g. use {math.gcd(n_steps, per_epoch)} steps per epoch"
        )
    n_actions = episodes[0].n_actions
    config = make_config(algo, n_actions, n_steps, **(config_overrides or {}))

    train_episodes = list(episodes)
    rwbc_info: dict[str, Any] | None = None
    if algo == "rwbc":
        train_episodes, rwbc_info = rwbc_dataset(
            episodes, mode=rwbc_mode, quantile=rwbc_quantile, baseline=rwbc_baseline, scale=rwbc_scale
        )
        config = dataclasses.replace(
            config,
            episode_mode=rwbc_mode,
            episode_quantile=float(rwbc_quantile),
            episode_baseline=float(rwbc_info.get("baseline", 0.0)),
            episode_scale=float(rwbc_info.get("scale", 1.0)),
        )
    buffer = build_replay_buffer(train_episodes)
    data = dataset_arrays(buffer)
    if algo in ("bc", "rwbc"):
        config = config.with_class_weights(data["actions"], n_actions, beta=class_weight_beta)

    d3rlpy.seed(seed)
    learner = config.create(device=device)
    started = time.perf_counter()
    learner.fit(
        buffer,
        n_steps=n_steps,
        n_steps_per_epoch=per_epoch,
        experiment_name=algo,
        with_timestamp=True,
        logger_adapter=AgentCheckpoints(root_dir=os.path.join(out, "logs")),
        show_progress=show_progress,
    )
    seconds = time.perf_counter() - started
    model_path = os.fspath(save_agent(learner, os.path.join(out, AGENT_DIR)))

    from esper_agents.offline.evaluate import evaluate_on_dataset

    # Metrics on ALL the given episodes (for rwbc too: agreement with the whole behavior).
    metrics = evaluate_on_dataset(learner, build_replay_buffer(episodes))
    summary: dict[str, Any] = {
        "algo": algo,
        "config_type": config.get_type(),
        "steps": int(n_steps),
        "steps_per_epoch": int(per_epoch),
        "seed": int(seed),
        "seconds": seconds,
        "episodes": len(episodes),
        "transitions": int(sum(len(e) for e in episodes)),
        "train_episodes": len(train_episodes),
        "n_actions": int(n_actions),
        "observation_size": int(data["observations"].shape[1]),
        "model": model_path,
        "source": source or {},
        "train_metrics": metrics,
    }
    if algo in ("bc", "rwbc"):
        summary["class_weights"] = list(config.class_weights)
        summary["class_weight_beta"] = float(class_weight_beta)
    if rwbc_info is not None:
        summary["rwbc"] = {"mode": rwbc_mode, **rwbc_info}
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2, default=jsonable)
    return TrainResult(learner, model_path, summary)


def holdout_report(learner: Any, episodes: Sequence[LoggedEpisode], masked: bool = True) -> dict[str, Any]:
    """Classification metrics of ``learner``'s greedy actions against held-out logged actions.

    ``masked=False`` predicts with every action marked legal: what the features alone decide.
    """
    data = dataset_arrays(build_replay_buffer(episodes))
    obs = data["observations"].copy()
    if not masked:
        obs[:, -learner.impl.action_size :] = 1.0
    predicted = learner.predict(obs)
    return classification_report(predicted, data["actions"], learner.impl.action_size)
