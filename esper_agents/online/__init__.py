"""Online RL on the env: sb3-contrib RecurrentPPO and MaskablePPO, and Esper's masked recurrent PPO.

* :mod:`~esper_agents.online.algorithms`: :data:`ONLINE_ALGORITHMS`, the names and settings.
* :mod:`~esper_agents.online.envs`: the env stack of each algorithm, vectorized for SB3.
* :mod:`~esper_agents.online.masked_recurrent_ppo`: :class:`MaskedRecurrentPPO`, an SB3 algorithm
  (a ``RecurrentPPO`` with the factored policy of :mod:`~esper_agents.online.factored_policy`).
* :mod:`~esper_agents.online.train`: :func:`train_online`, checkpoints and resume.
* :mod:`~esper_agents.online.evaluate`: load any saved online model and evaluate it in the env.

Online agents import shared code from :mod:`esper_agents.common` only, never from offline/.
"""

from esper_agents.online.algorithms import ONLINE_ALGORITHMS, get_online_algorithm
from esper_agents.online.envs import LegalityInObservation, make_online_env, make_vec_env

__all__ = [
    "ONLINE_ALGORITHMS",
    "LegalityInObservation",
    "get_online_algorithm",
    "make_online_env",
    "make_vec_env",
]
