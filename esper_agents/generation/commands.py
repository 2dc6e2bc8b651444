"""``esper generate``, ``esper export`` and ``esper validate``: the command-line side of packs."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path


def generate_command(args: argparse.Namespace) -> int:
    from esper_agents.generation.orchestrator import generate
    from esper_agents.generation.planning import describe_plan
    from esper_agents.generation.spec import load_spec

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    spec = load_spec(args.spec)
    if args.reward is not None:  # --reward: the env's reward mode, over the spec's [env] reward
        spec = dataclasses.replace(spec, env=spec.env.replace(reward=args.reward))
    if args.dry_run:
        print(describe_plan(spec))
        return 0
    try:
        result = generate(
            spec,
            args.out,
            workers=args.workers,
            backend=args.backend,
            force=args.force,
            progress=not args.no_progress,
        )
    except RuntimeError as err:  # a backend that is not installed, or a worker that died
        print(f"esper: error: {err}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0


def export_command(args: argparse.Namespace) -> int:
    from esper_agents.generation import exports
    from esper_agents.generation.packs import open_pack

    pack = open_pack(args.pack, partial=args.partial)
    if args.format == "d3rlpy":
        out = Path(args.out)
        if out.exists() and not args.force:
            raise ValueError(f"--out {out} exists; pass --force to overwrite it")
        path = exports.export_d3rlpy(pack, out, args.reward_mode, append_mask=args.append_mask)
        # A plain d3rlpy load infers the action size from a truncated episode's dummy row (exports/d3rlpy_buffer.py).
        plain = any(not pack.metadata(i).done for i in pack.episode_ids)
        load = (f"ReplayBuffer.load(open({str(path)!r}, 'rb'), InfiniteBuffer())" if plain
                else f"esper_agents.generation.exports.load_d3rlpy({str(path)!r})")  # fmt: skip
        summary = {"format": "d3rlpy", "path": str(path), "episodes": len(pack),
                   "transitions": pack.n_transitions, "action_size": pack.n_actions,
                   "reward_mode": args.reward_mode or pack.settings.reward, "load": load}  # fmt: skip
    else:
        if args.append_mask:
            raise ValueError("--append-mask applies to --format d3rlpy only")
        dataset_id = args.dataset_id or f"esper/{pack.name}-v0"
        try:
            ds = exports.to_minari(pack, dataset_id, args.out, args.reward_mode, force=args.force)
        except RuntimeError as err:  # Minari is not installed
            print(f"esper: error: {err}", file=sys.stderr)
            return 2
        summary = {"format": "minari", "path": str(args.out), "dataset_id": dataset_id,
                   "episodes": int(ds.total_episodes), "steps": int(ds.total_steps),
                   "load": f"MINARI_DATASETS_PATH={args.out} "
                           f"minari.load_dataset({dataset_id!r})"}  # fmt: skip
    print(json.dumps(summary, indent=2))
    return 0


def validate_command(args: argparse.Namespace) -> int:
    from esper_agents.generation.packs import open_pack
    from esper_agents.generation.replay import replay_pack, version_note

    pack = open_pack(args.pack, partial=args.partial)
    note = version_note(pack)
    if note:
        print(f"warning: {note}", file=sys.stderr)
    results = []
    for result in replay_pack(pack, args.episodes):
        print(result.describe(), flush=True)
        results.append(result)
    same = sum(r.identical for r in results)
    threads = pack.settings.num_threads
    print(f"{same} of {len(results)} replayed episodes identical (torch threads {threads}, torch "
          f"{pack.environment.get('torch_version')})")  # fmt: skip
    return 0 if same == len(results) else 1
