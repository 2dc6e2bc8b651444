"""Data generation: behavior policies x environment presets -> packs of logged episodes.

Pipeline (the original design), one module per job:

* :mod:`~esper_agents.generation.spec` reads and validates a TOML matrix spec (``datasets/*.toml``);
* :mod:`~esper_agents.generation.planning` turns it into episodes (ids, seeds, epsilons, adaptive
  targets) and orders them;
* :mod:`~esper_agents.generation.orchestrator` runs the plan round by round (:func:`generate`) on a
  backend of :mod:`~esper_agents.generation.backends` (a process pool or Ray);
* :mod:`~esper_agents.generation.collector` runs one episode and logs the data schema 2.1.0
  (:mod:`~esper_agents.generation.schema`);
* :mod:`~esper_agents.generation.packs` reads packs (``datasets/PACK_FORMAT.md``),
  :mod:`~esper_agents.generation.pack_writer` writes them, with the provenance tables of
  :mod:`~esper_agents.generation.provenance`, and :mod:`~esper_agents.generation.validation` checks
  an episode against its header;
* :mod:`~esper_agents.generation.health` checks coverage and directs the adaptive rounds;
* :mod:`~esper_agents.generation.exports` turns a pack into a d3rlpy ReplayBuffer or a Minari
  dataset, and :mod:`~esper_agents.generation.replay` replays episodes bit for bit
  (``esper validate``); :mod:`~esper_agents.generation.commands` holds the CLI side.

Nothing is imported here, so ``import esper_agents.generation.health.checks`` stays light::

    from esper_agents.generation.orchestrator import generate
    from esper_agents.generation.spec import load_spec
    from esper_agents.generation.packs import open_pack, PackError
    from esper_agents.generation.exports import to_d3rlpy, to_minari
"""
