"""Run one episode of a behavior policy and log everything the data schema (2.1.0) asks for.

:func:`collect_episode` drives ``CompactActions(gymnasium.make(env_id, ...))`` with an
:class:`~esper_agents.policies.EpsilonGreedy` policy and returns an :class:`EpisodeRecord`:
the episode's :class:`~esper_agents.generation.schema.EpisodeMetadata` and its per-step arrays
(:data:`~esper_agents.generation.schema.STEP_ARRAYS`).

Randomness: the env is reset with ``seed``; the policy draws from its own generator,
``default_rng(SeedSequence(seed, spawn_key=(1,)))``, so the two streams never coincide. The same
``(env arguments, policy, epsilon, seed)`` gives the same episode.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import gymnasium as gym
import numpy as np

import esper_env  # noqa: F401  (registers the env ids)
from esper_agents.common.rollout import run_episode
from esper_agents.generation.schema import (
    REWARD_COMPONENTS,
    STEP_ARRAYS,
    EpisodeMetadata,
    return_to_go,
    state_hash,
    trajectory_hash,
    trajectory_quality,
)
from esper_env.lifecycle import LIVE_STAGES, Op
from esper_env.wrappers import CompactActions, encode_joint


@dataclass
class EpisodeRecord:
    """One logged episode: metadata plus per-step arrays (``arrays`` keys are STEP_ARRAYS')."""

    metadata: EpisodeMetadata
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __getattr__(self, name: str) -> np.ndarray:
        # Arrays read as attributes: record.observations, record.actions, record.rc_sparse...
        arrays = self.__dict__.get("arrays", {})
        if name in arrays:
            return arrays[name]
        raise AttributeError(f"EpisodeRecord has no attribute or array {name!r}")

    def __len__(self) -> int:
        return len(self.arrays["actions"])

    @property
    def episode_id(self) -> str:
        return self.metadata.episode_id

    @property
    def reward_components(self) -> dict[str, np.ndarray]:
        """The per-step components, in the form :func:`esper_env.rewards.relabel` takes."""
        return {c: self.arrays[f"rc_{c}"] for c in REWARD_COMPONENTS}

    @property
    def is_terminated(self) -> bool:
        return bool(self.metadata.done)

    def check(self) -> None:
        """Raise ValueError if an array is missing or has an inconsistent shape."""
        missing = sorted(set(STEP_ARRAYS) - set(self.arrays))
        if missing:
            raise ValueError(f"episode {self.episode_id!r} is missing arrays {missing}")
        T = len(self)
        for name, arr in self.arrays.items():
            rows = T + 1 if name in ("observations", "masks") else T
            if arr.shape[:1] != (rows,):
                raise ValueError(
                    f"episode {self.episode_id!r}: array {name!r} has shape {arr.shape}, expected {rows} rows"
                )
        if self.metadata.episode_length != T:
            raise ValueError(
                f"episode {self.episode_id!r}: episode_length {self.metadata.episode_length} != {T} steps"
            )


def _step_meta(env: CompactActions) -> tuple[int, float, float, int]:
    """active seed count, best seed accuracy, best seed contribution and epoch of the current state."""
    base = env.base
    live = [s for s in base.engine.slots if s.stage in LIVE_STAGES]
    measured = [s.state.contribution for s in live if s.state.contribution is not None]
    h = base.engine.history
    if measured and h.val_accuracy:
        return len(live), float(h.val_accuracy[-1]), float(max(measured)), h.epoch
    return len(live), float("nan"), float("nan"), h.epoch


class _LoggingBehavior:
    """An ``EpsilonGreedy`` (bound to ``env``) as an :class:`~esper_agents.common.agents.Agent`
    that keeps, per step, its decision (behavior and greedy probabilities, exploration) and the
    env state it was made in (:func:`_step_meta`): what the collector logs beside the transition.

    Its generator is ``default_rng(SeedSequence(seed, spawn_key=(1,)))`` of the reset seed."""

    def __init__(self, behavior: Any, env: CompactActions) -> None:
        self.behavior, self.env = behavior, env
        self.decisions: list[Any] = []
        self.states: list[tuple[int, float, float, int]] = []

    def reset(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(np.random.SeedSequence(int(seed or 0), spawn_key=(1,)))
        self.decisions, self.states = [], []

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> int:
        self.states.append(_step_meta(self.env))
        decision = self.behavior.decide(obs, np.asarray(info["action_mask"], dtype=bool), self.rng)
        self.decisions.append(decision)
        return int(decision.sampled_action)


def collect_episode(
    env: CompactActions,
    behavior: Any,
    *,
    seed: int,
    episode_id: str,
    policy_id: str | None = None,
    config_id: str | None = None,
    replicate: int = 0,
    round: int = 0,
    environment: Mapping[str, Any] | None = None,
) -> EpisodeRecord:
    """Run one episode of ``behavior`` (an ``EpsilonGreedy``, bound or not) on ``env``.

    ``environment`` is recorded as the episode's environment metadata; by default it is built
    from the env (host config, dataset, fidelity, max_epochs, num_slots, reward config).
    """
    if not isinstance(env, CompactActions):
        raise TypeError(f"collect_episode needs a CompactActions env, got {type(env).__name__}")
    start = time.perf_counter()
    base = env.base
    agent = _LoggingBehavior(behavior.bind(env), env)
    episode = run_episode(env, agent, seed=int(seed))
    behavior, info = agent.behavior, episode.infos[-1]
    n_slots = base.num_slots
    T_max = base.max_epochs
    t = len(episode)

    cols: dict[str, list[Any]] = {
        k: [] for k in STEP_ARRAYS if k not in ("observations", "masks", "return_to_go")
    }
    for i, (a, decision, (active, best_acc, best_contrib, epoch)) in enumerate(
        zip(episode.actions, agent.decisions, agent.states)
    ):
        step_info = episode.infos[i + 1]
        terminated = bool(episode.terminated) if i == t - 1 else False
        truncated = bool(episode.truncated) if i == t - 1 else False
        rc = step_info["reward_components"]
        executed = np.asarray(step_info["executed_action"], dtype=np.int64)
        cols["actions"].append(a)
        cols["joint_actions"].append(encode_joint(executed, n_slots))
        cols["executed_actions"].append(executed)
        cols["action_valid"].append(bool(step_info["action_valid"]))
        cols["rewards"].append(float(episode.rewards[i]))
        cols["terminated"].append(terminated)
        cols["truncated"].append(truncated)
        cols["behavior_prob"].append(decision.behavior_prob)
        cols["greedy_probs"].append(decision.greedy_probs)
        cols["behavior_probs"].append(decision.behavior_probs)
        cols["greedy_action"].append(decision.greedy_action)
        cols["was_exploratory"].append(decision.was_exploratory)
        cols["epsilon"].append(decision.epsilon)
        cols["timestep"].append(i)
        cols["done"].append(terminated)
        cols["state_hash"].append(state_hash(episode.observations[i]))
        cols["active_seed_count"].append(active)
        cols["best_seed_accuracy"].append(best_acc)
        cols["best_seed_contribution"].append(best_contrib)
        cols["training_budget_remaining"].append(max(T_max - epoch, 0) / T_max)
        for c in REWARD_COMPONENTS:
            cols[f"rc_{c}"].append(rc[c])

    arrays: dict[str, np.ndarray] = {
        "observations": np.asarray(episode.observations, dtype=np.float32),
        "masks": np.asarray([i["action_mask"] for i in episode.infos], dtype=bool),
    }
    for name, values in cols.items():
        dtype = STEP_ARRAYS[name][0]
        arrays[name] = np.asarray(values, dtype=dtype)
    arrays["rc_contributions"] = arrays["rc_contributions"].reshape(t, n_slots)
    arrays["return_to_go"] = return_to_go(arrays["rewards"])

    actions = arrays["actions"]
    executed_ops = arrays["executed_actions"][:, 0]
    names, counts = np.unique(actions, return_counts=True)
    action_counts = {env.describe(int(i)): int(c) for i, c in zip(names, counts)}
    final_acc = float(info["final_val_accuracy"])
    best_acc = float(info["best_val_accuracy"]) if info["best_val_accuracy"] is not None else float("nan")
    chance = 1.0 / base.data.num_classes
    reason = str(info["termination_reason"])
    if environment is None:
        environment = environment_metadata(env)
    meta = EpisodeMetadata(
        episode_id=episode_id,
        timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
        behavior_policy=behavior.config.to_dict(),
        environment=dict(environment),
        random_seed=int(seed),
        final_accuracy=final_acc,
        best_accuracy=best_acc,
        test_accuracy=float(info["test_accuracy"]),
        total_return=float(arrays["rewards"].sum()),
        return_to_go_at_start=float(arrays["return_to_go"][0]),
        episode_length=t,
        termination_reason=reason,
        done=bool(arrays["terminated"][-1]),
        truncated=bool(arrays["truncated"][-1]),
        num_interventions=int(np.sum(executed_ops != int(Op.WAIT))),
        action_counts=action_counts,
        seeds_created=int(info["seeds_created"]),
        seeds_fossilized=int(info["seeds_fossilized"]),
        seeds_pruned=int(info["seeds_pruned"]),
        trajectory_quality=trajectory_quality(
            reason, final_acc, best_acc, int(info["seeds_fossilized"]), chance
        ),
        trajectory_hash=trajectory_hash(actions, arrays["observations"]),
        policy_id=policy_id or behavior.policy_id,
        config_id=config_id or base.config.config_id,
        epsilon=float(behavior.epsilon),
        replicate=int(replicate),
        round=int(round),
        host_params=int(info["host_params"]),
        seed_params=int(info["seed_params"]),
        wall_seconds=round_(time.perf_counter() - start),
        instance=episode.instance,
    )
    record = EpisodeRecord(meta, arrays)
    record.check()
    return record


def round_(x: float) -> float:
    return float(f"{x:.3f}")


def environment_metadata(env: gym.Env) -> dict[str, Any]:
    """The host config plus the env arguments that shaped the episode, and the torch version and
    thread count it ran under (an episode is reproducible bit for bit only under both)."""
    base = env.unwrapped
    spec = getattr(base, "spec", None)
    return {
        **base.config.to_dict(),
        "max_epochs": base.max_epochs,
        "env_id": spec.id if spec is not None else None,
        "dataset": base.dataset,
        "fidelity": base.fidelity.name,
        "fidelity_detail": dict(vars(base.fidelity)),
        "num_slots": base.num_slots,
        "early_stop_patience": base.early_stop_patience,
        "reward": base.reward_config.to_dict(),
        "torch_version": base.metadata["torch_version"],
        "torch_num_threads": base.metadata["torch_num_threads"],
    }
