"""Reward components, the potential function, the reward modes and relabeling.

Every step the environment logs the raw terms in ``info["reward_components"]``; the reward it
returns is :func:`relabel` of those terms under the env's :class:`RewardConfig`. Datasets can be
relabeled to another mode or other weights without rerunning anything.

Accuracies are fractions in [0, 1].

Modes (with ``c`` the components and ``w`` the config):

* ``"shaped"`` (the original design's, plus the rent):
  ``w.accuracy_weight * (c.accuracy_delta - w.rent_weight * c.log_size_ratio_delta)
  + w.shaping_weight * (w.gamma * c.potential_next - c.potential_prev) + c.intervention_cost``
* ``"sparse"``: ``c.terminal * (c.sparse - w.rent_weight * c.log_size_ratio)``: the benchmark
  score (:func:`benchmark_score`), paid once at the last step.
* ``"contribution"``: ``w.accuracy_weight * sum(c.contributions) + c.intervention_cost
  - w.rent_weight * c.log_size_ratio``: the measured counterfactual contribution of every blending
  or holding seed, minus a per-step rent on the network's size.

The rent is charged on ``log_size_ratio = log2(parameters now / base host parameters)`` (live and
fossilized seeds included): ``rent_weight`` is the price of one doubling of the network, in
accuracy. The accuracy terms of ``"shaped"`` telescope, so its undiscounted return is
``accuracy_weight * (benchmark score - chance accuracy)`` plus the shaping and intervention
terms: every mode ranks growth the way the benchmark score does.

Env v0 (``Esper-*-v0``, see :mod:`esper_env.versions`) charged a *linear* rent instead
(``rent="linear"``, ``rent_weight=0.05``): ``"shaped"`` without any rent term, and ``"sparse"`` and
``"contribution"`` with ``c.param_rent = added parameters / base host parameters`` in place of
``c.log_size_ratio``. :func:`get_reward_config` gives each version's defaults.

The potential ``phi(s) = best_acc - 0.1 * (1 - best_acc) * min(plateau / patience, 1)`` decays by up
to 10 accuracy points while training stagnates (the original design); it is 0 before any measurement and in a
terminal (diverged) state, which keeps the shaping potential-based and the optimal policy unchanged.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from esper_env.lifecycle import Op
from esper_env.runtime import lookup
from esper_env.versions import CURRENT_VERSION, RENTS, dynamics

REWARD_MODES: tuple[str, ...] = ("shaped", "sparse", "contribution")

#: Cost of each executed op (the original design's intervention costs; an illegal action runs as WAIT, free).
DEFAULT_INTERVENTION_COSTS: dict[str, float] = {
    Op.WAIT.name: 0.0,
    Op.GERMINATE.name: -0.02,
    Op.ADVANCE.name: -0.01,
    Op.SET_ALPHA_TARGET.name: -0.005,
    Op.PRUNE.name: -0.005,
    Op.FOSSILIZE.name: -0.01,
}

#: The benchmark score's price of one doubling of the network (3 accuracy points).
DEFAULT_RENT_WEIGHT = 0.03


def log_size_ratio(parameters: int, base_parameters: int) -> float:
    """``log2(parameters / base_parameters)``: 0 for the base host, 1 for a network twice its size."""
    if base_parameters <= 0 or parameters <= 0:
        raise ValueError(f"parameter counts must be positive, got {parameters!r} and {base_parameters!r}")
    return float(np.log2(parameters / base_parameters))


def benchmark_score(
    final_val_accuracy: float, parameters: int, base_parameters: int, rent_weight: float = DEFAULT_RENT_WEIGHT
) -> float:
    """Esper's benchmark score: final validation accuracy minus ``rent_weight`` per doubling of size.

    ``parameters`` is everything the network holds at the end (host, fossilized and live seeds),
    ``base_parameters`` the host before any growth. With the default weight, growth that doubles
    the network must buy at least 3 accuracy points to pay, so neither never growing nor growing
    the largest seed everywhere is optimal (``benchmarks/growth_headroom.py`` measures it).
    """
    return float(final_val_accuracy) - rent_weight * log_size_ratio(parameters, base_parameters)


COMPONENT_NAMES: tuple[str, ...] = (
    "accuracy_delta",
    "loss_delta",
    "potential_prev",
    "potential_next",
    "intervention_cost",
    "param_rent",
    "log_size_ratio",
    "log_size_ratio_delta",
    "sparse",
    "terminal",
    "contributions",
)


@dataclass(frozen=True)
class RewardConfig:
    mode: str = "shaped"
    gamma: float = 0.99
    shaping_weight: float = 1.0
    accuracy_weight: float = 10.0
    #: Price of one doubling of the network's parameters, in accuracy (see :func:`benchmark_score`).
    rent_weight: float = DEFAULT_RENT_WEIGHT
    #: How the rent is charged: ``"log2"`` (v1, on ``log_size_ratio``) or ``"linear"`` (v0, on
    #: ``param_rent``; see the module docstring).
    rent: str = "log2"
    patience: int = 5
    intervention_costs: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_INTERVENTION_COSTS))

    def __post_init__(self) -> None:
        lookup("reward mode", self.mode, {m: m for m in REWARD_MODES})
        lookup("rent", self.rent, {r: r for r in RENTS})
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 1:
            raise ValueError(f"patience must be an integer >= 1, got {self.patience!r}")
        bounds = {"gamma": (0.0, 1.0), "shaping_weight": (-1e6, 1e6), "accuracy_weight": (-1e6, 1e6),
                  "rent_weight": (0.0, 1e6)}  # fmt: skip
        for name, (low, high) in bounds.items():
            _check_real(name, getattr(self, name), low, high)
        if not isinstance(self.intervention_costs, Mapping):
            raise ValueError(
                f"intervention_costs must be a mapping of op names to costs, got {self.intervention_costs!r}"
            )
        for op, cost in self.intervention_costs.items():
            if op not in DEFAULT_INTERVENTION_COSTS:
                raise ValueError(
                    f"intervention_costs has unknown op {op!r}; valid are {list(DEFAULT_INTERVENTION_COSTS)}"
                )
            _check_real(f"intervention_costs[{op!r}]", cost, -1e6, 1e6)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["intervention_costs"] = dict(self.intervention_costs)
        return d


def _check_real(name: str, value: Any, low: float, high: float) -> None:
    """``ValueError`` naming ``name`` unless ``value`` is a finite real number in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low:g}, {high:g}], got {value!r}")


