"""The ``esper train-online`` command, and ``esper evaluate`` for saved online models."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from esper_agents.cli_options import env_settings

__all__ = ["evaluate_online_command", "is_online_model", "train_online_command"]


def is_online_model(path: str) -> bool:
    """A ``.zip`` file, or a directory holding ``model.zip`` (a train-online run)."""
    p = Path(path)
    return (p.is_file() and p.suffix == ".zip") or (p.is_dir() and (p / "model.zip").is_file())


def _refuse_other_runs(out: Path) -> None:
    """Refuse an ``--out`` that holds another kind of run (an offline agent or run, a pack)."""
    from esper_agents.offline.saved import AGENT_FILE

    others = {AGENT_FILE: "a saved offline agent", "agent": "a train-offline run", "pack.json": "a pack"}
    for name, kind in others.items():
        if os.path.lexists(out / name):
            raise ValueError(
                f"--out {out} holds {kind} ({out / name}); train-online writes its run into an empty or "
                "train-online directory: pass another --out"
            )


def train_online_command(args: argparse.Namespace) -> int:
    from esper_agents.online.evaluate import evaluate_online
    from esper_agents.online.train import train_online

    if os.path.isfile(args.out):
        raise ValueError(f"--out {args.out} is a file; train-online writes a directory")
    _refuse_other_runs(Path(args.out))
    settings = env_settings(args)
    model = train_online(
        args.algo, args.steps, args.out, settings, n_envs=args.n_envs, seed=args.seed,
        checkpoint_every=args.checkpoint_every, device=args.device,
        progress=not args.no_progress, tensorboard=not args.no_tensorboard,
    )  # fmt: skip
    summary: dict[str, Any] = {
        "algo": args.algo, "settings": settings.to_dict(), "steps": int(model.num_timesteps),
        "model": str(Path(args.out) / "model.zip"),
    }  # fmt: skip
    if args.eval_episodes:
        from esper_agents.online.envs import make_online_env

        env = make_online_env(args.algo, settings)
        try:
            summary["evaluation"] = evaluate_online(
                model, args.algo, env, args.eval_episodes, seed=args.eval_seed
            )
        finally:
            env.close()
    text = json.dumps(summary, indent=2)
    (Path(args.out) / "summary.json").write_text(text + "\n")
    print(text)
    return 0


def evaluate_online_command(args: argparse.Namespace) -> int:
    """``esper evaluate --policy MODEL.zip|RUN_DIR``: print (and with ``--out``, write) the JSON summary."""
    from esper_agents.online.envs import make_online_env
    from esper_agents.online.evaluate import evaluate_online
    from esper_agents.online.saved import load_online_model, read_model_data, saved_algorithm

    if args.pack is not None:
        raise ValueError("--pack evaluates offline agents on logged states; an online model has no pack")
    if args.out is not None and os.path.isdir(args.out):
        raise ValueError(f"--out {args.out} is a directory; evaluate writes its JSON summary to a file")
    settings = env_settings(args)
    algo = saved_algorithm(read_model_data(args.policy))
    env = make_online_env(algo, settings)
    try:
        _, model = load_online_model(args.policy, env, device="cpu")
        summary = evaluate_online(model, algo, env, args.episodes, seed=args.seed)
    finally:
        env.close()
    summary = {"policy": args.policy, "kind": f"online model ({algo})", "settings": settings.to_dict(),
               **summary}  # fmt: skip
    text = json.dumps(summary, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0
