"""The data schema (2.1.0: the original design's 2.0.0, its ``seeds_culled`` now ``seeds_pruned``):
per-episode metadata and per-step arrays.

An episode is stored as one :class:`EpisodeMetadata` (JSON) and a set of per-step arrays
(:data:`STEP_ARRAYS`, one ``.npz``). ``T`` is the number of steps (actions) of the episode;
observations and masks have ``T + 1`` rows because the state the episode ended in is kept.

Choices the original design leaves open, made here once:

* ``done`` (episode and step) means *natural termination* (the env's ``terminated``: divergence
  or early stop); ``truncated`` means the ``max_epochs`` budget ran out. They are exclusive.
* ``state_hash[t]`` hashes ``observations[t]`` rounded to 3 decimals (the first 16 hex digits of
  its sha256), so exactly repeated states share a hash; coverage by clusters is the health
  checks' job.
* ``best_seed_contribution[t]`` is the largest measured counterfactual contribution (accuracy with
  the seed minus with its alpha at 0) among live seeds, NaN when none is measured;
  ``best_seed_accuracy[t]`` is the host's validation accuracy with the live seeds in place, NaN
  when no live seed has been measured (the original design's ``None``).
* ``return_to_go[t] = sum(rewards[t:])``, undiscounted, of the rewards as logged (the env's reward
  mode); ``return_to_go_at_start = return_to_go[0] = total_return``.
* ``trajectory_hash`` is the sha256 of the actions (int64, little endian) followed by the
  observations (float32, little endian, ``T + 1`` rows): two episodes with the same hash took the
  same actions through the same states.
* ``trajectory_quality`` (:func:`trajectory_quality`):

  - ``"failure"``: the run diverged, or ended more than 5 accuracy points below its best, or
    never got 2 points above chance;
  - ``"success"``: not a failure, at least one seed was fossilized, and the final accuracy is
    within 1 point of the best: a completed lifecycle whose gain was kept;
  - ``"partial"``: everything else (learned, but grew nothing permanent or lost some ground).

  Accuracies are fractions, so a "point" is 0.01.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from esper_env.rewards import COMPONENT_NAMES

#: 2.1.0 renames the metadata's ``seeds_culled`` to ``seeds_pruned`` (the env's name for the count);
#: 2.0.x episodes are still read, their ``seeds_culled`` mapped on load (:meth:`EpisodeMetadata.from_dict`).
SCHEMA_VERSION = "2.1.0"

#: A run that ends further than this below its best validation accuracy failed.
FAILURE_DROP = 0.05
#: A run whose best accuracy is not this far above chance never learned.
FAILURE_ABOVE_CHANCE = 0.02
#: A success ends within this of its best accuracy.
SUCCESS_TOLERANCE = 0.01

QUALITIES: tuple[str, ...] = ("success", "partial", "failure")

#: Reward components logged per step (``contributions`` has a slot axis): the env's own list.
REWARD_COMPONENTS: tuple[str, ...] = COMPONENT_NAMES

#: name -> (dtype, shape) of every per-step array; ``T`` steps, ``n`` compact actions, ``S`` slots,
#: ``D`` observation features, ``H`` factored action heads. Reward components are stored as
#: ``rc_<name>``.
STEP_ARRAYS: dict[str, tuple[str, str]] = {
    "observations": ("float32", "[T+1, D]"),
    "masks": ("bool", "[T+1, n]"),
    "actions": ("int64", "[T] compact action index"),
    "joint_actions": ("int64", "[T] encode_joint of the executed factored action"),
    "executed_actions": ("int64", "[T, H] factored action the env ran"),
    "action_valid": ("bool", "[T]"),
    "rewards": ("float64", "[T] as returned by the env"),
    "terminated": ("bool", "[T]"),
    "truncated": ("bool", "[T]"),
    "return_to_go": ("float64", "[T]"),
    # behavior logs (the original design's ActionProbabilities)
    "behavior_prob": ("float64", "[T] mu(a_t|s_t)"),
    "greedy_probs": ("float64", "[T, n] pi(.|s_t)"),
    "behavior_probs": ("float64", "[T, n] mu(.|s_t)"),
    "greedy_action": ("int64", "[T]"),
    "was_exploratory": ("bool", "[T]"),
    "epsilon": ("float64", "[T]"),
    # step metadata (the original design's StepMetadata)
    "timestep": ("int64", "[T]"),
    "done": ("bool", "[T] natural termination at this step"),
    "state_hash": ("<U16", "[T] hash of observations[t]"),
    "active_seed_count": ("int64", "[T]"),
    "best_seed_accuracy": ("float64", "[T] NaN when none"),
    "best_seed_contribution": ("float64", "[T] NaN when none"),
    "training_budget_remaining": ("float64", "[T] (max_epochs - epoch) / max_epochs"),
    **{f"rc_{c}": ("float64", "[T, S]" if c == "contributions" else "[T]") for c in REWARD_COMPONENTS},
}


@dataclass
class EpisodeMetadata:
    """The original design's ``EpisodeMetadata`` (schema 2.1.0), plus the cell the episode belongs to.

    ``behavior_policy`` is the policy's full config (``BehaviorPolicyConfig.to_dict()``, with the
    epsilon used); ``environment`` is the host config (``EnvironmentConfig.to_dict()``) plus the
    env id, dataset, fidelity, max_epochs, num_slots and reward config.
    """

    episode_id: str
    timestamp: str  # ISO 8601, UTC
    behavior_policy: dict[str, Any]
    environment: dict[str, Any]
    random_seed: int
    final_accuracy: float
    best_accuracy: float
    test_accuracy: float
    total_return: float
    return_to_go_at_start: float
    episode_length: int
    termination_reason: str
    done: bool
    truncated: bool
    num_interventions: int
    action_counts: dict[str, int]
    seeds_created: int
    seeds_fossilized: int
    seeds_pruned: int
    trajectory_quality: str
    trajectory_hash: str
    # where the episode sits in the generation plan
    policy_id: str = ""
    config_id: str = ""
    epsilon: float = 0.0
    replicate: int = 0
    round: int = 0
    host_params: int = 0
    seed_params: int = 0
    wall_seconds: float = 0.0
    schema_version: str = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    #: The task instance the episode was played on (``info["instance"]``); ``None`` on an id without an
    #: instance distribution, and then left out of :meth:`to_dict` (those files are as they were).
    instance: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = jsonable(dataclasses.asdict(self))
        if d["instance"] is None:
            del d["instance"]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EpisodeMetadata:
        """Read metadata of schema 2.1 or 2.0 (whose ``seeds_culled`` is ``seeds_pruned``)."""
        d = dict(d)
        if "seeds_culled" in d and "seeds_pruned" not in d:
            d["seeds_pruned"] = d.pop("seeds_culled")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING and f.name not in d]  # fmt: skip
        if missing:
            raise ValueError(f"episode metadata is missing fields {missing}")
        return cls(**{k: v for k, v in d.items() if k in names})


def trajectory_quality(
    termination_reason: str, final_accuracy: float, best_accuracy: float, seeds_fossilized: int, chance: float
) -> str:
    """The documented label rule (module docstring)."""
    if (
        termination_reason == "diverged"
        or not np.isfinite(final_accuracy)
        or final_accuracy < best_accuracy - FAILURE_DROP
        or best_accuracy < chance + FAILURE_ABOVE_CHANCE
    ):
        return "failure"
    if seeds_fossilized >= 1 and final_accuracy >= best_accuracy - SUCCESS_TOLERANCE:
        return "success"
    return "partial"


def trajectory_hash(actions: np.ndarray, observations: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(actions, dtype="<i8").tobytes())
    h.update(np.ascontiguousarray(observations, dtype="<f4").tobytes())
    return h.hexdigest()


def state_hash(observation: np.ndarray) -> str:
    rounded = np.round(np.asarray(observation, dtype=np.float64), 3) + 0.0  # + 0.0 folds -0.0 into 0.0
    return hashlib.sha256(np.ascontiguousarray(rounded, dtype="<f8").tobytes()).hexdigest()[:16]


def return_to_go(rewards: np.ndarray) -> np.ndarray:
    r = np.asarray(rewards, dtype=np.float64)
    return np.cumsum(r[::-1])[::-1].copy()


def jsonable(x: Any) -> Any:
    """Plain JSON types: numpy scalars to Python, NaN/inf to None, tuples and arrays to lists.

    The one such helper of the package: the pack writer applies it to every document, and it
    works as ``json.dump(..., default=jsonable)`` too. A value JSON cannot hold is a TypeError.
    """
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if np.isfinite(x) else None
    if x is None or isinstance(x, str):
        return x
    raise TypeError(f"{type(x).__name__} is not JSON serializable")
