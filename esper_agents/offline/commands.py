"""What ``esper train-offline`` and ``esper evaluate`` run (their parsers live in esper_agents.cli)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from esper_agents.cli_options import env_settings, torch_device
from esper_agents.common.agents import Agent, behavior_agent
from esper_agents.offline.datasets import load_pack

__all__ = [
    "evaluate_command",
    "imitate_classic_command",
    "resolve_policy",
    "train_offline_command",
]


def _logs_to_stderr() -> None:
    """d3rlpy logs through structlog to stdout; the commands print JSON there, so move the logs."""
    import d3rlpy  # noqa: F401  (its import configures structlog; reconfigure after it)
    import structlog

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=_Stderr()))


class _Stderr:
    """Whatever ``sys.stderr`` is at write time (it may be swapped after configuration)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def train_offline_command(args: argparse.Namespace) -> int:
    from esper_agents.offline.train import train_offline

    _logs_to_stderr()
    if os.path.isfile(args.out):
        raise ValueError(f"--out {args.out} is a file; train-offline writes a directory")
    records, source = load_pack(args.pack, reward_mode=args.reward_mode, partial=args.partial)
    result = train_offline(
        args.algo, records, args.steps, args.out, seed=args.seed, n_steps_per_epoch=args.steps_per_epoch,
        rwbc_mode=args.rwbc_mode, rwbc_quantile=args.rwbc_quantile, rwbc_baseline=args.rwbc_baseline,
        rwbc_scale=args.rwbc_scale, show_progress=not args.no_progress, source=source,
        device=torch_device(args.device),
    )  # fmt: skip
    summary = result.summary
    if args.fqe_steps > 0:
        from esper_agents.offline.datasets import build_replay_buffer
        from esper_agents.offline.evaluate import fqe_estimate

        summary["fqe"] = fqe_estimate(
            result.algo,
            build_replay_buffer(records),
            args.fqe_steps,
            seed=args.seed,
            show_progress=not args.no_progress,
        )
        with open(os.path.join(args.out, "summary.json"), "w") as f:
            json.dump(summary, f, indent=2)
    brief = {k: summary[k] for k in ("algo", "steps", "episodes", "transitions", "model", "seconds")}
    metrics = summary["train_metrics"]
    brief.update(
        agreement=metrics["agreement"],
        balanced_accuracy=metrics["balanced_accuracy"],
        action_mix=metrics["action_mix"],
    )
    if "fqe" in summary:
        brief["fqe"] = summary["fqe"]
    print(json.dumps(brief, indent=2))
    return 0


def resolve_policy(value: str) -> tuple[str, str]:
    """``("policy", name)`` for a built-in behavior policy, ``("agent", path)`` for a saved agent.

    A built-in name always means the built-in policy; a value that is both a built-in name and
    an existing path is ambiguous and refused (write ``./NAME`` for the path). Any other value
    is the path of a saved agent directory.
    """
    from esper_agents.policies import POLICY_IDS

    if value in POLICY_IDS:
        if os.path.lexists(value):
            raise ValueError(
                f"--policy {value!r} is both a built-in behavior policy and a path in the current directory; "
                f"write --policy ./{value} for the saved agent, or run from another directory for the policy"
            )
        return "policy", value
    if not os.path.lexists(value):
        raise ValueError(
            f"--policy {value!r} is neither a saved agent directory nor a behavior policy; behavior policies "
            f"are: {', '.join(POLICY_IDS)}"
        )
    return "agent", agent_dir(value)


def agent_dir(value: str) -> str:
    """The saved agent of ``value``: the directory itself, or ``agent/`` inside a train-offline run
    directory (``runs/cql`` as well as ``runs/cql/agent``)."""
    from esper_agents.offline.saved import AGENT_FILE
    from esper_agents.offline.train import AGENT_DIR

    inner = os.path.join(value, AGENT_DIR)
    if os.path.isdir(value) and not os.path.lexists(os.path.join(value, AGENT_FILE)) and os.path.isdir(inner):
        return inner
    return value


def evaluate_command(args: argparse.Namespace) -> int:
    from esper_agents.common.evaluation import evaluate_in_env, make_eval_env
    from esper_agents.offline.evaluate import agent_action_set, check_agent_fits, evaluate_on_dataset
    from esper_agents.offline.saved import load_agent

    _logs_to_stderr()
    settings = env_settings(args)
    kind, target = resolve_policy(args.policy)
    if args.pack is not None and kind != "agent":
        raise ValueError("--pack needs a saved agent as --policy")
    if args.out is not None and os.path.isdir(args.out):
        raise ValueError(f"--out {args.out} is a directory; evaluate writes its JSON summary to a file")
    records = None
    if args.pack is not None:
        records = load_pack(args.pack, reward_mode=args.reward_mode, partial=args.partial)[0]
    algo = None
    if kind == "agent":
        algo = load_agent(target)
        env = make_eval_env(settings, agent_action_set(algo))
        check_agent_fits(algo, env)
        agent: Agent = algo.predict
        description = "saved agent"
    else:
        env = make_eval_env(settings, "compact")
        agent = behavior_agent(target, env)
        description = "behavior policy (greedy)"
    summary: dict[str, Any] = {
        "policy": args.policy,
        "kind": description,
        "settings": settings.to_dict(),
        **evaluate_in_env(agent, env, args.episodes, seed=args.seed),
    }
    env.close()
    if records is not None:
        from esper_agents.offline.datasets import build_replay_buffer

        summary["dataset"] = {
            "pack": args.pack,
            **evaluate_on_dataset(
                algo, build_replay_buffer(records), fqe_steps=args.fqe_steps, fqe_seed=args.seed
            ),
        }
    text = json.dumps(summary, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0


def imitate_classic_command(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from esper_agents.offline.classic import collect_classic_episodes, reproduce_phase1

    _logs_to_stderr()
    settings = env_settings(args)
    bar = tqdm(total=args.episodes, desc=f"{args.policy} episodes", disable=args.no_progress)
    records = collect_classic_episodes(
        args.episodes, settings, policy=args.policy, seed=args.seed, progress=lambda i: bar.update(1)
    )  # fmt: skip
    bar.close()
    report = reproduce_phase1(
        records, n_steps=args.steps, out=args.out, seed=args.seed, show_progress=not args.no_progress
    )
    report.pop("train_summary")
    report.update(policy=args.policy, settings=settings.to_dict(), episodes=args.episodes, steps=args.steps)
    text = json.dumps(report, indent=2)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "phase1.json"), "w") as f:
        f.write(text + "\n")
    print(text)
    return 0
