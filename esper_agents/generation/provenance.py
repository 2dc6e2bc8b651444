"""Provenance of a pack: which code generated it and the tables (env, configs, policies, actions)
that ``pack.json`` carries so that a pack can be read without the code that wrote it; and
:func:`result_header`, the one provenance header of every published result (benchmark scripts,
``esper bench`` reports)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

_REPO = Path(__file__).resolve().parents[2]
#: Outputs a run rewrites itself: not counted as uncommitted code in a header's ``dirty``.
RESULT_OUTPUTS = ("benchmarks/results", "esper_env/reference_scores.json")


def _git(*cmd: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(_REPO), *cmd], capture_output=True, text=True, timeout=30,
                             check=False)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def result_header(command: str, env_id: str | None, torch_threads: int | None) -> dict[str, Any]:
    """The header of a result: what produced it, so that anyone can replay it.

    ``git_commit``; ``dirty``: whether tracked code had uncommitted changes (the results and the
    reference registry, which a run rewrites, aside; ``None`` outside a git checkout); ``env_id``
    and ``env_version`` (``v2``); ``torch`` and ``torch_threads`` (per episode or process); and
    ``command``.
    """
    import torch

    status = _git(
        "status", "--porcelain", "--untracked-files=no", "--", ".", *(f":!{p}" for p in RESULT_OUTPUTS)
    )
    version = None if env_id is None else env_id.rpartition("-v")[2]
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "dirty": None if status is None else bool(status),
        "env_id": env_id,
        "env_version": None if version is None else f"v{version}",
        "torch": torch.__version__,
        "torch_threads": torch_threads,
        "command": command,
    }


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
