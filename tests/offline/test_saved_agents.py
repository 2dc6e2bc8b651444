"""Saved agents and everything the CLI loads: no file can run code, names never shadow paths."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from esper_agents import cli
from esper_agents.offline import AgentFileError, load_agent, train_offline
from esper_agents.offline.saved import AGENT_FILE, WEIGHTS_FILE, save_agent
from tests.offline.test_offline_algos import N_ACTIONS, N_FEATURES, synthetic_records


class Exploit:
    """Unpickling this creates ``path``: proof that code ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple:
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def agent_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bc")
    return Path(train_offline("bc", synthetic_records(), n_steps=5, out=out, show_progress=False).model_path)


def _copy_agent(agent_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "agent"
    target.mkdir()
    for name in (AGENT_FILE, WEIGHTS_FILE):
        (target / name).write_bytes((agent_dir / name).read_bytes())
    return target


def _replace_weights(agent: Path, data: bytes) -> None:
    """Swap weights.pt and re-sign agent.json, as an attacker who controls both files would."""
    (agent / WEIGHTS_FILE).write_bytes(data)
    doc = json.loads((agent / AGENT_FILE).read_text())
    doc["weights"]["sha256"] = hashlib.sha256(data).hexdigest()
    (agent / AGENT_FILE).write_text(json.dumps(doc))


def _evaluate(policy: str | Path, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = cli.main(
        ["evaluate", "--policy", str(policy), "--episodes", "1", "--fidelity", "test", "--max-epochs", "1"]
    )
    return code, capsys.readouterr().err


def test_the_exploit_runs_code_when_unpickled(tmp_path: Path) -> None:
    # The control: d3rlpy's own loader runs it, so the refusals below are real.
    import d3rlpy

    marker, model = tmp_path / "ran", tmp_path / "model.d3"
    model.write_bytes(pickle.dumps(Exploit(marker)))
    with pytest.raises(Exception):  # noqa: B017  (what fails after the code ran does not matter)
        d3rlpy.load_learnable(str(model))
    assert marker.exists()


def test_save_and_load_round_trip(agent_dir: Path, tmp_path: Path) -> None:
    agent = load_agent(agent_dir)
    obs = np.random.default_rng(0).normal(size=(16, N_FEATURES + N_ACTIONS)).astype(np.float32)
    obs[:, N_FEATURES:] = 1.0
    again = load_agent(save_agent(agent, tmp_path / "again"))
    np.testing.assert_array_equal(agent.predict(obs), again.predict(obs))
    assert sorted(p.name for p in agent_dir.iterdir()) == [AGENT_FILE, WEIGHTS_FILE]


def test_a_pickled_model_file_is_refused_and_runs_nothing(tmp_path: Path, capsys) -> None:
    marker, model = tmp_path / "ran", tmp_path / "model.d3"
    model.write_bytes(pickle.dumps(Exploit(marker)))
    code, err = _evaluate(model, capsys)
    assert code == 2 and err.startswith("esper: error:") and "is a file" in err and "pickle" in err
    assert not marker.exists()


@pytest.mark.parametrize("form", ["torch.save", "raw pickle"])
def test_weights_holding_code_are_refused_and_run_nothing(
    agent_dir: Path, tmp_path: Path, capsys, form
) -> None:
    marker, agent = tmp_path / "ran", _copy_agent(agent_dir, tmp_path)
    if form == "torch.save":
        buf = __import__("io").BytesIO()
        torch.save({"imitator": Exploit(marker)}, buf)
        data = buf.getvalue()
    else:
        data = pickle.dumps(Exploit(marker))
    _replace_weights(agent, data)
    with pytest.raises(AgentFileError, match="not a tensors-only weights file"):
        load_agent(agent)
    code, err = _evaluate(agent, capsys)
    assert code == 2 and WEIGHTS_FILE in err
    assert not marker.exists()


def test_checkpoints_are_saved_agents_that_refuse_code(tmp_path: Path) -> None:
    result = train_offline("bc", synthetic_records(), n_steps=4, out=tmp_path / "run", n_steps_per_epoch=2,
                           show_progress=False)  # fmt: skip
    checkpoints = sorted((tmp_path / "run" / "logs").glob("*/model_*"))
    assert [p.name for p in checkpoints] == ["model_2", "model_4"]
    np.testing.assert_array_equal(
        load_agent(checkpoints[-1]).predict(np.ones((3, N_FEATURES + N_ACTIONS), np.float32)),
        result.algo.predict(np.ones((3, N_FEATURES + N_ACTIONS), np.float32)),
    )
    marker = tmp_path / "ran"
    _replace_weights(checkpoints[0], pickle.dumps(Exploit(marker)))
    with pytest.raises(AgentFileError):
        load_agent(checkpoints[0])
    assert not marker.exists()


def test_agent_json_errors_name_the_file(agent_dir: Path, tmp_path: Path) -> None:
    agent = _copy_agent(agent_dir, tmp_path)
    doc = json.loads((agent / AGENT_FILE).read_text())
    doc["config"]["config"]["type"] = "dqn"
    (agent / AGENT_FILE).write_text(json.dumps(doc))
    with pytest.raises(AgentFileError, match=f"{AGENT_FILE}: config type 'dqn' is not one of"):
        load_agent(agent)
    (agent / AGENT_FILE).write_text("[" * 100_000)
    with pytest.raises(AgentFileError, match="not valid JSON"):
        load_agent(agent)
    with pytest.raises(AgentFileError, match="missing"):
        load_agent(tmp_path)


def test_a_pack_holding_pickles_is_refused_and_runs_nothing(tiny_pack: Path, tmp_path: Path, capsys) -> None:
    from esper_agents.generation.packs import with_checksum

    pack, marker = tmp_path / "pack", tmp_path / "ran"
    _copy_tree(tiny_pack, pack)
    jp = min((pack / "episodes").glob("*.json"))
    npz = jp.with_suffix(".npz")
    npz.write_bytes(pickle.dumps(Exploit(marker)))
    doc = json.loads(jp.read_text())
    doc["arrays"]["sha256"] = hashlib.sha256(npz.read_bytes()).hexdigest()
    jp.write_text(json.dumps(with_checksum(doc)))
    for argv in (["health", "--pack", str(pack)], ["export", "--pack", str(pack), "--format", "d3rlpy", "--out", str(tmp_path / "x.h5")],
                 ["train-offline", "--algo", "bc", "--pack", str(pack), "--steps", "2", "--out", str(tmp_path / "t")]):  # fmt: skip
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("esper: error:") and npz.name in err and "pickled" in err, err
    assert not marker.exists()


def test_a_policy_name_and_a_path_never_shadow_each_other(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    Path("baseline").write_bytes(b"not a policy")
    code, err = _evaluate("baseline", capsys)
    assert code == 2 and "write --policy ./baseline" in err
    code, err = _evaluate("./baseline", capsys)  # the explicit path form is a path, not the policy
    assert code == 2 and "is a file; a saved agent is a directory" in err
    code, err = _evaluate("no-such-thing", capsys)
    assert code == 2 and "neither a saved agent directory nor a behavior policy" in err


def test_pack_files_get_the_usual_umask_modes(tiny_pack: Path) -> None:
    from esper_agents.common.io import atomic_write

    old = os.umask(0o022)
    try:
        atomic_write(tiny_pack.parent / "probe.json", b"{}")
    finally:
        os.umask(old)
    assert (tiny_pack.parent / "probe.json").stat().st_mode & 0o777 == 0o644
    created = [tiny_pack / "pack.json", *sorted((tiny_pack / "episodes").iterdir())]
    assert {p.stat().st_mode & 0o777 for p in created} == {0o666 & ~old}


def _copy_tree(src: Path, dst: Path) -> None:
    import shutil

    shutil.copytree(src, dst)
