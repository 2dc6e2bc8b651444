"""Provenance of a pack: which code generated it and the tables (env, configs, policies, actions)
that ``pack.json`` carries so that a pack can be read without the code that wrote it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from esper_agents.generation.spec import GenerationSpec


def code_version() -> str:
    """``esper <version> git <commit>[+dirty]``, best effort: which code generated an episode.

    A pack resumed after the behavior policies or the env changed mixes behaviors; each episode
    records this string (``metadata.extra["code_version"]``) so that it can be told.
    """
    import importlib.metadata
    import subprocess

    try:
        version = importlib.metadata.version("esper")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    repo = Path(__file__).resolve().parents[2]
    try:
        git = ["git", "-C", str(repo)]
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True, timeout=10,
                               check=True).stdout.strip()  # fmt: skip
        return f"esper {version} git {commit}{'+dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return f"esper {version}"


def pack_header(spec: GenerationSpec) -> dict[str, Any]:
    """``pack.json`` content for a spec: the spec (its env settings in ``generation_spec.env``) plus
    env, config, policy and action tables derived from them for readers without this code."""
    import torch

    from esper_agents.generation.schema import REWARD_COMPONENTS, STEP_ARRAYS
    from esper_agents.policies import get_policy
    from esper_env.configs import ENVIRONMENT_CONFIGS
    from esper_env.datasets import env_version
    from esper_env.rewards import get_reward_config
    from esper_env.spaces import version_observation
    from esper_env.wrappers import compact_action_table, encode_joint

    s = spec.env
    schema, _ = version_observation(env_version(s.env_id), s.num_slots)
    table = compact_action_table(s.num_slots)
    return {
        "generation_spec": spec.to_dict(),
        "code_version": code_version(),
        "environment": {
            "env_id": s.env_id,
            "torch_version": torch.__version__,
            "torch_num_threads": s.num_threads,
            "dataset": s.dataset,
            "fidelity": s.fidelity,
            "max_epochs": s.max_epochs,
            "num_slots": s.num_slots,
            "early_stop_patience": s.early_stop_patience,
            "synth_seed": s.synth_seed,
            "reward": get_reward_config(s.reward).to_dict(),
            "observation_dim": max(sl.stop for sl in schema.values()),
            "observation_schema": {k: [sl.start, sl.stop] for k, sl in schema.items()},
            "n_actions": len(table),
            "actions": [
                {
                    "index": i,
                    "name": a.describe(),
                    "factored": [int(v) for v in a],
                    "joint": encode_joint(a, s.num_slots),
                }
                for i, a in enumerate(table)
            ],
            "reward_components": list(REWARD_COMPONENTS),
        },
        "environments": {c: ENVIRONMENT_CONFIGS[c].to_dict() for c in spec.configs},
        "policies": {p: get_policy(p).config.to_dict() for p in spec.policies},
        "step_arrays": {k: {"dtype": d, "shape": sh} for k, (d, sh) in STEP_ARRAYS.items()},
    }
