"""A resumed online run is the run it resumes: checkpoints after the update with the whole resume state,
atomic model files, and a torn last checkpoint skipped for the one before it.

Runs use a test-only "nano" fidelity (tests/conftest.py's NANO) and 3-epoch episodes, so that
each algorithm trains its 60 steps in seconds. Exactness is bit for bit: ``episodes.csv`` byte
for byte and every weight ``torch.equal``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from esper_agents.online.algorithms import ONLINE_ALGORITHMS
from esper_agents.online.train import latest_checkpoint, train_online
from esper_env.configs import FIDELITIES
from esper_env.settings import EnvSettings
from tests.conftest import NANO

#: The masked recurrent PPO takes about 30 s here on a shared 2-core machine: slow.
ALGOS = [
    pytest.param(a, marks=pytest.mark.slow) if a == "masked-recurrent-ppo" else a for a in ONLINE_ALGORITHMS
]
SMALL = {"n_steps": 10, "batch_size": 10, "n_epochs": 1}


@pytest.fixture(scope="module", autouse=True)
def nano_fidelity() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(FIDELITIES, "nano", NANO)
        yield


def settings() -> EnvSettings:
    """3-epoch episodes at the nano fidelity (registered by :func:`nano_fidelity`)."""
    return EnvSettings(fidelity="nano", max_epochs=3)


def train(algo: str, steps: int, out: Path) -> object:
    """Checkpoints at 20, 40, ... env steps (rollouts of 10 on one env)."""
    return train_online(algo, steps, out, settings(), n_envs=1, checkpoint_every=20, progress=False,
                        tensorboard=False, hyperparameters=SMALL)  # fmt: skip


def lose_final_model(out: Path) -> None:
    """What a kill before the final save leaves: no model.zip (nor its resume state)."""
    for name in ("model.zip", "model.resume.pt"):
        (out / name).unlink(missing_ok=True)


def assert_same_run(out: Path, model: object, ref: Path, ref_model: object) -> None:
    assert (out / "episodes.csv").read_bytes() == (ref / "episodes.csv").read_bytes()
    assert model.num_timesteps == ref_model.num_timesteps and model._n_updates == ref_model._n_updates
    ours, theirs = model.policy.state_dict(), ref_model.policy.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours), "the resumed run's weights differ"
    assert (out / "model.zip").is_file()


@pytest.fixture(scope="module", params=ALGOS)
def uninterrupted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """Each algorithm, 60 env steps in one go."""
    out = tmp_path_factory.mktemp(request.param) / "run"
    return request.param, out, train(request.param, 60, out)


def test_a_resume_at_a_checkpoint_is_the_uninterrupted_run(uninterrupted: tuple, tmp_path: Path) -> None:
    algo, ref, ref_model = uninterrupted
    out = tmp_path / "killed"
    train(algo, 50, out)
    lose_final_model(out)
    assert latest_checkpoint(out) == (out / "checkpoints" / "model_40_steps.zip", 40)
    assert_same_run(out, train(algo, 60, out), ref, ref_model)


def test_a_finished_run_asked_for_more_steps_continues_exactly(uninterrupted: tuple, tmp_path: Path) -> None:
    algo, ref, ref_model = uninterrupted
    if algo != "maskable-ppo":
        pytest.skip("the same code path for every algorithm; one suffices")
    out = tmp_path / "extended"
    train(algo, 30, out)
    assert_same_run(out, train(algo, 60, out), ref, ref_model)


def test_a_checkpoint_holds_the_update_of_its_last_rollout(uninterrupted: tuple, tmp_path: Path) -> None:
    """The checkpoint at 20 steps is the model after 2 rollouts and 2 updates, not before the second."""
    algo, _, _ = uninterrupted
    out = tmp_path / "run"
    at_20 = train(algo, 20, out)
    assert at_20._n_updates == 2 * SMALL["n_epochs"]  # SB3 counts epochs
    from esper_agents.online.envs import make_online_env
    from esper_agents.online.saved import load_online_model

    env = make_online_env(algo, settings())
    try:
        _, saved = load_online_model(out / "checkpoints" / "model_20_steps.zip", env, device="cpu")
    finally:
        env.close()
    assert saved._n_updates == at_20._n_updates
    ours, theirs = saved.policy.state_dict(), at_20.policy.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_a_torn_last_checkpoint_falls_back_to_the_one_before(tmp_path: Path) -> None:
    algo = "maskable-ppo"
    ref = tmp_path / "ref"
    ref_model = train(algo, 60, ref)
    cases = {
        "zip": lambda out: truncate(out / "checkpoints" / "model_40_steps.zip"),
        "resume state": lambda out: truncate(out / "checkpoints" / "model_40_steps.resume.pt"),
        "resume state of another step": lambda out: shutil.copy(
            out / "checkpoints" / "model_20_steps.resume.pt", out / "checkpoints" / "model_40_steps.resume.pt"
        ),
    }
    killed = tmp_path / "killed"
    train(algo, 50, killed)
    lose_final_model(killed)
    for case, tear in cases.items():
        out = tmp_path / case.replace(" ", "-")
        shutil.copytree(killed, out)
        tear(out)
        (out / "checkpoints" / ".tmp-model_60_steps.zip-x").write_bytes(b"PK\x03")  # a kill's leftover
        with pytest.warns(UserWarning, match="skipping checkpoint .*model_40_steps"):
            model = train(algo, 60, out)
        assert_same_run(out, model, ref, ref_model)
        assert not list(out.rglob(".tmp-*")), case


def test_a_torn_final_model_does_not_block_the_resume(tmp_path: Path) -> None:
    """model.zip cut short (a kill while an in-place writer wrote it): the same command resumes."""
    algo = "maskable-ppo"
    ref = tmp_path / "ref"
    ref_model = train(algo, 60, ref)
    out = tmp_path / "run"
    train(algo, 50, out)
    truncate(out / "model.zip")
    with pytest.warns(UserWarning, match="model.zip"):
        model = train(algo, 60, out)
    assert_same_run(out, model, ref, ref_model)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# ------------------------------------------------------------------ esper train-online, killed with SIGKILL

#: ``esper`` with the nano fidelity registered; ESPER_TEST_KILL_ON_RENAME=<name> makes the process
#: SIGKILL itself when it is about to rename a finished temporary file onto ``name`` (a kill while
#: that model file is written: the temporary file is whole, the real one not there yet).
_ESPER = """
import os, signal, sys
import esper_env.configs as c
c.FIDELITIES["nano"] = c.Fidelity("nano", 64, 32, 32, 8)
victim = os.environ.get("ESPER_TEST_KILL_ON_RENAME")
if victim:
    replace = os.replace
    def killing_replace(src, dst):
        if os.path.basename(dst) == victim:
            os.kill(os.getpid(), signal.SIGKILL)
        replace(src, dst)
    os.replace = killing_replace
