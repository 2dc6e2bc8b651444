"""Train an online agent with checkpoints and exact resume: :func:`train_online`.

A run directory holds::

    run.json                         what was asked (algorithm, env settings, envs, seed, steps)
    checkpoints/model_<N>_steps.zip  a checkpoint at the first rollout boundary at or past each multiple
                                     of ``checkpoint_every`` env steps, after that rollout's update (SB3
                                     zip, no pickle of code), with ``model_<N>_steps.resume.pt`` beside it
    model.zip, model.resume.pt       the final model and its resume state
    episodes.csv                     one row per finished episode: the learning curve
    tb/<algo>_1/                     TensorBoard events (SB3's logger plus Esper's metrics)

Every model and resume state is written to a temporary file and renamed, so a kill leaves no
torn file. Calling :func:`train_online` again on the same directory resumes (the same algorithm,
env and seed; anything else is refused) from the final model when more steps are asked, else
from the newest checkpoint; one that does not read is skipped with a warning for the one before
it. The resume state holds the weights' optimizer, every RNG, the envs' snapshots, the last
observations, the LSTM states and the curve's length (:mod:`esper_agents.online.checkpoints`),
so on CPU at a fixed thread count the resumed run is the uninterrupted one bit for bit: the same
``episodes.csv`` rows and the same final weights. What is not continued: SB3's episode-info
buffer and wall clock (``rollout/ep_rew_mean`` and ``time/fps`` in TensorBoard restart; the
resumed part writes a new events file), and the CUDA RNG is restored only where CUDA kernels are
deterministic.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

from esper_agents.common.io import TMP_PREFIX, atomic_path
from esper_agents.online.algorithms import PPO_DEFAULTS, get_online_algorithm, model_class
from esper_agents.online.callbacks import EsperMetricsCallback, RolloutCheckpoints
from esper_agents.online.checkpoints import (
    CheckpointError,
    list_checkpoints,
    resume_checkpoint,
    save_checkpoint,
)
from esper_agents.online.envs import make_online_env, make_vec_env
from esper_agents.online.saved import load_online_model
from esper_agents.online.warm_start import initialize_policy
from esper_env.settings import EnvSettings

__all__ = ["latest_checkpoint", "train_online"]


def latest_checkpoint(out: str | os.PathLike) -> tuple[Path, int] | None:
    """The newest checkpoint of a run directory and its env-step count, or None."""
    found = list_checkpoints(out)
    return found[0] if found else None


def _truncate_curve(path: Path, rows: int) -> None:
    """Keep the header and the first ``rows`` episode rows (those logged before the checkpoint; a
    kill can tear only a later line)."""
    if rows == 0:
        path.unlink(missing_ok=True)  # the callback writes the header again
        return
    lines = path.read_bytes().splitlines(keepends=True) if path.exists() else []
    if len(lines) < rows + 1:
        raise CheckpointError(f"{path} holds {max(len(lines) - 1, 0)} episode rows, the checkpoint {rows}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(b"".join(lines[: rows + 1]))


def _remove_temporary_files(out: Path) -> None:
    """Temporary files a kill left behind (never renamed, so never part of the run)."""
    for directory in (out, out / "checkpoints"):
        for p in directory.glob(TMP_PREFIX + "*"):
            p.unlink(missing_ok=True)


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
    from stable_baselines3.common.callbacks import CallbackList

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
    _remove_temporary_files(out)
    final = out / "model.zip"
    candidates = list_checkpoints(out) if resumed else []
    if resumed and final.exists():
        done = _finished(final)
        if done is not None and done >= steps:
            probe = make_online_env(algo, settings)
            try:
                return load_online_model(final, probe, device=device, hyperparameters=params)[1]
            finally:
                probe.close()
        if done is not None:
            candidates.insert(0, (final, done))
    venv = make_vec_env(algo, settings, n_envs=n_envs, seed=seed)
    try:
        tb = str(out / "tb") if tensorboard else None
        model, episodes = None, None
        for path, _ in candidates:
            try:
                model, episodes = resume_checkpoint(
                    path, venv, device=device, hyperparameters=params, tensorboard_log=tb
                )
                _truncate_curve(out / "episodes.csv", episodes["rows"])
                break
            except CheckpointError as err:
                warnings.warn(f"skipping checkpoint {path}: {err}; trying the one before it", stacklevel=2)
                model = episodes = None
        if model is None:
            if candidates:
                warnings.warn(f"no checkpoint of {out} resumes; training from the start", stacklevel=2)
            _truncate_curve(out / "episodes.csv", 0)
            model = model_class(algo)(
                record.policy, venv, seed=seed, device=device, tensorboard_log=tb, verbose=verbose,
                policy_kwargs=dict(record.policy_kwargs), **params,
            )  # fmt: skip
            initialize_policy(model, algo, settings, steps=steps, seed=seed, gamma=params["gamma"], out=out)
        model.esper_algorithm = algo  # saved with the model: names its env stack (saved_algorithm)
        metrics = EsperMetricsCallback(out / "episodes.csv", state=episodes)
        checkpoints = RolloutCheckpoints(out / "checkpoints", checkpoint_every, metrics)
        done = int(model.num_timesteps)
        if steps > done:
            model.learn(
                steps - done, callback=CallbackList([metrics, checkpoints]), reset_num_timesteps=done == 0,
                tb_log_name=algo, progress_bar=progress,
            )  # fmt: skip
        save_checkpoint(model, final, metrics.state())
    finally:
        venv.close()
    return model


def _finished(final: Path) -> int | None:
    """The env steps of the final model, or None (with a warning) where it does not read."""
    from esper_agents.online.saved import read_model_data

    try:
        return int(read_model_data(final)["num_timesteps"])
    except (ValueError, KeyError, TypeError) as err:
        warnings.warn(f"skipping {final}: {err}; resuming from its checkpoints", stacklevel=3)
        return None
