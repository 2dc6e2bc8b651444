"""The four offline algorithms by name: :data:`ALGORITHMS`, their config types, their defaults.

=======  ==========================================  ====================================
name     config                                      the original improvement roadmap
=======  ==========================================  ====================================
cql      :class:`MaskedDiscreteCQLConfig`            phase 3, CQL (alpha 5 was the stable one)
iql      :class:`DiscreteIQLConfig`                  phase 3, IQL (expectile 0.7)
bc       :class:`MaskedDiscreteBCConfig`             phase 1, class-weighted imitation
rwbc     :class:`RewardWeightedBCConfig`             phase 2, options C (filter) and A (weight)
=======  ==========================================  ====================================

Every config gets the mask-preserving observation scaler (features standardized over the data,
mask untouched) and a features-only MLP encoder. Training (:mod:`esper_agents.offline.train`),
the CLI's choices and the saved-agent loader (:mod:`esper_agents.offline.saved`) all read this
one list.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from esper_agents.offline.bc import MaskedDiscreteBCConfig, RewardWeightedBCConfig
from esper_agents.offline.cql import MaskedDiscreteCQLConfig
from esper_agents.offline.encoders import MaskedStandardObservationScaler
from esper_agents.offline.iql import DiscreteIQLConfig

__all__ = ["ALGORITHMS", "CONFIG_TYPES", "make_config"]

#: The d3rlpy config type of each algorithm, by the name ``esper train-offline --algo`` takes.
CONFIG_TYPES: dict[str, type] = {
    "cql": MaskedDiscreteCQLConfig,
    "iql": DiscreteIQLConfig,
    "bc": MaskedDiscreteBCConfig,
    "rwbc": RewardWeightedBCConfig,
}
#: The algorithm names, in the order tables list them.
ALGORITHMS: tuple[str, ...] = tuple(CONFIG_TYPES)


def make_config(algo: str, n_actions: int, n_steps: int, **overrides: Any) -> Any:
    """The default config of ``algo`` for ``n_actions`` actions and a run of ``n_steps``.

    Defaults that differ from d3rlpy's: CQL alpha 5.0 (the original improvement roadmap: lower
    alphas diverged) and a learning rate of 3e-4; target networks synced every
    ``min(1000, n_steps // 10)`` steps (at least 1) so that short runs bootstrap at all.
    ``overrides`` are config fields.
    """
    if algo not in CONFIG_TYPES:
        raise ValueError(f"unknown algorithm {algo!r}; valid are: {', '.join(ALGORITHMS)}")
    scaler = MaskedStandardObservationScaler(mask_size=n_actions)
    defaults: dict[str, dict[str, Any]] = {
        "cql": {
            "alpha": 5.0,
            "learning_rate": 3e-4,
            "batch_size": 128,
            "target_update_interval": max(1, min(1000, n_steps // 10)),
        },
        "iql": {"batch_size": 128, "expectile": 0.7, "weight_temp": 3.0},
    }
    config = CONFIG_TYPES[algo](observation_scaler=scaler, **defaults.get(algo, {}))
    return dataclasses.replace(config, **overrides) if overrides else config
