"""Esper agents: behavior policies, data generation, offline and online training, evaluation.

* :mod:`esper_agents.policies`: the behavior policies (heuristics, random, periodic, ...).
* :mod:`esper_agents.generation`: packs of logged episodes from a policy x environment matrix.
* :mod:`esper_agents.common`: what every learned agent shares whatever its algorithm (masks in
  the observation, the logged-episode record, rollouts, in-env evaluation); no learning library.
* :mod:`esper_agents.offline`: offline RL and imitation on packs, as d3rlpy algorithms.
"""

import sys as _sys

# d3rlpy imports the old ``gym``, whose import prints a deprecation banner from the ``gym_notices``
# package (gym/__init__.py prints it and ignores any error getting it; it has no switch to turn it
# off). Marking ``gym_notices`` as not importable skips the banner only, for every user of
# esper_agents (the esper command, the benchmarks, library code) before anything imports d3rlpy.
_sys.modules.setdefault("gym_notices", None)  # type: ignore[arg-type]
