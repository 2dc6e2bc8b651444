"""The benchmark that compares algorithms: ``esper bench --suite smoke|tiny|full|micro --out DIR``.

:mod:`~esper_agents.bench.suites` defines the suites and agents (``SUITES``, ``BENCH_AGENTS``),
:func:`esper_agents.bench.runner.run_bench` runs one resumably, and
:mod:`~esper_agents.bench.report` writes its table, CSV and plot. Nothing is imported here, so
that ``esper --help`` stays free of torch and d3rlpy.
"""
