"""The original roadmap's phase 1, on the classic variant: imitate the heuristic with 4 actions and 27 features.

The heuristic (called Kasmina in the original design) acts on Esper's full observation and the
compact actions. :func:`collect_classic_episodes` runs it and logs, for each decision, the
classic view of the same state: the 27-feature snapshot of the original imitation design
(:class:`esper_env.wrappers.ClassicObservation`), the classic mask
(:class:`esper_env.wrappers.ClassicActions`) and the classic label of the heuristic's action:

=====================  ===============
compact op             classic action
=====================  ===============
WAIT                   WAIT
GERMINATE              GERMINATE
ADVANCE, FOSSILIZE     ADVANCE (classic ADVANCE fossilizes a HOLDING seed)
PRUNE                  CULL
SET_ALPHA_TARGET       WAIT (the threshold heuristic never chooses it greedily)
=====================  ===============

:func:`reproduce_phase1` splits the episodes 80/20 by episode (as the original imitation design
does), trains :class:`~esper_agents.offline.bc.MaskedDiscreteBC` with effective-number class
weights (beta 0.999) and reports balanced accuracy, per-class accuracy and the confusion matrix
on the held-out episodes, as the original improvement roadmap's phase-1 table does (98.2% on its
V1 data).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from esper_agents.common.episodes import LoggedEpisode
from esper_agents.common.rollout import run_episode
from esper_agents.offline.datasets import split_episodes
from esper_env.settings import EnvSettings

__all__ = ["CLASSIC_OF_OP", "collect_classic_episodes", "reproduce_phase1"]


def _classic_of_op() -> dict[int, int]:
    from esper_env.lifecycle import Op
    from esper_env.wrappers import ClassicActions as C

    return {
        Op.WAIT: C.WAIT, Op.GERMINATE: C.GERMINATE, Op.ADVANCE: C.ADVANCE, Op.FOSSILIZE: C.ADVANCE,
        Op.PRUNE: C.CULL, Op.SET_ALPHA_TARGET: C.WAIT,
    }  # fmt: skip


CLASSIC_OF_OP: dict[int, int] = _classic_of_op()


def collect_classic_episodes(
    episodes: int,
    settings: EnvSettings,
    policy: str = "baseline",
    seed: int = 0,
    epsilon: float = 0.0,
    progress: Callable[[int], None] | None = None,
) -> list[LoggedEpisode]:
    """Episodes of behavior policy ``policy`` (greedy unless ``epsilon``) in the env ``settings``
    builds, logged in the classic view; episode ``i`` is reset with seed ``seed + i``.
    ``progress(i)`` is called after each."""
    from esper_agents.policies import EpsilonGreedy, get_policy
    from esper_env.wrappers import CompactActions

    env = CompactActions(settings.make())
    agent = _ClassicLabels(EpsilonGreedy(get_policy(policy), epsilon=epsilon).bind(env), env, seed)
    records = []
    for i in range(episodes):
        episode = run_episode(env, agent, seed=seed + i)
        agent.record_state(episode.observations[-1])  # the final state's classic view
        records.append(
            LoggedEpisode(
                np.stack(agent.features),
                np.stack(agent.masks),
                np.array(agent.labels),
                episode.rewards,
                episode.terminated,
                float(episode.infos[-1]["final_val_accuracy"]),
                {"policy": policy, "seed": seed + i},
            )
        )
        if progress is not None:
            progress(i)
    env.close()
    return records


class _ClassicLabels:
    """The behavior policy as an agent on the compact actions that logs, for each state it decides
    in, the classic view: the 27 features, the classic mask and the classic label of its action.

    One generator, ``default_rng(seed)``, runs through all episodes."""

    def __init__(self, behavior: Any, env: Any, seed: int) -> None:
        from esper_env.wrappers import ClassicActions, ClassicObservation

        self.behavior = behavior
        self.classic_obs = ClassicObservation(env)  # read-only views of the same env state
        self.classic_act = ClassicActions(env)
        self.ops = [int(a.op) for a in env.actions]
        self.rng = np.random.default_rng(seed)
        self.features: list[np.ndarray] = []
        self.masks: list[np.ndarray] = []
        self.labels: list[int] = []

    def record_state(self, obs: np.ndarray) -> None:
        """Log the classic view of the env's current state (its compact observation ``obs``)."""
        self.features.append(self.classic_obs.observation(obs))
        self.masks.append(self.classic_act.action_masks())

    def reset(self, seed: int | None) -> None:
        self.features, self.masks, self.labels = [], [], []

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> int:
        from esper_env.lifecycle import Op
        from esper_env.wrappers import ClassicActions

        self.record_state(obs)
        decision = self.behavior.decide(obs, info["action_mask"], self.rng)
        label = CLASSIC_OF_OP[self.ops[decision.sampled_action]]
        if not self.masks[-1][label]:
            raise RuntimeError(
                f"the heuristic's {Op(self.ops[decision.sampled_action]).name} maps to classic "
                f"{ClassicActions.NAMES[label]}, which the classic mask forbids here"
            )
        self.labels.append(label)
        return decision.sampled_action


