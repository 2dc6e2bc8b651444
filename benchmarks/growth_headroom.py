"""Does growth pay? Scripted growth schedules against always-WAIT, paired on the same reset seeds.

    python benchmarks/growth_headroom.py [--config impaired baseline] [--seeds 5] [--fidelity tiny]
        [--max-epochs 25] [--schedules NAME ...] [--sweep-seeds 3] [--seed-lr-multiplier M]
        [--workers 2] [--out DIR] [--tag TAG]

Every schedule is a fixed rule run through the public API (``gymnasium.make`` and the factored
action), on reset seeds 0..N-1, next to always-WAIT on the same seeds: the same seed gives the
same host initialisation and data order, so differences to WAIT are paired. The schedules:

* ``wait``: never grow (the preset's host with no growth).
* ``now:<blueprint>``: grow-now, germinate the blueprint in every slot as early as legal, advance
  as soon as each gate allows (FAST tempo), fossilize when legal. Every blueprint is swept (on
  ``--sweep-seeds`` seeds); the capacity blueprints run on all seeds.
* ``now:<blueprint>@<slot>``: the same in one slot only; ``from<E>:<blueprint>``: the same, no
  seed before epoch E (timing).
* ``hold-then-prune:<blueprint>``: grow-now but never fossilize, prune every seed from epoch 20
  (MEDIUM ramp: an agent that loses its nerve); ``prune-at-23:<blueprint>@0``: the best schedule
  but the seed is held, not fossilized, and pruned at once at epoch 23 (an agent that dodges the
  rent on the final size); ``churn:<blueprint>``: germinate in slot 0, prune the seed as soon as
  it is HOLDING, again and again: schedules that should hurt.
* ``heuristic:<policy>``: a behavior policy of ``esper_agents.policies`` acting greedily through
  ``CompactActions`` (``capacity``, the benchmarks' default heuristic, and the original design's ``baseline``).
* ``static-x<size>``: a static host of the preset's architecture scaled to the parameter count of
  a grown network, trained from scratch (the width growth tries to reach).

Prints a markdown table (final val accuracy, paired delta vs WAIT with its 95% t-interval, the
benchmark score ``final acc - 0.03 log2(size ratio)``, size ratio, seeds fossilized) and writes
``growth_headroom[_TAG].{json,md,png}`` under ``--out`` (the PNG: mean validation accuracy per
epoch for each schedule). Episodes are cached one JSON line each in
``growth_headroom[_TAG].episodes.jsonl``, so a killed run resumes where it stopped, and
``--report-only`` reports what a partial run has so far (each row says how many seeds it has).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import esper_env  # noqa: F401  (registers the env ids)
from esper_agents.cli_options import add_results_argument
from esper_agents.common.stats import mean_ci
from esper_agents.policies import DEFAULT_HEURISTIC, get_policy
from esper_env.blueprints import BLUEPRINTS, NOOP_BLUEPRINT, ORIGINAL_BLUEPRINTS
from esper_env.configs import ENVIRONMENT_CONFIGS, FIDELITIES, EnvironmentConfig, get_config
from esper_env.hosts import HOST_SPECS, build_host, count_parameters, register_host
from esper_env.lifecycle import AlphaSpeed, Op, Stage, Tempo
from esper_env.rewards import DEFAULT_RENT_WEIGHT, REWARD_MODES, benchmark_score, relabel
from esper_env.spaces import FactoredAction
from esper_env.wrappers import CompactActions

ENV_ID = "Esper-SynthCIFAR-v1"
CAPACITY_BLUEPRINTS = tuple(b for b in BLUEPRINTS if b not in ORIGINAL_BLUEPRINTS)
REAL_BLUEPRINTS = tuple(b for b in BLUEPRINTS if b != NOOP_BLUEPRINT)


@dataclass(frozen=True)
class Schedule:
    """One scripted rule. ``kind``: wait, grow, hold-then-prune, churn, heuristic or static."""

    name: str
    kind: str
    blueprint: str | None = None
    slots: tuple[int, ...] = (0, 1, 2)
    start: int = 0
    size: float = 1.0  # static hosts: parameters / the preset's host parameters
    prune_at: int = 20  # hold-then-prune: first epoch of the prunes
    prune_speed: AlphaSpeed = AlphaSpeed.MEDIUM


def _grow(blueprint: str, slots: tuple[int, ...] = (0, 1, 2), start: int = 0) -> Schedule:
    where = "" if slots == (0, 1, 2) else "@" + "".join(map(str, slots))
    when = "now" if start == 0 else f"from{start}"
    return Schedule(f"{when}:{blueprint}{where}", "grow", blueprint, slots, start)


def schedules_for(config: str) -> list[Schedule]:
    """The default schedule list of a preset (the sweep first, then timing, slots and harm)."""
    out = [Schedule("wait", "wait")]
    out += [_grow(b) for b in REAL_BLUEPRINTS]
    out += [_grow("widen_4x", (s,)) for s in (0, 1, 2)]
    out += [_grow("widen_4x", (0,), start=e) for e in (5, 10, 15)]
    out += [Schedule("hold-then-prune:widen_4x", "hold-then-prune", "widen_4x")]
    out += [Schedule("prune-at-23:widen_4x@0", "hold-then-prune", "widen_4x", (0,), prune_at=23,
                     prune_speed=AlphaSpeed.INSTANT)]  # fmt: skip
    out += [Schedule("churn:widen_4x", "churn", "widen_4x", (0,))]
    out += [Schedule(f"heuristic:{p}", "heuristic", p) for p in (DEFAULT_HEURISTIC, "baseline")]
    if config != "impaired":  # a wider host trains 4-16x slower per seed: the main lines only
        out = [
            s
            for s in out
            if s.name in ("wait", "now:conv_heavy", "now:widen_4x@0", f"heuristic:{DEFAULT_HEURISTIC}")
        ]
    return out


# ---------------------------------------------------------------------------------------- episodes


def _action(env: Any, s: Schedule, epoch: int) -> FactoredAction:
    """The schedule's action now, from the env's exact legality."""
    legal = env.legal_actions()
    if s.kind in ("wait", "static"):
        return FactoredAction(Op.WAIT, 0)
    stages = [slot.stage for slot in env.engine.slots]
    if s.kind == "hold-then-prune" and epoch >= s.prune_at:
        for k in s.slots:
            if legal[Op.PRUNE, k]:
                return FactoredAction(Op.PRUNE, k, alpha_speed=s.prune_speed)
        return FactoredAction(Op.WAIT, 0)
    for k in s.slots:
        if legal[Op.ADVANCE, k]:
            return FactoredAction(Op.ADVANCE, k)
        if s.kind == "churn" and stages[k] == Stage.HOLDING:
            return FactoredAction(Op.PRUNE, k)
        if s.kind == "grow" and legal[Op.FOSSILIZE, k]:
            return FactoredAction(Op.FOSSILIZE, k)
    if epoch >= s.start and not (s.kind == "hold-then-prune" and epoch >= s.prune_at - 5):
        assert s.blueprint is not None
        for k in s.slots:
            if legal[Op.GERMINATE, k]:
                return FactoredAction(
                    Op.GERMINATE, k, blueprint=BLUEPRINTS.index(s.blueprint), tempo=Tempo.FAST
                )
    return FactoredAction(Op.WAIT, 0)


def _cnn_parameters(channels: tuple[int, ...], num_classes: int) -> int:
    """Parameters of a conv3x3-BN block stack with a linear head (HostCNN's kind)."""
    n, c_in = 0, 3
    for c in channels:
        n += 9 * c_in * c + 2 * c
        c_in = c
    return n + c_in * num_classes + num_classes


def scaled_host(architecture: str, size: float, num_classes: int = 10) -> str:
    """Register (once) and name a CNN host like ``architecture``, ``size`` x its parameters wide."""
    spec = HOST_SPECS[architecture]
    if spec.kind != "cnn":
        raise ValueError(f"static references need a CNN host, {architecture!r} is a {spec.kind}")
    target = size * _cnn_parameters(spec.channels, num_classes)
    widths = (tuple(max(1, round(c * m)) for c in spec.channels) for m in np.linspace(1.0, 8.0, 1401))
    channels = min(widths, key=lambda ch: abs(_cnn_parameters(ch, num_classes) - target))
    name = f"{architecture}-x{size:.2f}"
    register_host(name, replace(spec, channels=channels))
    assert count_parameters(build_host(name, num_classes)) == _cnn_parameters(channels, num_classes)
    return name


def run_episode(
    config: str, schedule: Schedule, seed: int, fidelity: str, max_epochs: int, seed_lr: float | None
) -> dict:
    torch.set_num_threads(1)
    cfg: EnvironmentConfig = get_config(config)
    if seed_lr is not None:
        cfg = replace(cfg, seed_lr_multiplier=seed_lr)
    if schedule.kind == "static":
        cfg = replace(cfg, architecture=scaled_host(cfg.architecture, schedule.size))
    env = gym.make(ENV_ID, config=cfg, fidelity=fidelity, max_epochs=max_epochs, device="cpu", num_threads=1)
    base = env.unwrapped
    policy = None
    if schedule.kind == "heuristic":
        env = CompactActions(env)
        policy = get_policy(schedule.blueprint, epsilon=0.0, env=env)
    obs, info = env.reset(seed=seed)
    curve: list[float] = []
    actions: list[str] = []
    returns = dict.fromkeys(REWARD_MODES, 0.0)  # the undiscounted return under every reward mode
    t0 = time.perf_counter()
    done = False
    while not done:
        if policy is not None:
            action: Any = int(np.argmax(policy.greedy_probs(obs, info["action_mask"])))
            a = env.actions[action]
        else:
            a = _action(base, schedule, int(info["epoch"]))
            action = a.to_array()
        if a.op != Op.WAIT:
            actions.append(f"{Op(a.op).name}({a.slot})@{info['epoch']}")
        obs, _, terminated, truncated, info = env.step(action)
        curve.append(float(info["val_accuracy"]))
        for mode in REWARD_MODES:
            returns[mode] += float(relabel(info["reward_components"], mode))
        done = terminated or truncated
    env.close()
    total = info["host_params"] + info["seed_params"]
    reference = count_parameters(build_host(get_config(config).architecture, 10))
    size = total / reference  # static hosts are measured against the preset's own host
    return {
        "config": config,
        "schedule": schedule.name,
        "seed": seed,
        "final_val_accuracy": info["final_val_accuracy"],
        "test_accuracy": info["test_accuracy"],
        "size_ratio": size,
        "score": benchmark_score(info["final_val_accuracy"], total, reference),
        "seeds_created": info["seeds_created"],
        "seeds_fossilized": info["seeds_fossilized"],
        "seeds_pruned": info["seeds_pruned"],
        "termination_reason": info["termination_reason"],
        "returns": returns,
        "val_accuracy_curve": curve,
        "actions": actions,
        "seconds": time.perf_counter() - t0,
    }


# ---------------------------------------------------------------------------------------- summary


def summarise(episodes: list[dict], config: str) -> list[dict]:
    """One row per schedule of ``config``: means with 95% t-intervals, paired deltas vs WAIT."""
    here = [e for e in episodes if e["config"] == config]
    wait = {e["seed"]: e for e in here if e["schedule"] == "wait"}
    rows = []
    for name in dict.fromkeys(e["schedule"] for e in here):
        eps = sorted((e for e in here if e["schedule"] == name), key=lambda e: e["seed"])
        row: dict[str, Any] = {"config": config, "schedule": name, "seeds": [e["seed"] for e in eps]}
        for key in (
            "final_val_accuracy",
            "test_accuracy",
            "score",
            "size_ratio",
            "seeds_fossilized",
            "seeds_pruned",
        ):
            row[key] = mean_ci([e[key] for e in eps])
        paired = [e for e in eps if e["seed"] in wait]
        if name != "wait" and paired:
            row["delta_vs_wait"] = mean_ci(
                [e["final_val_accuracy"] - wait[e["seed"]]["final_val_accuracy"] for e in paired]
            )
            row["score_delta_vs_wait"] = mean_ci([e["score"] - wait[e["seed"]]["score"] for e in paired])
        row["seconds_per_episode"] = float(np.mean([e["seconds"] for e in eps]))
        rows.append(row)
    return rows


def _pct(s: dict, signed: bool = False) -> str:
    lo, hi = s["ci95"]
    head = f"{100 * s['mean']:+.1f}" if signed else f"{100 * s['mean']:.1f}%"
    return f"{head} ({100 * lo:+.1f} to {100 * hi:+.1f})" if signed else head


def markdown(rows: list[dict]) -> str:
    lines = [
        (
            "| config | schedule | n | final val acc | paired delta vs WAIT, points (95% CI) | score "
            "| score delta vs WAIT | size vs host | fossilized | pruned |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        delta = _pct(r["delta_vs_wait"], signed=True) if "delta_vs_wait" in r else "-"
        sdelta = _pct(r["score_delta_vs_wait"], signed=True) if "score_delta_vs_wait" in r else "-"
        lines.append(
            f"| {r['config']} | `{r['schedule']}` | {len(r['seeds'])} | {_pct(r['final_val_accuracy'])} | {delta} "
            f"| {100 * r['score']['mean']:.1f} | {sdelta} | {r['size_ratio']['mean']:.2f}x "
            f"| {r['seeds_fossilized']['mean']:.1f} | {r['seeds_pruned']['mean']:.1f} |"
        )
    return "\n".join(lines)


def findings(rows: list[dict]) -> dict[str, Any]:
    """The issue's must-show figures for one preset, computed from its rows."""
    grown = [
        r
        for r in rows
        if r["schedule"] != "wait" and not r["schedule"].startswith("static") and "delta_vs_wait" in r
    ]
    if not grown:
        return {}
    best = max(grown, key=lambda r: r["final_val_accuracy"]["mean"])
    worst = min(grown, key=lambda r: r["delta_vs_wait"]["mean"])
    by_score = max(rows, key=lambda r: r["score"]["mean"])
    everything = next((r for r in rows if r["schedule"] == "now:widen_4x"), None)
    return {
        "best_accuracy_schedule": best["schedule"],
        "best_delta_vs_wait": best["delta_vs_wait"],
        "most_harmful_schedule": worst["schedule"],
        "most_harmful_delta_vs_wait": worst["delta_vs_wait"],
        "best_score_schedule": by_score["schedule"],
        "best_score": by_score["score"],
        "wait_score": next(r["score"] for r in rows if r["schedule"] == "wait"),
        "grow_largest_everywhere_score": None if everything is None else everything["score"],
    }


def plot(episodes: list[dict], configs: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(configs), figsize=(7 * len(configs), 5), squeeze=False)
    for ax, config in zip(axes[0], configs):
        here = [e for e in episodes if e["config"] == config]
        names = list(dict.fromkeys(e["schedule"] for e in here))
        for name in names:
            curves = np.array([e["val_accuracy_curve"] for e in here if e["schedule"] == name])
            style = (
                "k-" if name == "wait" else ("--" if name.startswith(("static", "hold", "churn")) else "-")
            )
            ax.plot(np.arange(1, curves.shape[1] + 1), 100 * curves.mean(0), style, lw=2 if name == "wait" else 1,
                    label=f"{name} (n={len(curves)})")  # fmt: skip
        ax.set(title=f"{config}: validation accuracy (mean over seeds)", xlabel="epoch", ylabel="val acc (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------- run


def provenance() -> dict[str, Any]:
    def git(*cmd: str) -> str | None:
        out = subprocess.run(
            ["git", "-C", str(Path(__file__).resolve().parents[1]), *cmd],
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout.strip() if out.returncode == 0 else None

    return {"git_commit": git("rev-parse", "HEAD"), "esper_env_dirty": bool(git("status", "--porcelain", "esper_env")),
            "torch": torch.__version__, "torch_threads_per_episode": 1}  # fmt: skip


def _key(config: str, name: str, seed: int) -> str:
    return f"{config}|{name}|{seed}"


def run_all(
    tasks: list[tuple[str, Schedule, int]], args: argparse.Namespace, cache: Path, done: dict[str, dict]
) -> None:
    todo = [t for t in tasks if _key(t[0], t[1].name, t[2]) not in done]
    if not todo or args.report_only:
        return
    print(
        f"{len(todo)} episodes to run ({len(tasks) - len(todo)} cached) on {args.workers} worker(s)",
        flush=True,
    )
    run_args = [(c, s, seed, args.fidelity, args.max_epochs, args.seed_lr_multiplier) for c, s, seed in todo]
    with cache.open("a") as log:

        def record(e: dict) -> None:
            done[_key(e["config"], e["schedule"], e["seed"])] = e
            log.write(json.dumps(e) + "\n")
            log.flush()
            print(f"{e['config']:<9} {e['schedule']:<26} seed {e['seed']} final {e['final_val_accuracy']:.3f} "
                  f"size {e['size_ratio']:.2f}x ({e['seconds']:.0f} s)", flush=True)  # fmt: skip

        if args.workers == 1:  # in this process (no pickling: also for tests and debugging)
            for a in run_args:
                record(run_episode(*a))
            return
        with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
            for f in as_completed([pool.submit(run_episode, *a) for a in run_args]):
                record(f.result())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    parser.add_argument("--config", nargs="+", default=["impaired", "baseline"], choices=ENVIRONMENT_CONFIGS,
                        metavar="PRESET", help="environment presets, one of: %(choices)s")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=5, help="reset seeds 0..N-1 for the main schedules")
    parser.add_argument(
        "--sweep-seeds", type=int, default=3, help="seeds for the sweep over original blueprints"
    )
    parser.add_argument("--fidelity", default="tiny", choices=FIDELITIES, help="fidelity preset")
    parser.add_argument("--max-epochs", type=int, default=25, help="epoch budget of an episode")
    parser.add_argument("--schedules", nargs="+", default=None, help="run only these schedule names")
    parser.add_argument("--seed-lr-multiplier", type=float, default=None, help="override the presets' value")
    parser.add_argument(
        "--workers", type=int, default=2, help="episodes run in parallel (one torch thread each)"
    )
    add_results_argument(parser, Path(__file__).parent, resumes=True)
    parser.add_argument("--tag", default="", help="suffix of the output files (for ablations)")
    parser.add_argument("--report-only", action="store_true", help="run nothing: report the cached episodes")
    args = parser.parse_args(argv)
    for name in ("seeds", "sweep_seeds", "max_epochs", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    stem = "growth_headroom" + (f"_{args.tag}" if args.tag else "")
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / f"{stem}.episodes.jsonl"
    done = {}
    if cache.exists():
        for line in cache.read_text().splitlines():
            e = json.loads(line)
            done[_key(e["config"], e["schedule"], e["seed"])] = e

    tasks: list[tuple[str, Schedule, int]] = []
    sweeps: list[tuple[str, Schedule, int]] = []
    for config in args.config:
        plan = schedules_for(config)
        if args.schedules:
            known = {s.name for c in args.config for s in schedules_for(c)}
            unknown = sorted(set(args.schedules) - known - {"static"})
            if unknown:
                parser.error(f"unknown schedules {unknown}; valid: {', '.join(sorted(known))}")
            plan = [s for s in plan if s.name in args.schedules or s.name == "wait"]
        full = (
            len(schedules_for(config)) > 10
        )  # presets with the trimmed list run every schedule on all seeds
        for s in plan:
            sweep = (
                full
                and s.kind == "grow"
                and s.slots == (0, 1, 2)
                and s.start == 0
                and s.blueprint in ORIGINAL_BLUEPRINTS
            )
            (sweeps if sweep else tasks).extend(
                (config, s, seed) for seed in range(args.sweep_seeds if sweep else args.seeds)
            )
    run_all(tasks, args, cache, done)

    # Static references: a host trained from scratch at the size of the grown networks that matter
    # (on the CNN presets with a full schedule list).
    static: list[tuple[str, Schedule, int]] = []
    if not args.schedules or "static" in args.schedules:
        for config in (c for c in args.config if len(schedules_for(c)) > 10):
            rows = summarise(list(done.values()), config)
            grown = [r for r in rows if r["schedule"] not in ("wait",) and len(r["seeds"]) >= args.seeds]
            refs = (
                {max(grown, key=lambda r: r["score"]["mean"])["schedule"], "now:widen_4x"} if grown else set()
            )
            for r in rows:
                if r["schedule"] in refs:
                    size = round(r["size_ratio"]["mean"], 2)
                    static += [
                        (config, Schedule(f"static-x{size:.2f}", "static", size=size), seed)
                        for seed in range(args.seeds)
                    ]
        run_all(static, args, cache, done)
    run_all(
        sweeps, args, cache, done
    )  # the sweep over the original blueprints last: the longest, least decisive
    tasks += sweeps

    episodes = list(done.values())
    wanted = {_key(c, s.name, seed) for c, s, seed in tasks + static}
    episodes = [e for e in episodes if _key(e["config"], e["schedule"], e["seed"]) in wanted]
    rows = [r for c in args.config for r in summarise(episodes, c)]
    table = markdown(rows)
    print("\n" + table)
    result = {
        "settings": {
            "env": ENV_ID,
            "configs": args.config,
            "fidelity": args.fidelity,
            "max_epochs": args.max_epochs,
            "seeds": args.seeds,
            "sweep_seeds": args.sweep_seeds,
            "rent_weight": DEFAULT_RENT_WEIGHT,
            "seed_lr_multiplier": args.seed_lr_multiplier or "preset default",
            "schedules": {s.name: asdict(s) for _, s, _ in tasks + static},
            **provenance(),
        },
        "findings": {c: findings([r for r in rows if r["config"] == c]) for c in args.config},
        "summary": rows,
        "table": table,
        "episodes": sorted(episodes, key=lambda e: (e["config"], e["schedule"], e["seed"])),
    }
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / f"{stem}.md").write_text(table + "\n")
    plot(episodes, args.config, args.out / f"{stem}.png")
    print(f"\nwrote {args.out / stem}.{{json,md,png}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
