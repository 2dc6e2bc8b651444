"""The three online algorithms end to end: train, checkpoint, resume, save, load, evaluate.

Each algorithm trains once (a module fixture) at the tests' NANO fidelity: these properties are about
checkpoints, logs and files, not about how well the host trains. The ``esper`` command runs at "test"
(its envs run in subprocesses, which know only the registered fidelities).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from esper_agents.online.algorithms import ONLINE_ALGORITHMS
from esper_agents.online.envs import make_online_env
from esper_agents.online.evaluate import evaluate_online, run_online_episode
from esper_agents.online.saved import load_online_model
from esper_agents.online.train import _check_run, latest_checkpoint, train_online
from esper_env.settings import EnvSettings


def settings() -> EnvSettings:
    """The runs' settings: NANO (registered as "nano" by the module's nano_fidelity fixture)."""
    return EnvSettings(fidelity="nano", max_epochs=5)


ALGOS = list(ONLINE_ALGORITHMS)


def train(algo: str, steps: int, out: Path, **kwargs: object) -> object:
    options = {"n_envs": 1, "checkpoint_every": 100, "progress": False}
    return train_online(algo, steps, out, settings(), **{**options, **kwargs})


def curve(out: Path) -> list[dict[str, str]]:
    with open(out / "episodes.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module", autouse=True)
def _nano(nano_fidelity: str) -> None:
    assert nano_fidelity == settings().fidelity


@pytest.fixture(scope="module", params=ALGOS)
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """Each algorithm: 150 env steps, the final save lost (as if killed), resumed from 100 to 250."""
    algo = request.param
    out = tmp_path_factory.mktemp(algo)
    first = train(algo, 150, out)
    assert first.num_timesteps == 150
    assert latest_checkpoint(out) == (out / "checkpoints" / "model_100_steps.zip", 100)
    assert max(int(r["timesteps"]) for r in curve(out)) > 100, (
        "the first run logged episodes past its checkpoint"
    )
    (out / "model.zip").unlink()
    resumed = train(algo, 250, out)
    assert resumed.num_timesteps == 250
    return algo, out


def test_training_logs_a_learning_curve_without_duplicated_episodes(trained: tuple[str, Path]) -> None:
    algo, out = trained
    rows = curve(out)
    steps = [int(r["timesteps"]) for r in rows]
    assert steps == sorted(steps) and len(set(steps)) == len(steps), "resume duplicated or reordered episodes"
    if ONLINE_ALGORITHMS[algo].action_set == "options":  # a step is a decision: an option spans 1 to 5 epochs
        assert 50 <= len(rows) <= 250
    else:
        assert (
            38 <= len(rows) <= 50
        )  # 250 steps of 5-step episodes, less any still running when training ends
    for row in rows:
        assert 0.0 <= float(row["final_val_accuracy"]) <= 1.0
        assert int(row["episode_length"]) == 5
    run = json.loads((out / "run.json").read_text())
    assert run["algo"] == algo and EnvSettings.from_dict(run["settings"]) == settings()
    events = list((out / "tb").rglob("events.out.tfevents.*"))
    assert events, "no TensorBoard events were written"


def test_tensorboard_has_the_esper_metrics(trained: tuple[str, Path]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    algo, out = trained
    tags: set[str] = set()
    for run in (out / "tb").iterdir():
        acc = EventAccumulator(str(run))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    expected = {"rollout/final_val_accuracy", "rollout/test_accuracy", "rollout/illegal_action_rate",
                "time/fps", "train/explained_variance"}  # fmt: skip
    if algo == "masked-recurrent-ppo":
        expected |= {"train/entropy_op", "train/entropy_slot", "train/entropy_blueprint"}
    assert expected <= tags, f"missing {sorted(expected - tags)}"


def test_save_load_predict_give_the_same_actions(trained: tuple[str, Path]) -> None:
    algo, out = trained
    env = make_online_env(algo, settings())
    try:
        name, a = load_online_model(out / "model.zip", env, device="cpu")
        assert name == algo
        _, b = load_online_model(out, env, device="cpu")  # a run directory works too
        first, second = run_online_episode(a, algo, env, seed=11), run_online_episode(b, algo, env, seed=11)
        assert np.array_equal(first.actions, second.actions)
        assert first.final_accuracy == second.final_accuracy
        obs = np.stack([env.observation_space.sample() for _ in range(8)])
        record = ONLINE_ALGORITHMS[algo]
        kwargs = {"episode_start": np.ones(8, dtype=bool)} if record.recurrent else {}
        assert np.array_equal(a.predict(obs, deterministic=True, **kwargs)[0],
                              b.predict(obs, deterministic=True, **kwargs)[0])  # fmt: skip
    finally:
        env.close()


def test_evaluation_reports_accuracy_action_mix_and_illegal_actions(trained: tuple[str, Path]) -> None:
    algo, out = trained
    env = make_online_env(algo, settings())
    try:
        _, model = load_online_model(out, env, device="cpu")
        episodes = 20 if ONLINE_ALGORITHMS[algo].masked else 3
        summary = evaluate_online(model, algo, env, episodes, seed=100)
    finally:
        env.close()
    assert summary["episodes"] == episodes
    assert 0.0 <= summary["final_val_accuracy"]["mean"] <= 1.0
    assert sum(summary["action_mix"].values()) == pytest.approx(1.0)
    if ONLINE_ALGORITHMS[algo].masked:
        assert summary["illegal_actions"] == 0, "a masked algorithm took an illegal action"


def test_a_finished_run_returns_its_model_and_a_changed_run_is_refused(trained: tuple[str, Path]) -> None:
    algo, out = trained
    mtime = (out / "model.zip").stat().st_mtime
    assert train(algo, 250, out).num_timesteps == 250
    assert (out / "model.zip").stat().st_mtime == mtime, "a finished run trained again"
    with pytest.raises(ValueError, match="holds a run of"):
        train(algo, 250, out, seed=1)


def test_a_run_json_written_before_the_settings_record_still_resumes(tmp_path: Path) -> None:
    """run.json once held ``env_id`` and the ``env_kwargs`` given; such a run resumes, another is refused."""
    old = {"algo": "maskable-ppo", "env_id": "Esper-SynthCIFAR-v1", "env_kwargs": {"fidelity": "nano", "max_epochs": 5},
           "n_envs": 1, "seed": 0, "hyperparameters": {"n_steps": 8}, "steps": 100}  # fmt: skip
    (tmp_path / "run.json").write_text(json.dumps(old))
    v1 = settings().replace(env_id="Esper-SynthCIFAR-v1")  # such runs are of v1, which stays registered
    run = {"algo": "maskable-ppo", "settings": v1.to_dict(), "n_envs": 1, "seed": 0,
           "hyperparameters": {"n_steps": 8}, "steps": 200}  # fmt: skip
    assert _check_run(tmp_path, run) is True
    with pytest.raises(ValueError, match="holds a run of"):
        _check_run(tmp_path, {**run, "settings": v1.replace(reward="sparse").to_dict()})
    with pytest.raises(
        ValueError, match="holds a run of"
    ):  # resumed on v2, it would meet another observation
        _check_run(tmp_path, {**run, "settings": settings().to_dict()})


class Touch:
    """A pickle that runs code when loaded: it creates ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.path,))


