"""The original roadmap's results table: offline agents trained on one pack, next to the heuristic and WAIT.

    esper generate --spec datasets/offline-tiny.toml --out runs/offline-tiny --workers 2
    python benchmarks/offline_comparison.py --pack runs/offline-tiny [--steps 3000] [--seeds 5]
                                            [--fqe-steps 3000] [--config PRESET] [--algos cql iql bc rwbc]
                                            [--out DIR]

For each algorithm (masked DiscreteCQL, discrete IQL, class-weighted BC, reward-weighted BC) it
trains on the whole pack, then reports:

* agreement: the share of logged states where the agent's greedy action equals the logged one;
* the agent's action mix (share of each op over the logged states; the behavior's mix is the
  first row);
* FQE: d3rlpy's DiscreteFQE estimate of the agent's discounted return from the initial states,
  beside the behavior's own Monte Carlo return (same gamma);
* in-env: final validation accuracy, mean and 95% t-interval over ``--seeds`` episodes (reset
  seeds ``--eval-seed ..``) in the pack's own environment (id, fidelity, episode length, slots,
  reward) with preset ``--config`` (default: the pack's only preset), and the number of illegal
  actions the agent chose.

The greedy baseline heuristic and always-WAIT run on the same seeds, so differences are paired.
Everything goes to OUT/offline_comparison.json; the markdown table is printed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from esper_agents.cli_options import add_results_argument
from esper_agents.common.evaluation import action_mix, action_names, evaluate_in_env, make_eval_env
from esper_agents.offline.algorithms import ALGORITHMS
from esper_agents.offline.commands import behavior_agent
from esper_agents.offline.datasets import build_replay_buffer, dataset_arrays, load_pack
from esper_agents.offline.evaluate import fqe_estimate
from esper_agents.offline.train import train_offline
from esper_env.settings import EnvSettings

OPS = ("WAIT", "GERMINATE", "ADVANCE", "SET_ALPHA_TARGET", "PRUNE", "FOSSILIZE")


def dataset_agreement(agent: Any, buffer: Any, n_actions: int) -> dict[str, Any]:
    """Agreement and action mix of a non-d3rlpy agent (heuristic, WAIT) on the logged states."""
    data = dataset_arrays(buffer)
    predicted = np.asarray(agent(data["observations"]), dtype=np.int64)
    return {
        "agreement": float(np.mean(predicted == data["actions"])),
        "action_mix": action_mix(predicted, action_names(n_actions)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    parser.add_argument(
        "--pack", required=True, metavar="DIR", help="a generation pack (esper generate --out DIR)"
    )
    parser.add_argument(
        "--algos", nargs="+", default=list(ALGORITHMS), choices=ALGORITHMS, help="algorithms to train"
    )
    parser.add_argument("--steps", type=int, default=3000, help="gradient steps per algorithm")
    parser.add_argument("--fqe-steps", type=int, default=3000, help="DiscreteFQE gradient steps per agent")
    parser.add_argument("--seeds", type=int, default=5, help="evaluation episodes per agent")
    parser.add_argument("--eval-seed", type=int, default=1000, help="first reset seed of the evaluation")
    parser.add_argument("--train-seed", type=int, default=0, help="RNG seed of the training")
    parser.add_argument("--config", default=None, help="evaluation preset (default: the pack's only one)")
    parser.add_argument("--models", type=Path, default=None, help="where to keep the models (default: temp)")
    add_results_argument(parser, Path(__file__).parent)
    args = parser.parse_args()
    if args.seeds < 2:
        parser.error(f"--seeds must be >= 2 for a confidence interval, got {args.seeds}")

    records, source = load_pack(args.pack)
    buffer = build_replay_buffer(records)
    n_actions = records[0].n_actions
    env_info = source["environment"]
    pack_configs = sorted({str(r.info["config_id"]) for r in records})
    if args.config is None:
        if len(pack_configs) != 1:
            parser.error(f"the pack holds several configs {pack_configs}: choose one with --config")
        args.config = pack_configs[0]
    env_kwargs = {
        "fidelity": env_info["fidelity"],
        "max_epochs": env_info["max_epochs"],
        "num_slots": env_info["num_slots"],
        "reward": env_info["reward"]["mode"],
        "config": args.config,
        "device": "cpu",
    }
    env = make_eval_env(EnvSettings(env_info["env_id"], **env_kwargs), "compact")
    print(f"pack {args.pack}: {len(records)} episodes, {source['transitions']} transitions; "
          f"evaluating on {env_info['env_id']} {env_kwargs}", flush=True)  # fmt: skip
    models = args.models or Path(tempfile.mkdtemp(prefix="esper-offline-"))

    rows: list[dict[str, Any]] = []

    def add(name: str, agent: Any, dataset: dict[str, Any], fqe: dict[str, Any] | None, extra: dict) -> None:
        t0 = time.perf_counter()
        in_env = evaluate_in_env(agent, env, args.seeds, seed=args.eval_seed)
        rows.append({"agent": name, "dataset": dataset, "fqe": fqe, "env": in_env,
                     "eval_seconds": time.perf_counter() - t0, **extra})  # fmt: skip
        acc = in_env["final_val_accuracy"]
        print(f"{name:<10} agreement {dataset['agreement']:.3f}  final acc {acc['mean']:.3f} "
              f"± {acc['half_width']:.3f}  illegal {in_env['illegal_actions']}  "
              f"({rows[-1]['eval_seconds']:.0f} s)", flush=True)  # fmt: skip

    wait = lambda obs: np.zeros(len(np.atleast_2d(obs)), dtype=np.int64)
    heuristic = behavior_agent("baseline", env)
    add("WAIT", wait, dataset_agreement(wait, buffer, n_actions), None, {})
    add("heuristic", heuristic, dataset_agreement(heuristic, buffer, n_actions), None, {})
    for algo in args.algos:
        result = train_offline(algo, records, args.steps, models / algo, seed=args.train_seed,
                               show_progress=False, source=source)  # fmt: skip
        metrics = result.summary["train_metrics"]  # agreement and mixes on every logged state
        fqe = fqe_estimate(result.algo, buffer, args.fqe_steps, seed=args.train_seed)
        add(algo, result.algo.predict, metrics, fqe,
            {"train_seconds": result.summary["seconds"], "model": result.model_path})  # fmt: skip
    env.close()

    behavior_mix = action_mix(dataset_arrays(buffer)["actions"], action_names(n_actions))
    table = markdown(rows, behavior_mix)
    print("\n" + table)
    settings = {
        "pack": source,
        "env_kwargs": env_kwargs,
        "eval_seeds": list(range(args.eval_seed, args.eval_seed + args.seeds)),
        "steps": args.steps,
        "fqe_steps": args.fqe_steps,
        "train_seed": args.train_seed,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "offline_comparison.json").write_text(json.dumps(
        {"settings": settings, "behavior_action_mix": behavior_mix, "rows": rows, "table": table},
        indent=2, default=str) + "\n")  # fmt: skip


def markdown(rows: list[dict[str, Any]], behavior_mix: dict[str, float]) -> str:
    def mix(m: dict[str, float]) -> str:
        return " / ".join(f"{m.get(op, 0.0):.0%}" for op in OPS)

    lines = [
        (
            "| agent | agreement with behavior | action mix (W / G / A / S / P / F) | FQE value (behavior MC) "
            "| final val acc (95% CI) | illegal |"
        ),
        "|---|---:|---|---:|---:|---:|",
        f"| behavior (pack) | - | {mix(behavior_mix)} | - | - | - |",
    ]
    for r in rows:
        fqe = "-"
        if r["fqe"] is not None:
            fqe = f"{r['fqe']['initial_value']:.3f} ({r['fqe']['behavior_initial_return']:.3f})"
        acc = r["env"]["final_val_accuracy"]
        lo, hi = acc["ci95"]
        lines.append(
            f"| {r['agent']} | {r['dataset']['agreement']:.1%} | {mix(r['dataset']['action_mix'])} | {fqe} "
            f"| {acc['mean']:.1%} [{lo:.1%}, {hi:.1%}] | {r['env']['illegal_actions']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