def get_reward_config(reward: str | RewardConfig, version: int = CURRENT_VERSION) -> RewardConfig:
    """``reward`` itself if it is a RewardConfig, else mode ``reward`` with env ``version``'s rent."""
    if isinstance(reward, RewardConfig):
        return reward
    lookup("reward mode", reward, {m: m for m in REWARD_MODES})
    if version == CURRENT_VERSION:
        return RewardConfig(mode=reward)
    d = dynamics(version)
    return RewardConfig(mode=reward, rent=d.rent, rent_weight=d.rent_weight)


def potential(best_accuracy: float | None, plateau_epochs: int, patience: int) -> float:
    """The original design's stagnation-decaying potential, in accuracy units."""
    if best_accuracy is None:
        return 0.0
    stagnation = min(plateau_epochs / patience, 1.0)
    return best_accuracy - 0.1 * (1.0 - best_accuracy) * stagnation


def relabel(components: Mapping[str, Any], mode: str | RewardConfig = "shaped", **params: Any) -> Any:
    """Recompute the reward of one step (or arrays of steps) from its logged components.

    ``mode`` is a mode name or a RewardConfig; ``params`` override RewardConfig fields
    (``gamma``, ``shaping_weight``, ``accuracy_weight``, ``rent_weight``). Components may be
    floats or NumPy arrays of equal length (``contributions`` then has a trailing slot axis).
    """
    cfg = mode if isinstance(mode, RewardConfig) else get_reward_config(mode)
    if params:
        unknown = set(params) - set(RewardConfig.__dataclass_fields__) - {"mode"}
        if unknown:
            raise ValueError(
                f"unknown reward parameters {sorted(unknown)}; valid are: {sorted(RewardConfig.__dataclass_fields__)}"
            )
        cfg = replace(cfg, **params)
    c = components
    linear = cfg.rent == "linear"
    size = np.asarray(c["param_rent"] if linear else c["log_size_ratio"])
    if cfg.mode == "shaped":
        shaping = cfg.gamma * np.asarray(c["potential_next"]) - np.asarray(c["potential_prev"])
        gain = np.asarray(c["accuracy_delta"])
        if not linear:
            gain = gain - cfg.rent_weight * np.asarray(c["log_size_ratio_delta"])
        r = cfg.accuracy_weight * gain + cfg.shaping_weight * shaping + np.asarray(c["intervention_cost"])
    elif cfg.mode == "sparse":
        r = np.asarray(c["terminal"]) * (np.asarray(c["sparse"]) - cfg.rent_weight * size)
    else:
        contrib = np.asarray(c["contributions"], dtype=np.float64)
        total = contrib.sum(axis=-1) if contrib.ndim else contrib
        r = cfg.accuracy_weight * total + np.asarray(c["intervention_cost"]) - cfg.rent_weight * size
    return float(r) if np.ndim(r) == 0 else r
