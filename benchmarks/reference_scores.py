"""Measure the reference scores of ``esper_env.reference_scores`` and write them to the registry.

    python benchmarks/reference_scores.py [--config impaired baseline] [--fidelity tiny]
        [--max-epochs 25] [--seeds 5] [--first-seed 1000] [--workers 2]
        [--registry esper_env/reference_scores.json] [--out DIR]

For each preset it runs, on reset seeds ``--first-seed ..`` (the benchmark's evaluation seeds,
apart from every training seed), the three references through ``benchmarks/_common.py``'s
episode runner: always-WAIT, the default heuristic acting greedily, and the best scripted growth
schedule of the growth-headroom benchmark (the grown schedule with the highest benchmark score in
``benchmarks/results/growth_headroom.json`` for that preset; ``now:widen_4x@0`` where the preset
is not in it). The registry entry (mean benchmark score, final accuracy, return under every reward
mode, seeds, this command and the code version) replaces any entry of the same key. Episodes are
cached in ``OUT/reference_scores_<fidelity>.episodes.jsonl``: a killed run resumes.

The fast tier's entry comes from its headroom run instead (held-out instances, single best and
virtual best; see :func:`entry_from_headroom`)::

    python benchmarks/micro_tier.py headroom --train 40 --heldout 60 --seeds 2 --out benchmarks/results
    python benchmarks/reference_scores.py --from-headroom benchmarks/results/micro_headroom.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    ENV_ID,
    MICRO_ID,
    add_episode_arguments,
    add_presets_argument,
    add_results_argument,
    episode_key,
    load_episodes,
    provenance,
    require_positive,
    run_all,
)

from esper_agents.policies import DEFAULT_HEURISTIC
from esper_agents.policies.schedules import get_schedule
from esper_env.instances import HELDOUT_SPLIT
from esper_env.references import REFERENCE_PATH, ReferenceScores, check_fraction
from esper_env.rewards import REWARD_MODES

HEADROOM = Path(__file__).parent / "results" / "growth_headroom.json"
FALLBACK_SCHEDULE = "now:widen_4x@0"


def best_scripted_schedule(config: str, headroom: Path = HEADROOM) -> str:
    """The grown scripted schedule with the best mean benchmark score for ``config`` (issue 6's table)."""
    if headroom.exists():
        rows = [r for r in json.loads(headroom.read_text())["summary"] if r["config"] == config]
        grown = [r for r in rows if not r["schedule"].startswith(("wait", "heuristic", "static"))]
        if grown:
            return max(grown, key=lambda r: r["score"]["mean"])["schedule"]
    return FALLBACK_SCHEDULE


def entry(
    config: str,
    episodes: dict[str, list[dict]],
    args: argparse.Namespace,
    schedules: dict,
    argv: list[str] | None,
) -> dict:
    def mean(name: str, key: str) -> float:
        return float(np.mean([e[key] for e in episodes[name]]))

    header = provenance(__file__, argv, ENV_ID, torch_threads=1)
    names = {"wait": "wait", "heuristic": schedules["heuristic"], "best_scripted": schedules["best_scripted"]}
    return ReferenceScores(
        env_id=ENV_ID,
        config=config,
        fidelity=args.fidelity,
        max_epochs=args.max_epochs,
        wait=mean("wait", "score"),
        heuristic=mean(names["heuristic"], "score"),
        heuristic_policy=DEFAULT_HEURISTIC,
        best_scripted=mean(names["best_scripted"], "score"),
        best_scripted_schedule=names["best_scripted"],
        seeds=tuple(range(args.first_seed, args.first_seed + args.seeds)),
        final_val_accuracy={ref: mean(name, "final_val_accuracy") for ref, name in names.items()},
        returns={
            ref: {m: float(np.mean([e["returns"][m] for e in episodes[name]])) for m in REWARD_MODES}
            for ref, name in names.items()
        },
        command=header["command"],
        code_version={k: v for k, v in header.items() if k != "command"},
    ).to_json()


# ------------------------------------------------------------------------------- the fast tier's entry

#: What ``benchmarks/micro_tier.py headroom`` measures on (its defaults, where its command omits them).
MICRO_HEADROOM = {"env_id": MICRO_ID, "config": "baseline", "fidelity": "micro", "max_epochs": 25,
                  "seeds": 2, "instances": "bottlenecks"}  # fmt: skip
HEADROOM_KEYS = (
    "provenance",
    "held_out_means",
    "single_best",
    "virtual_best",
    "best_heuristic",
    "per_instance_best",
)


def _option(command: str, flag: str, default: Any) -> Any:
    """The value of ``flag`` in a recorded command line (``default`` where it is absent)."""
    words = shlex.split(command)
    for i, word in enumerate(words):
        if word == flag and i + 1 < len(words):
            return type(default)(words[i + 1])
        if word.startswith(f"{flag}="):
            return type(default)(word.split("=", 1)[1])
    return default


def entry_from_headroom(headroom: dict[str, Any], argv: list[str] | None = None) -> dict[str, Any]:
    """The registry entry (``Esper-Micro-v3/baseline/micro/25``) of a ``micro_headroom.json``.

    Its scores are in points (0-100); the entry's are fractions: always-WAIT's held-out mean, the
    best heuristic's, the single best schedule's (chosen on training instances) and the virtual
    best, all over the held-out instances of ``per_instance_best`` from reset seeds ``0 ..
    --seeds - 1``. The entry's ``command`` is this conversion; ``code_version`` is the headroom
    run's provenance, with its command as ``measured_by``.
    """
    missing = [k for k in HEADROOM_KEYS if k not in headroom]
    if missing:
        raise ValueError(
            f"not a micro_tier.py headroom result: missing {', '.join(missing)} (needs {HEADROOM_KEYS})"
        )
    means, prov = headroom["held_out_means"], dict(headroom["provenance"])
    for name in ("wait", headroom["single_best"], headroom["best_heuristic"]):
        if name not in means:
            raise ValueError(f"held_out_means has no {name!r}; it has: {', '.join(sorted(means))}")
    measured_by = str(prov.pop("command", ""))
    instances = tuple(sorted(int(k) for k in headroom["per_instance_best"]))
    outside = [k for k in instances if k not in HELDOUT_SPLIT]
    if not instances or outside:
        raise ValueError(
            f"the headroom's held-out instances must lie in HELDOUT_SPLIT {HELDOUT_SPLIT}, got {outside or 'none'}"
        )

    def fraction(points: float, name: str) -> float:
        return check_fraction(float(points) / 100, name)

    heuristic = str(headroom["best_heuristic"])
    header = provenance(__file__, argv, MICRO_HEADROOM["env_id"], torch_threads=1)
    return ReferenceScores(
        env_id=prov.get("env_id") or MICRO_HEADROOM["env_id"],
        config=MICRO_HEADROOM["config"],
        fidelity=MICRO_HEADROOM["fidelity"],
        max_epochs=MICRO_HEADROOM["max_epochs"],
        wait=fraction(means["wait"], "wait"),
        heuristic=fraction(means[heuristic], heuristic),
        heuristic_policy=heuristic.removeprefix("heuristic:"),
        best_scripted=fraction(means[headroom["single_best"]], headroom["single_best"]),
        best_scripted_schedule=str(headroom["single_best"]),
        seeds=tuple(range(_option(measured_by, "--seeds", MICRO_HEADROOM["seeds"]))),
        command=header["command"],
        code_version={**prov, "measured_by": measured_by},
        virtual_best=fraction(headroom["virtual_best"], "virtual_best"),
        instances=_option(measured_by, "--instances", MICRO_HEADROOM["instances"]),
        split={
            "name": "HELDOUT_SPLIT",
            "start_level": HELDOUT_SPLIT.start_level,
            "num_levels": HELDOUT_SPLIT.num_levels,
        },
        instance_indices=instances,
    ).to_json()


def write_entries(registry_path: Path, entries: list[dict[str, Any]]) -> None:
    """Replace (or add) ``entries`` in the registry file, keys sorted."""
    registry = json.loads(registry_path.read_text()) if registry_path.exists() else {"entries": {}}
    registry["about"] = (
        "Reference scores of esper_env.reference_scores; written by benchmarks/reference_scores.py"
    )
    for new in entries:
        registry["entries"][ReferenceScores.from_json(new).key] = new
    registry["entries"] = dict(sorted(registry["entries"].items()))
    registry_path.write_text(json.dumps(registry, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    add_presets_argument(parser, ["impaired", "baseline"])
    add_episode_arguments(parser, seeds=5, seeds_help="episodes per reference")
    parser.add_argument(
        "--first-seed", type=int, default=1000, help="first reset seed (the evaluation seeds)"
    )
    parser.add_argument("--registry", type=Path, default=REFERENCE_PATH, help="the registry file to update")
    parser.add_argument("--from-headroom", type=Path, metavar="PATH",
                        help="write the fast tier's entry from a micro_tier.py headroom result instead")  # fmt: skip
    add_results_argument(parser, resumes=True)
    args = parser.parse_args(argv)
    if args.from_headroom is not None:
        if not args.from_headroom.is_file():
            parser.error(f"--from-headroom: no such file {str(args.from_headroom)!r}")
        new = entry_from_headroom(json.loads(args.from_headroom.read_text()), argv)
        write_entries(args.registry, [new])
        ref = ReferenceScores.from_json(new)
        print(f"{ref.key}: wait {ref.wait:.4f}  heuristic {ref.heuristic:.4f}  single best "
              f"{ref.best_scripted_schedule} {ref.best_scripted:.4f}  virtual best {ref.virtual_best:.4f}")  # fmt: skip
        print(f"wrote {args.registry}")
        return 0
    require_positive(parser, args, "seeds", "max_epochs", "workers")
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / f"reference_scores_{args.fidelity}_{args.max_epochs}.episodes.jsonl"
    done = load_episodes(cache)

    plans: dict[str, dict[str, Any]] = {}
    tasks = []
    for config in args.config:
        plan = {
            "heuristic": f"heuristic:{DEFAULT_HEURISTIC}",
            "best_scripted": best_scripted_schedule(config),
        }
        plans[config] = plan
        for name in ("wait", *plan.values()):
            tasks += [
                (config, get_schedule(name), s) for s in range(args.first_seed, args.first_seed + args.seeds)
            ]
    run_all(tasks, cache, done, fidelity=args.fidelity, max_epochs=args.max_epochs, workers=args.workers)

    new_entries = []
    for config in args.config:
        episodes: dict[str, list[dict]] = {}
        for c, s, seed in tasks:
            if c == config:
                episodes.setdefault(s.name, []).append(done[episode_key(c, s.name, seed)])
        new = entry(config, episodes, args, plans[config], argv)
        key = ReferenceScores.from_json(new).key
        new_entries.append(new)
        print(f"{key}: wait {new['wait']:.4f}  heuristic {new['heuristic']:.4f}  "
              f"best scripted {new['best_scripted_schedule']} {new['best_scripted']:.4f}")  # fmt: skip
    write_entries(args.registry, new_entries)
    print(f"wrote {args.registry}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
