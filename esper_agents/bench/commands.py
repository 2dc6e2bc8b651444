"""``esper bench`` (and ``benchmarks/compare_algorithms.py``): the command; its flags are in ``esper_agents.cli``."""

from __future__ import annotations

import argparse
import dataclasses

__all__ = ["bench_command"]


def bench_command(args: argparse.Namespace) -> int:
    from esper_agents.bench.runner import run_bench
    from esper_agents.bench.suites import get_suite

    suite = get_suite(args.suite)
    if args.reward is not None:
        suite = dataclasses.replace(suite, settings=suite.settings.replace(reward=args.reward))
    if args.agents:
        suite = dataclasses.replace(suite, agents=tuple(a for a in suite.agents if a in set(args.agents)))
    run_bench(suite, args.out, workers=args.workers, backend=args.backend, device=args.device, progress=not args.no_progress,
              report_only=args.report_only, results=args.results)  # fmt: skip
    return 0
