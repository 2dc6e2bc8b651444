"""Esper agents: behavior policies, data generation, offline and online training, evaluation.

* :mod:`esper_agents.policies`: the behavior policies (heuristics, random, periodic, ...).
* :mod:`esper_agents.generation`: packs of logged episodes from a policy x environment matrix.
* :mod:`esper_agents.common`: what every learned agent shares whatever its algorithm (masks in
  the observation, the logged-episode record, rollouts, in-env evaluation); no learning library.
* :mod:`esper_agents.offline`: offline RL and imitation on packs, as d3rlpy algorithms.
"""