def test_the_loader_refuses_unknown_pickles_and_never_unpickles(
    trained: tuple[str, Path], tmp_path: Path
) -> None:
    algo, out = trained
    marker, probe = tmp_path / "ran", tmp_path / "probe"
    pickle.loads(pickle.dumps(Touch(probe)))
    assert probe.exists(), "the payload is not live"
    evil = {":type:": "<class 'x'>", ":serialized:": base64.b64encode(pickle.dumps(Touch(marker))).decode()}

    def crafted(name: str, **entries: dict) -> Path:
        path = tmp_path / name
        with zipfile.ZipFile(out / "model.zip") as src, zipfile.ZipFile(path, "w") as dst:
            for item in src.infolist():
                payload = src.read(item.filename)
                if item.filename == "data":
                    payload = json.dumps({**json.loads(payload), **entries}).encode()
                dst.writestr(item, payload)
        return path

    env = make_online_env(algo, settings())
    try:
        # A known entry (the spaces, the schedules) is replaced, never unpickled.
        data = json.loads(zipfile.ZipFile(out / "model.zip").read("data"))
        hijacked = {k: {**v, ":serialized:": evil[":serialized:"]} for k, v in data.items()
                    if isinstance(v, dict) and ":serialized:" in v}  # fmt: skip
        assert hijacked
        load_online_model(crafted("known.zip", **hijacked), env, device="cpu")
        assert not marker.exists(), "the loader unpickled an entry of the file"
        with pytest.raises(ValueError, match="pickled entries Esper does not load: \\['extra'\\]"):
            load_online_model(crafted("unknown.zip", extra=evil), env, device="cpu")
        assert not marker.exists()
        with pytest.raises(ValueError, match="none of the online algorithms"):
            load_online_model(
                crafted("other.zip", policy_class={**data["policy_class"], "__module__": "x"}), env
            )
    finally:
        env.close()
    with pytest.raises(ValueError, match="not an SB3 model zip"):
        bad = tmp_path / "bad.zip"
        bad.write_bytes(io.BytesIO(b"not a zip").getvalue())
        load_online_model(bad, None)