from esper_agents.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _esper(out: Path) -> list[str]:
    return [sys.executable, "-c", _ESPER, "train-online", "--algo", "maskable-ppo", "--fidelity", "nano",
            "--max-epochs", "3", "--n-envs", "1", "--steps", "200", "--checkpoint-every", "50", "--out", str(out),
            "--no-progress", "--no-tensorboard"]  # fmt: skip


def _environ(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd(), **extra}


def _finish(out: Path) -> None:
    done = subprocess.run(_esper(out), capture_output=True, text=True, env=_environ(), check=False)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def cli_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "ref"
    _finish(out)
    return out


def _kill_when(out: Path, ready: object) -> None:
    proc = subprocess.Popen(_esper(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_environ(),
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 600  # a hang guard only, not a speed check
    while not ready() and proc.poll() is None:
        assert time.monotonic() < deadline, "the run never reached the moment to kill"
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before the moment to kill"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _rows(out: Path) -> int:
    path = out / "episodes.csv"
    return len(path.read_text().splitlines()) - 1 if path.exists() else 0


def _assert_same_files(out: Path, ref: Path) -> None:
    from esper_agents.online.envs import make_online_env
    from esper_agents.online.saved import load_online_model

    assert (out / "episodes.csv").read_bytes() == (ref / "episodes.csv").read_bytes()
    env = make_online_env("maskable-ppo", settings())
    try:
        ours = load_online_model(out, env, device="cpu")[1].policy.state_dict()
        theirs = load_online_model(ref, env, device="cpu")[1].policy.state_dict()
    finally:
        env.close()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


@pytest.mark.slow
def test_killed_before_the_first_checkpoint_then_resumed(cli_reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _kill_when(out, lambda: _rows(out) >= 2)
    assert latest_checkpoint(out) is None, "the kill came after the first checkpoint"
    _finish(out)
    _assert_same_files(out, cli_reference)


@pytest.mark.slow
def test_killed_mid_run_then_resumed(cli_reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _kill_when(out, lambda: latest_checkpoint(out) is not None and _rows(out) >= 20)
    assert not (out / "model.zip").exists(), "the kill came after the run ended"
    _finish(out)
    _assert_same_files(out, cli_reference)


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["model_100_steps.zip", "model_100_steps.resume.pt", "model.zip"])
def test_killed_while_a_model_file_is_written_then_resumed(
    cli_reference: Path, tmp_path: Path, victim: str
) -> None:
    out = tmp_path / "run"
    killed = subprocess.run(_esper(out), capture_output=True, text=True, check=False,
                            env=_environ(ESPER_TEST_KILL_ON_RENAME=victim))  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert list(out.rglob(".tmp-*")), "no temporary file was left by the kill"
    assert not list(out.rglob(victim)), f"{victim} was written in place"
    _finish(out)
    _assert_same_files(out, cli_reference)
    assert not list(out.rglob(".tmp-*"))
