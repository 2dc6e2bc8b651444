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
    budgets = {
        "offline_steps": args.offline_steps,
        "online_steps": args.online_steps,
        "option_instances": args.option_instances,
        "eval_episodes": args.eval_episodes,
    }
    suite = dataclasses.replace(suite, **{k: v for k, v in budgets.items() if v is not None})
    if args.agents:  # the suite's order, then any other agent asked for (a bad name is refused by the suite)
        wanted = dict.fromkeys(args.agents)
        agents = (*(a for a in suite.agents if a in wanted), *(a for a in wanted if a not in suite.agents))
        suite = dataclasses.replace(suite, agents=agents)
    command = getattr(args, "command_line", None)
    run_bench(suite, args.out, workers=args.workers, backend=args.backend, device=args.device, progress=not args.no_progress,
              report_only=args.report_only, results=args.results, command=command)  # fmt: skip
    return 0