def reproduce_phase1(
    records: list[LoggedEpisode],
    n_steps: int = 3000,
    out: str | os.PathLike | None = None,
    seed: int = 0,
    val_fraction: float = 0.2,
    hidden_units: tuple[int, ...] = (64, 32),
    show_progress: bool = False,
) -> dict[str, Any]:
    """Train class-weighted BC on 80% of ``records`` (by episode) and score the other 20%.

    ``hidden_units`` defaults to the original imitation design's MLP (27 -> 64 -> 32 -> 4).
    Returns the held-out classification report (balanced accuracy, per-class accuracy keyed by
    classic action name, confusion matrix with rows = heuristic's action) of the agent as it acts
    (argmax over the legal classic actions), the same for a model trained and scored without
    masks (``heldout_unmasked``, the original imitation design's setup), and the masked model's
    training summary.
    """
    import dataclasses
    import tempfile

    from esper_agents.offline.encoders import MaskedVectorEncoderFactory
    from esper_agents.offline.train import holdout_report, train_offline
    from esper_env.wrappers import ClassicActions

    train, val = split_episodes(records, val_fraction=val_fraction, seed=seed)
    out = os.fspath(out or tempfile.mkdtemp(prefix="esper_phase1_"))
    names = ClassicActions.NAMES

    def fit_and_score(
        train: list[LoggedEpisode], val: list[LoggedEpisode], where: str
    ) -> tuple[Any, dict[str, Any]]:
        result = train_offline(
            "bc", train, n_steps, where, seed=seed, show_progress=show_progress,
            config_overrides={"encoder_factory": MaskedVectorEncoderFactory(hidden_units=list(hidden_units))},
            source={"kind": "classic heuristic episodes", "train_episodes": len(train),
                    "val_episodes": len(val)},
        )  # fmt: skip
        report = holdout_report(result.algo, val)
        report["per_class_accuracy"] = {names[c]: v for c, v in report["per_class_accuracy"].items()}
        report["support"] = {names[c]: v for c, v in report["support"].items()}
        report["classes"] = list(names)
        return result, report

    result, masked = fit_and_score(train, val, out)
    # The original imitation design's setup: no mask at all (every action legal in training and prediction), so the 27
    # features alone must decide. (The masked model cannot be scored without its mask: its loss
    # never trains the logits of illegal actions.)
    unmask = lambda rs: [dataclasses.replace(r, masks=np.ones_like(r.masks)) for r in rs]
    _, unmasked = fit_and_score(unmask(train), unmask(val), os.path.join(out, "unmasked"))
    labels = np.concatenate([r.actions for r in records])
    return {
        "heldout": masked,
        "heldout_unmasked": unmasked,
        "train_episodes": len(train),
        "val_episodes": len(val),
        "decisions": len(labels),
        "label_mix": {names[c]: float(np.mean(labels == c)) for c in range(len(names))},
        "model": result.model_path,
        "train_summary": result.summary,
    }
