"""Data generation: behavior policies x environment presets -> packs of logged episodes.

Pipeline (seed 000): :mod:`~esper_agents.generation.orchestrator` reads a TOML matrix spec and
schedules episodes; :mod:`~esper_agents.generation.collector` runs one episode and logs schema
2.0.0 (:mod:`~esper_agents.generation.schema`); :mod:`~esper_agents.generation.packs` stores them
(``datasets/PACK_FORMAT.md``); :mod:`~esper_agents.generation.health` checks coverage and
directs the adaptive rounds; :mod:`~esper_agents.generation.exports` turns a pack into a d3rlpy
ReplayBuffer or a Minari dataset.

Nothing is imported here, so ``import esper_agents.generation.health`` stays light::

    from esper_agents.generation.orchestrator import generate, load_spec
    from esper_agents.generation.packs import open_pack, PackError
    from esper_agents.generation.exports import to_d3rlpy, to_minari
"""
