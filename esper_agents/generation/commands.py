"""``esper generate`` and ``esper export``: the command-line side of generation and exports."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def generate_command(args: argparse.Namespace) -> int:
    from esper_agents.generation.orchestrator import SpecError, describe_plan, generate, load_spec
    from esper_agents.generation.packs import PackError

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        spec = load_spec(args.spec)
    except SpecError as err:
        print(f"esper generate: error: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(describe_plan(spec))
        return 0
    if args.workers < 1:
        print(f"esper generate: error: --workers must be >= 1, got {args.workers}", file=sys.stderr)
        return 2
    try:
        result = generate(
            spec,
            args.out,
            workers=args.workers,
            backend=args.backend,
            force=args.force,
            progress=not args.no_progress,
        )
    except (PackError, SpecError, RuntimeError) as err:
        print(f"esper generate: error: {err}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0


def export_command(args: argparse.Namespace) -> int:
    from esper_agents.generation import exports
    from esper_agents.generation.packs import PackError, open_pack

    try:
        pack = open_pack(args.pack)
        if args.format == "d3rlpy":
            out = Path(args.out)
            if out.exists() and not args.force:
                print(f"esper export: error: {out} exists; pass --force to overwrite it", file=sys.stderr)
                return 2
            path = exports.export_d3rlpy(pack, out, args.reward_mode, append_mask=args.append_mask)
            summary = {"format": "d3rlpy", "path": str(path), "episodes": len(pack),
                       "transitions": pack.n_transitions, "action_size": pack.n_actions,
                       "reward_mode": args.reward_mode or pack.reward_config["mode"],
                       "load": f"esper_agents.generation.exports.load_d3rlpy({str(path)!r})"}  # fmt: skip
        else:
            if args.append_mask:
                print("esper export: error: --append-mask applies to --format d3rlpy only", file=sys.stderr)
                return 2
            dataset_id = args.dataset_id or f"esper/{pack.name}-v0"
            ds = exports.to_minari(pack, dataset_id, args.out, args.reward_mode, force=args.force)
            summary = {"format": "minari", "path": str(args.out), "dataset_id": dataset_id,
                       "episodes": int(ds.total_episodes), "steps": int(ds.total_steps),
                       "load": f"MINARI_DATASETS_PATH={args.out} "
                               f"minari.load_dataset({dataset_id!r})"}  # fmt: skip
    except (PackError, FileExistsError, ValueError, RuntimeError) as err:
        print(f"esper export: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0