def test_a_model_for_other_spaces_is_refused(trained: tuple[str, Path]) -> None:
    algo, out = trained
    other = next(a for a in ALGOS if ONLINE_ALGORITHMS[a].action_set != ONLINE_ALGORITHMS[algo].action_set)
    env = make_online_env(other, settings())
    try:
        with pytest.raises(ValueError, match="space"):
            load_online_model(out, env)
    finally:
        env.close()


def test_bad_arguments_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="steps must be a positive integer.*-5"):
        train("maskable-ppo", -5, tmp_path)
    with pytest.raises(ValueError, match="checkpoint_every.*0"):
        train("maskable-ppo", 10, tmp_path, checkpoint_every=0)
    with pytest.raises(ValueError, match="dqn"):
        train("dqn", 10, tmp_path)
    with pytest.raises(ValueError, match="n_envs.*0"):
        train("maskable-ppo", 10, tmp_path / "n", n_envs=0)


def test_the_esper_command_trains_resumes_and_evaluates(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """``esper train-online`` on two subprocess envs, then ``esper evaluate`` on the run directory."""
    from esper_agents import cli

    out = tmp_path / "run"
    argv = ["train-online", "--algo", "maskable-ppo", "--fidelity", "test", "--max-epochs", "5", "--n-envs", "2",
            "--steps", "100", "--checkpoint-every", "100", "--out", str(out), "--no-progress", "--eval-episodes", "2"]  # fmt: skip
    assert cli.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 100 and summary["evaluation"]["episodes"] == 2
    assert latest_checkpoint(out) == (out / "checkpoints" / "model_100_steps.zip", 100)
    capsys.readouterr()
    report = tmp_path / "eval.json"
    argv = ["evaluate", "--policy", str(out), "--fidelity", "test", "--max-epochs", "5", "--episodes", "2",
            "--seed", "1000", "--out", str(report)]  # fmt: skip
    assert cli.main(argv) == 0
    evaluation = json.loads(report.read_text())
    assert evaluation["kind"] == "online model (maskable-ppo)"
    assert evaluation["illegal_actions"] == 0 and evaluation["episodes"] == 2
    assert (
        evaluation["final_val_accuracy"] == summary["evaluation"]["final_val_accuracy"]
    )  # same seeds, same model
