"""Esper: a Gymnasium environment for growing a neural network while it trains.

``import esper_env`` registers ``Esper-CIFAR10-v2``, ``Esper-CIFAR100-v2`` and
``Esper-SynthCIFAR-v2``, the env ids of :data:`esper_env.datasets.DATASET_RECORDS` (Gymnasium 1.0 does not load entry-point plugins, so the import is what
registers them; ``gymnasium.make("esper_env:Esper-CIFAR10-v2")`` imports it for you).
"""

from __future__ import annotations

from gymnasium.envs.registration import WrapperSpec, register, registry

from esper_env.configs import ENVIRONMENT_CONFIGS, FIDELITIES, EnvironmentConfig, Fidelity
from esper_env.data import DatasetNotFoundError, load_dataset
from esper_env.datasets import ENV_IDS
from esper_env.engine import TrainingEngine
from esper_env.env import EsperEnv
from esper_env.lifecycle import Op, Stage
from esper_env.observation import ObservationView, SlotView
from esper_env.references import ReferenceScores, normalized_score, reference_scores
from esper_env.rewards import REWARD_MODES, RewardConfig, benchmark_score, relabel
from esper_env.settings import EnvSettings
from esper_env.spaces import FactoredAction, sample_mask

__all__ = [
    "ENVIRONMENT_CONFIGS",
    "ENV_IDS",
    "FIDELITIES",
    "REWARD_MODES",
    "DatasetNotFoundError",
    "EnvSettings",
    "EnvironmentConfig",
    "EsperEnv",
    "FactoredAction",
    "Fidelity",
    "ObservationView",
    "Op",
    "ReferenceScores",
    "RewardConfig",
    "SlotView",
    "Stage",
    "TrainingEngine",
    "benchmark_score",
    "load_dataset",
    "normalized_score",
    "reference_scores",
    "relabel",
    "sample_mask",
]

for _env_id, _kwargs in ENV_IDS.items():
    if _env_id not in registry:
        # MatchTimeLimit runs outside Gymnasium's TimeLimit: max_episode_steps=K becomes the env's epoch budget.
        register(
            id=_env_id,
            entry_point="esper_env.env:EsperEnv",
            kwargs=dict(_kwargs),
            additional_wrappers=(WrapperSpec("MatchTimeLimit", "esper_env.wrappers:MatchTimeLimit", {}),),
        )
