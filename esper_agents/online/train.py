"""Train an online agent with checkpoints and resume: :func:`train_online`.

A run directory holds::

    run.json                       what was asked (algorithm, env settings, envs, seed, steps)
    checkpoints/model_<N>_steps.zip  every ``checkpoint_every`` env steps (SB3 zip, no pickle of code)
    model.zip                      the final model
    episodes.csv                   one row per finished episode: the learning curve
    tb/<algo>_1/                   TensorBoard events (SB3's logger plus Esper's metrics)

Calling :func:`train_online` again on the same directory resumes from the last checkpoint (the
same algorithm, env and seed; anything else is refused): the episode rows logged after that
checkpoint are dropped, so the curve has no duplicated episodes. Episodes in flight when the run
stopped are lost (envs restart), so the resumed run is not bitwise the uninterrupted one.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path
from typing import Any

from esper_agents.common.io import atomic_path
from esper_agents.online.algorithms import PPO_DEFAULTS, get_online_algorithm, model_class
from esper_agents.online.callbacks import EsperMetricsCallback
from esper_agents.online.envs import make_online_env, make_vec_env
from esper_agents.online.saved import load_online_model
from esper_env.settings import EnvSettings

__all__ = ["latest_checkpoint", "train_online"]

_CHECKPOINT = re.compile(r"model_(\d+)_steps\.zip$")


def latest_checkpoint(out: str | os.PathLike) -> tuple[Path, int] | None:
    """The newest checkpoint of a run directory and its env-step count, or None."""
    found = [
        (int(m.group(1)), p)
        for p in (Path(out) / "checkpoints").glob("model_*_steps.zip")
        if (m := _CHECKPOINT.search(p.name))
    ]
    if not found:
        return None
    steps, path = max(found)
    return path, steps


def _truncate_curve(path: Path, steps: int) -> None:
    """Drop the episode rows logged after ``steps`` env steps (they happen again on resume)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= steps]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(kept)


def _settings_of_old_run(before: dict[str, Any]) -> dict[str, Any]:
    """A ``run.json`` written before the settings record (``env_id`` and ``env_kwargs``) in the
    current shape (``settings``), so that such a run resumes."""
    if "settings" in before or "env_id" not in before:
        return before
    rest = {k: v for k, v in before.items() if k not in ("env_id", "env_kwargs")}
    return {
        **rest,
        "settings": EnvSettings(env_id=before["env_id"], **before.get("env_kwargs", {})).to_dict(),
    }


def _check_run(out: Path, run: dict[str, Any]) -> bool:
    """Write ``run.json``, or check that it matches (True when it existed)."""
    path = out / "run.json"
    if path.exists():
        before = _settings_of_old_run(json.loads(path.read_text()))
        same = {k: before.get(k) for k in run if k != "steps"} == {
            k: v for k, v in run.items() if k != "steps"
        }
        if not same:
            raise ValueError(
                f"{out} holds a run of {before}; this run asks for {run}. Resume it with the same settings, "
                "or pass another --out"
            )
        return True
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run, indent=2) + "\n")
    return False


def _require_extras(tensorboard: bool, progress: bool) -> None:
    """A clear error when the ``online`` extra is missing (SB3 fails deep inside ``learn``)."""
    import importlib.util

    wanted = {
        "tensorboard": "TensorBoard logging" if tensorboard else "",
        "rich": "the progress bar" if progress else "",
    }
    missing = [
        f"{name} (for {use})"
        for name, use in wanted.items()
        if use and importlib.util.find_spec(name) is None
    ]
    if missing:
        raise ImportError(
            f"train_online needs {' and '.join(missing)}: pip install 'esper[online]', "
            "or pass tensorboard=False / progress=False (--no-tensorboard / --no-progress)"
        )


def train_online(
    algo: str,
    steps: int,
    out: str | os.PathLike,
    settings: EnvSettings | None = None,
    n_envs: int = 2,
    seed: int = 0,
    checkpoint_every: int = 1000,
    device: str = "auto",
    progress: bool = True,
    tensorboard: bool = True,
    hyperparameters: dict[str, Any] | None = None,
    verbose: int = 0,
) -> Any:
    """Train ``algo`` for ``steps`` env steps (all envs together) into ``out``; return the model.

    ``settings`` builds every env (default: ``EnvSettings()``); ``device`` is the learner's;
    ``hyperparameters`` override
    :data:`~esper_agents.online.algorithms.PPO_DEFAULTS`. A directory that already holds this run
    resumes from its last checkpoint, and a finished run returns its final model at once.
    """
    from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback

    record = get_online_algorithm(algo)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer (env steps), got {steps!r}")
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be a positive integer (env steps), got {checkpoint_every!r}")
    _require_extras(tensorboard, progress)
    out = Path(out)
    settings = settings if settings is not None else EnvSettings()
    params = {**PPO_DEFAULTS, **(hyperparameters or {})}
    run = {
        "algo": algo, "settings": settings.to_dict(), "n_envs": n_envs, "seed": seed,
        "hyperparameters": params, "steps": steps,
    }  # fmt: skip
    resumed = _check_run(out, run)
    cls = model_class(algo)
    final = out / "model.zip"
    checkpoint = latest_checkpoint(out) if resumed else None
    if resumed and final.exists():
        probe = make_online_env(algo, settings)
        try:
            model = load_online_model(final, probe, device=device, hyperparameters=params)[1]
        finally:
            probe.close()
        if model.num_timesteps >= steps:
            return model
        checkpoint = (final, model.num_timesteps)
    venv = make_vec_env(algo, settings, n_envs=n_envs, seed=seed)
    try:
        tb = str(out / "tb") if tensorboard else None
        if checkpoint is not None:
            path, done = checkpoint
            _, model = load_online_model(
                path, venv, device=device, hyperparameters=params, tensorboard_log=tb
            )
            _truncate_curve(out / "episodes.csv", done)
        else:
            done = 0
            _truncate_curve(out / "episodes.csv", 0)
            model = cls(
                record.policy, venv, seed=seed, device=device, tensorboard_log=tb, verbose=verbose,
                policy_kwargs=dict(record.policy_kwargs), **params,
            )  # fmt: skip
        callbacks = CallbackList(
            [
                EsperMetricsCallback(out / "episodes.csv"),
                CheckpointCallback(
                    max(checkpoint_every // n_envs, 1), str(out / "checkpoints"), name_prefix="model"
                ),
            ]
        )
        if steps > done:
            model.learn(
                steps - done, callback=callbacks, reset_num_timesteps=done == 0, tb_log_name=algo,
                progress_bar=progress,
            )  # fmt: skip
        model.save(final)
    finally:
        venv.close()
    return model
