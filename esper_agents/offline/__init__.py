"""Offline RL and imitation on Esper data, as d3rlpy algorithms that respect action masks.

* The mask rides in the observation, ``concat(features, mask)``
  (:mod:`esper_agents.common.masks`; :class:`MaskInObservation` does it in the env);
  :mod:`~esper_agents.offline.masks` reads it back inside the algorithms.
* :mod:`~esper_agents.offline.encoders`: a features-only encoder and a mask-preserving scaler.
* :class:`MaskedDiscreteCQL`, :class:`DiscreteIQL`, :class:`MaskedDiscreteBC` (effective-number
  class weights), :class:`RewardWeightedBC`: d3rlpy configs + implementations, registered with
  d3rlpy's config registry.
* :mod:`~esper_agents.offline.saved`: :func:`save_agent` / :func:`load_agent`, a directory of
  JSON and tensors that loads without unpickling anything (d3rlpy's pickled ``model.d3`` is not used).
* :func:`train_offline` trains one on logged episodes (:class:`LoggedEpisode`, from :func:`load_pack`);
  :mod:`~esper_agents.offline.evaluate` evaluates agents on datasets (FQE, agreement).

The algorithm-neutral pieces (episode record, masks in the env, rollouts, in-env evaluation,
:func:`mean_ci`) live in :mod:`esper_agents.common` and are re-exported here, their documented
import path. Importing this package registers its configs with d3rlpy (and nothing else).
"""

from esper_agents.common.episodes import LoggedEpisode
from esper_agents.common.evaluation import evaluate_in_env, make_eval_env
from esper_agents.common.masks import MaskInObservation, with_mask
from esper_agents.common.rollout import rollout, run_episode
from esper_agents.common.stats import mean_ci
from esper_agents.offline.algorithms import ALGORITHMS, make_config
from esper_agents.offline.bc import (
    MaskedDiscreteBC,
    MaskedDiscreteBCConfig,
    RewardWeightedBC,
    RewardWeightedBCConfig,
    classification_report,
    effective_number_weights,
)
from esper_agents.offline.cql import MaskedDiscreteCQL, MaskedDiscreteCQLConfig
from esper_agents.offline.datasets import (
    build_replay_buffer,
    dataset_arrays,
    load_pack,
    rwbc_dataset,
    split_episodes,
)
from esper_agents.offline.encoders import MaskedStandardObservationScaler, MaskedVectorEncoderFactory
from esper_agents.offline.evaluate import evaluate_on_dataset, fqe_estimate
from esper_agents.offline.iql import DiscreteIQL, DiscreteIQLConfig, expectile_loss
from esper_agents.offline.saved import AgentFileError, load_agent, save_agent
from esper_agents.offline.train import train_offline

__all__ = [
    "ALGORITHMS",
    "AgentFileError",
    "DiscreteIQL",
    "DiscreteIQLConfig",
    "LoggedEpisode",
    "MaskInObservation",
    "MaskedDiscreteBC",
    "MaskedDiscreteBCConfig",
    "MaskedDiscreteCQL",
    "MaskedDiscreteCQLConfig",
    "MaskedStandardObservationScaler",
    "MaskedVectorEncoderFactory",
    "RewardWeightedBC",
    "RewardWeightedBCConfig",
    "build_replay_buffer",
    "classification_report",
    "dataset_arrays",
    "effective_number_weights",
    "evaluate_in_env",
    "evaluate_on_dataset",
    "expectile_loss",
    "fqe_estimate",
    "load_agent",
    "load_pack",
    "make_config",
    "make_eval_env",
    "mean_ci",
    "rollout",
    "run_episode",
    "rwbc_dataset",
    "save_agent",
    "split_episodes",
    "train_offline",
    "with_mask",
]
