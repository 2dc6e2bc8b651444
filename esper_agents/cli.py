"""The ``esper`` command. Each subcommand lives in its own ``add_*_parser`` function.

Bad command-line values are refused by argparse (usage, then ``esper CMD: error: ...``, exit 2);
an error the library raises for something the user gave (a bad value, a missing file, a bad
pack or saved agent) prints the single line ``esper: error: ...`` and exits 2 as well.

Every name a flag accepts (env ids, presets, fidelities, reward modes, algorithms, backends,
export formats) comes from the library's own registry, read when a value is checked or a
subcommand's help is printed, so ``esper --help`` imports neither torch nor d3rlpy.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence

from esper_agents.cli_options import (
    AGENT_NAMES,
    ALGORITHMS,
    BACKENDS,
    DOWNLOADABLE,
    EXPORT_FORMATS,
    ONLINE_ALGORITHMS,
    POLICY_IDS,
    REWARD_MODES,
    SUITE_NAMES,
    HelpFormatter,
    add_reward_argument,
    check_device,
    device_argument,
    env_arguments,
    env_settings,
    non_negative_int,
    pack_arguments,
    positive_int,
    progress_argument,
    unit_float,
)


def add_episode_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "episode",
        parents=[env_arguments(fidelity=None), device_argument()],
        formatter_class=HelpFormatter,
        help="run one episode of a masked random agent and print its summary",
        description="Run one episode of an agent that WAITs 70% of the time and otherwise takes a uniformly "
        "random legal action, and print the episode's summary as JSON.",
    )
    p.add_argument("--render", action="store_true", help="print the env after every step")
    p.set_defaults(func=run_episode)


def add_health_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "health",
        parents=[pack_arguments(required=True)],
        formatter_class=HelpFormatter,
        help="run the original design's tiered health checks on a pack; exit 1 if a blocking check fails",
        description="Run the dataset health checks on a pack, print every check with its figure and verdict, "
        "and write health.md, health.json and plots into DIR/health/. Exits 1 if a blocking (error) check "
        "fails, 0 otherwise (warnings do not fail).",
    )
    p.add_argument(
        "--out", default=None, metavar="DIR", help="report directory (default: the pack's health/)"
    )
    p.add_argument(
        "--clusters", type=positive_int, default=None, help="k-means clusters (default: min(100, N // 10))"
    )
    p.set_defaults(func=run_health)


def add_train_offline_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-offline",
        parents=[
            pack_arguments(required=True),
            progress_argument(),
            device_argument(default="cpu", what="the learner's"),
        ],
        formatter_class=HelpFormatter,
        help="train an offline agent (cql, iql, bc, rwbc) on a pack",
        description="Train a masked offline agent on a pack's episodes and write the saved agent OUT/agent/ "
        "(agent.json + weights.pt; load it with esper_agents.offline.load_agent), OUT/summary.json and "
        "d3rlpy's logs and checkpoints (saved agents too) in OUT/logs/. Prints a JSON summary.",
    )
    p.add_argument("--algo", required=True, choices=ALGORITHMS, metavar="ALGO",
                   help="one of: %(choices)s (masked discrete CQL, discrete IQL, class-weighted BC, "
                   "reward-weighted BC)")  # fmt: skip
    p.add_argument("--steps", type=positive_int, required=True, help="gradient steps")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--seed", type=int, default=0, help="RNG seed")
    p.add_argument(
        "--steps-per-epoch",
        type=positive_int,
        default=None,
        help="d3rlpy log/checkpoint period (default: min(steps, 1000))",
    )
    p.add_argument(
        "--rwbc-mode",
        choices=("filter", "weight"),
        default="filter",
        help="rwbc: keep the best episodes (option C) or weight them by final accuracy (option A)",
    )
    p.add_argument(
        "--rwbc-quantile", type=unit_float, default=0.5, help="rwbc filter: keep final acc >= this quantile"
    )
    p.add_argument(
        "--rwbc-baseline", type=float, default=None, help="rwbc weight: baseline (default: lowest acc)"
    )
    p.add_argument(
        "--rwbc-scale", type=float, default=None, help="rwbc weight: scale (default: std of accuracies)"
    )
    p.add_argument("--reward-mode", default=None, choices=REWARD_MODES, metavar="MODE",
                   help="relabel the pack's rewards, one of: %(choices)s (default: as logged)")  # fmt: skip
    p.add_argument(
        "--fqe-steps",
        type=non_negative_int,
        default=0,
        help="also estimate the policy's value with DiscreteFQE (0: skip)",
    )
    p.set_defaults(func=run_train_offline)


def add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        parents=[
            env_arguments(fidelity=None),
            device_argument(),
            pack_arguments(required=False, help="also evaluate on this pack's logged states"),
        ],
        formatter_class=HelpFormatter,
        help="run a saved agent (or a behavior policy) in the env with masks and print a JSON summary",
        description="Run N seeded episodes (reset seeds S..S+N-1) and print mean and 95% t-interval of final "
        "validation accuracy, test accuracy and return, the action mix and the illegal-action count. With "
        "--pack, also agreement with the logged actions, action mixes and (--fqe-steps) a DiscreteFQE "
        "estimate.",
    )
    policy = (
        "a saved agent directory (OUT/agent of train-offline), a saved online model (OUT of train-online, or "
        "a model .zip), or a behavior policy name such as 'baseline' (acts greedily); a path that is also a "
        "policy name must be written ./NAME"
    )
    p.add_argument("--policy", required=True, metavar="PATH", help=policy)
    p.add_argument("--episodes", type=positive_int, default=10, help="episodes to run")
    p.add_argument(
        "--fqe-steps",
        type=non_negative_int,
        default=0,
        help="with --pack: DiscreteFQE gradient steps (0: skip)",
    )
    p.add_argument("--reward-mode", default=None, choices=REWARD_MODES, metavar="MODE",
                   help="with --pack: relabel its rewards for FQE, one of: %(choices)s")  # fmt: skip
    p.add_argument("--out", default=None, metavar="FILE", help="also write the JSON summary here")
    p.set_defaults(func=run_evaluate)


def add_train_online_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-online",
        parents=[env_arguments(fidelity=None), device_argument(what="the envs' and the learner's"),
                 progress_argument()],
        formatter_class=HelpFormatter,
        help="train RecurrentPPO, MaskablePPO or the masked recurrent PPO in the env, with checkpoints",
        description="Train an online agent for --steps env steps (all envs together) on --n-envs envs in "
        "subprocesses. OUT gets run.json, checkpoints/ (every --checkpoint-every steps), model.zip, "
        "episodes.csv (one row per episode: the learning curve), tb/ (TensorBoard) and summary.json. Run the "
        "same command again to resume from the last checkpoint (or to extend a finished run to more steps).",
    )  # fmt: skip
    p.add_argument("--algo", required=True, choices=ONLINE_ALGORITHMS, metavar="ALGO",
                   help="online algorithm, one of: %(choices)s")  # fmt: skip
    p.add_argument(
        "--steps", type=positive_int, required=True, help="env steps to train for, all envs together"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="run directory (resumed if it holds this run)")
    p.add_argument(
        "--n-envs", type=positive_int, default=2, help="envs stepped in parallel (one process each)"
    )
    p.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=1000,
        help="checkpoint at the first rollout boundary at or past every multiple of this many env steps",
    )
    p.add_argument("--no-tensorboard", action="store_true", help="no TensorBoard events under OUT/tb")
    p.add_argument("--eval-episodes", type=non_negative_int, default=0,
                   help="then evaluate greedily for this many episodes (0: skip)")  # fmt: skip
    p.add_argument("--eval-seed", type=int, default=1000,
                   help="first reset seed of the evaluation episodes (kept apart from training seeds)")  # fmt: skip
    p.set_defaults(func=run_train_online)


def add_backend_argument(p: argparse.ArgumentParser, what: str) -> None:
    """``--backend`` (generate's and bench's): where the tasks run, a name of ``BACKENDS``."""
    p.add_argument("--backend", choices=BACKENDS, default="local", metavar="NAME",
                   help=f"one of: %(choices)s; {what} (pip install 'esper[ray]')")  # fmt: skip


def add_bench_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        parents=[device_argument(what="the envs' and the learners'"), progress_argument()],
        formatter_class=HelpFormatter,
        help="compare every agent family on one suite (smoke, tiny, full, micro): table, CSV and plot",
        description="Compare every agent family on one env, preset and fidelity: always-WAIT, random and the "
        "heuristic variants; BC, RWBC, CQL and IQL trained on the same pack; MaskablePPO, RecurrentPPO and the "
        "masked recurrent PPO trained for the same env steps (the options algorithms for as many decisions); all evaluated greedily on fixed evaluation seeds "
        "kept apart from the training seeds. OUT gets the pack, the trained agents, one JSON line per "
        "evaluation episode, and results.{md,csv,json,png}. Run the same command again to resume a killed run.",
    )  # fmt: skip
    p.add_argument("--suite", required=True, choices=SUITE_NAMES, metavar="SUITE",
                   help="the suite (env, preset, fidelity, budgets), one of: %(choices)s")  # fmt: skip
    p.add_argument(
        "--out", required=True, metavar="DIR", help="run directory (resumed if it holds this suite)"
    )
    p.add_argument("--results", metavar="DIR", default=None,
                   help="where results.{md,csv,json,png} go (default: OUT)")  # fmt: skip
    add_reward_argument(p, None, " (default: the suite's)")
    p.add_argument("--offline-steps", type=positive_int, default=None, metavar="N",
                   help="gradient steps per offline training run (default: the suite's)")  # fmt: skip
    p.add_argument("--online-steps", type=positive_int, default=None, metavar="N",
                   help="env steps per online training run (default: the suite's)")  # fmt: skip
    p.add_argument("--option-instances", type=positive_int, default=None, metavar="N",
                   help="training instances of the fitted-Q agents' option data (default: the suite's)")  # fmt: skip
    p.add_argument("--eval-episodes", type=positive_int, default=None, metavar="N",
                   help="evaluation episodes, on seeds (and held-out instances) from the suite's first "
                   "(default: the suite's); a run directory keeps its episodes, so a larger N only "
                   "plays the new ones")  # fmt: skip
    p.add_argument("--agents", nargs="+", choices=AGENT_NAMES, metavar="AGENT", default=None,
                   help="run only these agents (default: the suite's), of: %(choices)s")  # fmt: skip
    p.add_argument("--workers", type=positive_int, default=2,
                   help="processes for generation and evaluation episodes (one torch thread each); "
                   "with --backend ray, the CPUs of a local Ray")  # fmt: skip
    add_backend_argument(p, "local: episodes in a spawn process pool, agents trained one after the other "
                         "here; ray: every training run and episode a Ray task, on the cluster at $RAY_ADDRESS "
                         "when set (OUT on a filesystem every node sees)")  # fmt: skip
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: report the agents whose evaluation episodes are all there")  # fmt: skip
    p.set_defaults(func=run_bench)


def add_imitate_classic_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "imitate-classic",
        parents=[env_arguments(fidelity="test"), device_argument(), progress_argument()],
        formatter_class=HelpFormatter,
        help="the original roadmap's phase 1: imitate the heuristic on the classic 4 actions / 27 features",
        description="Run the heuristic for N episodes, log its decisions in the classic view (27-feature "
        "snapshot, WAIT/GERMINATE/ADVANCE/CULL), train class-weighted BC on 80% of the episodes and print "
        "the held-out balanced accuracy, per-class accuracy and confusion matrix (also written to "
        "OUT/phase1.json).",
    )
    p.add_argument("--episodes", type=positive_int, default=40, help="heuristic episodes to log")
    p.add_argument("--steps", type=positive_int, default=3000, help="BC gradient steps")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (model, logs, phase1.json)")
    p.add_argument("--policy", default="baseline", choices=POLICY_IDS, metavar="NAME",
                   help="behavior policy, one of: %(choices)s")  # fmt: skip
    p.set_defaults(func=run_imitate_classic)


def add_generate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        parents=[progress_argument()],
        formatter_class=HelpFormatter,
        help="generate (or resume) a pack of logged episodes from a TOML matrix spec",
        description="Run the behavior policies x environment presets of SPEC (datasets/*.toml), a uniform pass "
        "then adaptive rounds toward the cells behind failed health checks, and write the pack to OUT "
        "(datasets/PACK_FORMAT.md). Rerunning the same command resumes a killed run; another spec into an "
        "existing pack needs --force. Prints the generation throughput at the end.",
    )
    p.add_argument("--spec", required=True, metavar="FILE", help="TOML generation spec")
    p.add_argument("--out", required=True, metavar="DIR", help="pack directory (created, or resumed)")
    p.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="parallel episodes (processes or Ray tasks), one core each",
    )
    add_backend_argument(p, "local: this process or a spawn process pool; ray: ray.remote tasks")
    add_reward_argument(p, None, " (default: the spec's [env] reward)")
    p.add_argument("--force", action="store_true", help="overwrite a pack generated from another spec")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.set_defaults(func=run_generate)


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        parents=[pack_arguments(required=True)],
        formatter_class=HelpFormatter,
        help="export a pack to a d3rlpy ReplayBuffer (.h5) or a Minari dataset",
        description="d3rlpy: ReplayBuffer.dump to OUT (an .h5 file), every transition of truncated episodes kept; "
        "ReplayBuffer.load(f, InfiniteBuffer()) reads it with the true action size (the printed 'load' line "
        "says so, or names esper_agents.generation.exports.load_d3rlpy when every episode terminated). "
        "minari: a dataset under the Minari root OUT; load with MINARI_DATASETS_PATH=OUT and "
        "minari.load_dataset(ID).",
    )
    p.add_argument("--format", required=True, choices=EXPORT_FORMATS, metavar="FORMAT",
                   help="export format, one of: %(choices)s")  # fmt: skip
    p.add_argument(
        "--out", required=True, metavar="PATH", help="d3rlpy: .h5 file; minari: datasets root directory"
    )
    p.add_argument("--reward-mode", choices=REWARD_MODES, default=None, metavar="MODE",
                   help="relabel rewards from the logged components, one of: %(choices)s "
                   "(default: the rewards as logged)")  # fmt: skip
    p.add_argument("--dataset-id", default=None, help="minari: dataset id (default: esper/<pack name>-v0)")
    p.add_argument(
        "--append-mask", action="store_true", help="d3rlpy: append the action mask to observations"
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing export")
    p.set_defaults(func=run_export)


def add_validate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate",
        parents=[pack_arguments(required=True)],
        formatter_class=HelpFormatter,
        help="replay a pack's episodes and check that every observation and reward matches; exit 1 if not",
        description="Rerun logged episodes from their reset seeds with their logged actions, in the env the "
        "pack's spec describes and under the torch thread count it recorded, and compare every observation, "
        "mask, reward and end flag with the log, bit for bit. Prints one line per episode and exits 1 if any "
        "differs.",
    )
    p.add_argument("--episodes", type=positive_int, default=None,
                   help="replay the first N episodes, by id (default: all)")  # fmt: skip
    p.set_defaults(func=run_validate)


def add_download_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "download",
        formatter_class=HelpFormatter,
        help="download CIFAR-10 or CIFAR-100 through torchvision (needs internet)",
        description="Download a CIFAR dataset through torchvision and split it as the env does.",
    )
    # metavar: a positional with choices would list them when added, importing torch for every command.
    p.add_argument("dataset", choices=DOWNLOADABLE, metavar="DATASET",
                   help="a dataset read from files (esper_env.datasets.DOWNLOADABLE; a bad name lists them)")  # fmt: skip
    p.add_argument(
        "--data-dir", default=None, help="target directory (default: $ESPER_DATA_DIR or ~/.cache/esper)"
    )
    p.set_defaults(func=run_download)


def run_episode(args: argparse.Namespace) -> int:
    from esper_agents.common.agents import RandomAgent
    from esper_agents.common.rollout import Step
    from esper_agents.common.rollout import run_episode as play
    from esper_env.wrappers import CompactActions

    env = CompactActions(env_settings(args).make(render_mode="ansi" if args.render else None))

    def render(step: Step) -> None:
        print(env.describe(step.action), f"reward={step.reward:+.3f}")
        print(env.render())

    # WAIT most of the time, otherwise a uniformly random legal action.
    episode = play(env, RandomAgent(wait_prob=0.7), seed=args.seed, on_step=render if args.render else None)
    info = episode.infos[-1]
    keys = ("termination_reason", "final_val_accuracy", "best_val_accuracy", "test_accuracy", "host_params",
            "seed_params", "seeds_created", "seeds_fossilized", "seeds_pruned", "episode_return", "episode_length")  # fmt: skip
    summary = {k: info[k] for k in keys} | ({"instance": info["instance"]} if "instance" in info else {})
    print(json.dumps(summary, indent=2))
    return 0


def run_health(args: argparse.Namespace) -> int:
    from pathlib import Path

    from esper_agents.generation.health.report import check_pack

    out = Path(args.out) if args.out else Path(args.pack) / "health"
    return check_pack(args.pack, out, n_clusters=args.clusters, partial=args.partial)


def run_train_offline(args: argparse.Namespace) -> int:
    from esper_agents.offline.commands import train_offline_command

    return train_offline_command(args)


def run_evaluate(args: argparse.Namespace) -> int:
    from esper_agents.online.commands import evaluate_online_command, is_online_model

    if is_online_model(args.policy):
        return evaluate_online_command(args)
    from esper_agents.offline.commands import evaluate_command

    return evaluate_command(args)


def run_train_online(args: argparse.Namespace) -> int:
    from esper_agents.online.commands import train_online_command

    return train_online_command(args)


def run_bench(args: argparse.Namespace) -> int:
    from esper_agents.bench.commands import bench_command

    return bench_command(args)


def run_imitate_classic(args: argparse.Namespace) -> int:
    from esper_agents.offline.commands import imitate_classic_command

    return imitate_classic_command(args)


def run_generate(args: argparse.Namespace) -> int:
    from esper_agents.generation.commands import generate_command

    return generate_command(args)


def run_export(args: argparse.Namespace) -> int:
    from esper_agents.generation.commands import export_command

    return export_command(args)


def run_validate(args: argparse.Namespace) -> int:
    from esper_agents.generation.commands import validate_command

    return validate_command(args)


def run_download(args: argparse.Namespace) -> int:
    from esper_env.data import load_dataset

    splits = load_dataset(args.dataset, "full", data_dir=args.data_dir, download=True)
    print(f"{args.dataset}: {len(splits.train_y):,} train, {len(splits.val_y):,} validation, "
          f"{len(splits.test_y):,} test images ready")  # fmt: skip
    return 0


def version() -> str:
    """The installed ``esper`` distribution's version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as distribution_version

    try:
        return distribution_version("esper")
    except PackageNotFoundError:
        return "unknown (the esper distribution is not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="esper", description="Esper: grow neural networks with RL.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}",
                        help="print the esper version and exit")  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help="the subcommand")
    add_episode_parser(sub)
    add_health_parser(sub)
    add_train_offline_parser(sub)
    add_train_online_parser(sub)
    add_evaluate_parser(sub)
    add_bench_parser(sub)
    add_imitate_classic_parser(sub)
    add_generate_parser(sub)
    add_export_parser(sub)
    add_validate_parser(sub)
    add_download_parser(sub)
    return parser


def user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean the user gave something wrong (each message names it)."""
    import gymnasium

    from esper_agents.generation.packs import PackError

    return ValueError, OSError, PackError, gymnasium.error.Error


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["esper", *argv])  # what a result's provenance header records
    try:
        check_device(getattr(args, "device", None))
        return int(args.func(args) or 0)
    except user_errors() as err:  # evaluated only when something was raised
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
