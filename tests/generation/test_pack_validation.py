"""Pack content is checked against its header on load, whatever the checksums say."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from esper_agents import cli
from esper_agents.generation.orchestrator import generate
from esper_agents.generation.packs import PackError, decode_arrays, encode_arrays, open_pack, with_checksum
from esper_agents.generation.spec import SpecError, parse_spec
from esper_env import ENV_IDS, EnvSettings


def _copy(tiny_pack: Path, tmp_path: Path) -> Path:
    out = tmp_path / "pack"
    shutil.copytree(tiny_pack, out)
    return out


def _first_episode(pack: Path) -> tuple[Path, Path]:
    jp = min((pack / "episodes").glob("*.json"))
    return jp, jp.with_suffix(".npz")


def _resign_arrays(pack: Path, edit: Callable[[dict[str, np.ndarray]], None]) -> Path:
    """Edit the first episode's arrays and re-sign its metadata: the checksums stay valid."""
    jp, npz = _first_episode(pack)
    arrays = decode_arrays(npz.read_bytes(), npz)
    edit(arrays)
    npz.write_bytes(encode_arrays(arrays))
    doc = json.loads(jp.read_text())
    doc["arrays"]["sha256"] = hashlib.sha256(npz.read_bytes()).hexdigest()
    jp.write_text(json.dumps(with_checksum(doc)))
    return npz


def _resign_json(path: Path, edit: Callable[[dict], None]) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(with_checksum(doc)))


def _load_all(pack: Path) -> None:
    for _ in open_pack(pack):
        pass


def _set(name: str, value: Callable[[np.ndarray], np.ndarray]) -> Callable[[dict[str, np.ndarray]], None]:
    def edit(arrays: dict[str, np.ndarray]) -> None:
        arrays[name] = value(arrays[name])

    return edit


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (_set("actions", lambda a: np.where(np.arange(len(a)) == 0, 999, a)), "actions", "outside the"),
        (_set("actions", lambda a: np.where(np.arange(len(a)) == 0, -5, a)), "actions", "outside the"),
        (_set("observations", lambda a: a[:, :10]), "observations", "shape"),
        (_set("rewards", lambda a: np.full_like(a, np.nan)), "rewards", "non-finite"),
        (
            _set("observations", lambda a: np.where(np.arange(a.shape[1]) == 3, np.inf, a).astype(a.dtype)),
            "observations",
            "non-finite",
        ),
        (_set("masks", np.zeros_like), "masks", "no legal action"),
        (_set("rewards", lambda a: a.astype(np.float32)), "rewards", "dtype float32"),
    ],
)
def test_resigned_bad_content_is_refused_naming_file_and_field(
    tiny_pack, tmp_path, edit, field, message
) -> None:
    pack = _copy(tiny_pack, tmp_path)
    npz = _resign_arrays(pack, edit)
    with pytest.raises(PackError, match=rf"{npz.name}.*field '{field}'.*{message}"):
        _load_all(pack)
    assert (
        cli.main(["export", "--pack", str(pack), "--format", "d3rlpy", "--out", str(tmp_path / "x.h5")]) == 2
    )


def test_an_action_the_mask_forbids_is_refused(tiny_pack, tmp_path) -> None:
    def forbid_taken(arrays: dict[str, np.ndarray]) -> None:
        arrays["masks"][0, arrays["actions"][0]] = False
        arrays["masks"][0, 0] |= arrays["actions"][0] != 0  # keep some legal action in the row

    pack = _copy(tiny_pack, tmp_path)
    _resign_arrays(pack, forbid_taken)
    with pytest.raises(PackError, match=r"field 'masks'.*illegal under the logged mask at steps \[0\]"):
        _load_all(pack)


def test_a_missing_planned_episode_is_an_error_unless_partial(tiny_pack, tmp_path, capsys) -> None:
    pack = _copy(tiny_pack, tmp_path)
    jp, _ = _first_episode(pack)
    jp.unlink()
    with pytest.raises(
        PackError, match=r"holds 3 of the 4 planned episodes.*Resume it by rerunning.*--partial"
    ):
        open_pack(pack)
    assert len(open_pack(pack, partial=True)) == 3
    assert cli.main(["health", "--pack", str(pack), "--clusters", "2"]) == 2
    assert "did not finish" in capsys.readouterr().err
    assert cli.main(["health", "--pack", str(pack), "--clusters", "2", "--partial"]) in (0, 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            lambda doc: doc.replace('"final_accuracy":', '"final_accuracy": NaN, "x":', 1),
            "NaN is not a JSON number",
        ),
        (lambda doc: doc[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    ],
)
def test_unreadable_episode_json_names_the_file(tiny_pack, tmp_path, text, message) -> None:
    pack = _copy(tiny_pack, tmp_path)
    jp, _ = _first_episode(pack)
    jp.write_text(text(jp.read_text()))
    with pytest.raises(PackError, match=rf"{jp.name}.*{message}"):
        open_pack(pack)


@pytest.mark.parametrize("value", ["../escape.npz", 5, None, "other.npz"])
def test_a_bad_arrays_file_names_the_file(tiny_pack, tmp_path, value) -> None:
    pack = _copy(tiny_pack, tmp_path)
    jp, _ = _first_episode(pack)
    _resign_json(jp, lambda doc: doc["arrays"].__setitem__("file", value))
    with pytest.raises(PackError, match=rf"{jp.name}: arrays.file is"):
        open_pack(pack)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("n_actions", "many"),
        ("num_slots", "3"),
        ("observation_dim", 2.5),
        ("max_epochs", True),
        ("env_id", 7),
    ],
)
def test_wrong_types_in_the_header_environment_are_named(tiny_pack, tmp_path, key, value) -> None:
    pack = _copy(tiny_pack, tmp_path)
    _resign_json(pack / "pack.json", lambda doc: doc["environment"].__setitem__(key, value))
    with pytest.raises(PackError, match=rf"pack.json: environment.{key} must be"):
        open_pack(pack)


def test_another_env_version_is_refused(tiny_pack, tmp_path) -> None:
    pack = _copy(tiny_pack, tmp_path)
    env_id = open_pack(pack).environment["env_id"]
    other = env_id.rpartition("-")[0] + "-v99"
    _resign_json(pack / "pack.json", lambda doc: doc["environment"].__setitem__("env_id", other))
    with pytest.raises(
        PackError, match=rf"generated with {other} \(env version v99\); this code has {env_id}"
    ):
        open_pack(pack)


def test_the_pack_records_env_version_torch_version_and_threads(tiny_pack) -> None:
    pack = open_pack(tiny_pack)
    assert pack.environment["env_id"] in ENV_IDS
    assert (
        pack.environment["torch_version"] == torch.__version__ and pack.environment["torch_num_threads"] == 1
    )
    meta = pack.metadata(pack.episode_ids[0]).environment
    assert meta["torch_version"] == torch.__version__ and meta["torch_num_threads"] == 1


def test_export_over_a_directory_is_refused_and_leaves_nothing(tiny_pack, tmp_path, capsys) -> None:
    out = tmp_path / "exists"
    out.mkdir()
    assert (
        cli.main(["export", "--pack", str(tiny_pack), "--format", "d3rlpy", "--out", str(out), "--force"])
        == 2
    )
    assert "is a directory" in capsys.readouterr().err
    assert list(tmp_path.rglob(".tmp-*")) == [] and list(out.iterdir()) == []


def _spec(env_id: str, **env: object) -> dict:
    return {
        "name": "build-check",
        "env": {"id": env_id, "fidelity": "test", "max_epochs": 1, **env},
        "matrix": {
            "policies": ["baseline"],
            "configs": ["baseline"],
            "epsilons": [0.0],
            "episodes_per_cell": 1,
        },
    }


def test_a_spec_whose_env_cannot_be_built_writes_nothing(tmp_path, monkeypatch) -> None:
    synth = next(i for i, kw in ENV_IDS.items() if kw["dataset"] == "synthcifar")
    cifar = next(i for i, kw in ENV_IDS.items() if kw["dataset"] == "cifar10")
    out = tmp_path / "pack"
    with pytest.raises(SpecError, match="cannot be built.*num_slots=9"):
        generate(parse_spec(_spec(synth, num_slots=9)), out, progress=False, log=lambda m: None)
    assert not out.exists()
    monkeypatch.setenv("ESPER_DATA_DIR", str(tmp_path / "no-data"))
    with pytest.raises(SpecError, match="cannot be built"):
        generate(parse_spec(_spec(cifar)), out, progress=False, log=lambda m: None)
    assert not out.exists()
    result = generate(parse_spec(_spec(synth)), out, progress=False, log=lambda m: None)  # the fixed spec
    assert result.episodes == 1


def test_spec_synth_seed_must_not_be_negative() -> None:
    synth = next(i for i, kw in ENV_IDS.items() if kw["dataset"] == "synthcifar")
    with pytest.raises(SpecError, match=r"synth_seed: must be an integer >= 0, got -1"):
        parse_spec(_spec(synth, synth_seed=-1))


#: ``generation_spec.env`` as packs were written before ``EnvSettings`` (no config, threads or device).
OLD_ENV_KEYS = (
    "env_id",
    "fidelity",
    "max_epochs",
    "num_slots",
    "reward",
    "synth_seed",
    "early_stop_patience",
)


def _as_written_before_the_settings_record(doc: dict) -> None:
    env = doc["generation_spec"]["env"]
    doc["generation_spec"]["env"] = {k: env[k] for k in OLD_ENV_KEYS}


def test_the_header_stores_the_settings_record(tiny_pack) -> None:
    pack = open_pack(tiny_pack)
    assert EnvSettings.from_dict(pack.header["generation_spec"]["env"]) == pack.settings
    assert pack.settings.to_dict() == pack.header["generation_spec"]["env"]
    assert (pack.settings.env_id, pack.settings.fidelity, pack.settings.max_epochs) == (
        pack.environment["env_id"], pack.environment["fidelity"], pack.max_epochs
    )  # fmt: skip


def test_a_pack_written_before_the_settings_record_reads_replays_and_resumes(tiny_pack, tmp_path) -> None:
    from esper_agents.generation.exports import minari_env_spec
    from esper_agents.generation.pack_writer import PackWriter

    new = open_pack(tiny_pack)
    pack = _copy(tiny_pack, tmp_path)
    _resign_json(pack / "pack.json", _as_written_before_the_settings_record)
    old = open_pack(pack)
    assert set(old.header["generation_spec"]["env"]) == set(OLD_ENV_KEYS)
    assert (
        old.settings == new.settings
    )  # threads from environment.torch_num_threads, the matrix's first config
    assert cli.main(["validate", "--pack", str(pack), "--episodes", "1"]) == 0
    assert minari_env_spec(old, "baseline") == minari_env_spec(new, "baseline")
    with PackWriter.open(pack, new.header):  # the same spec resumes it rather than "a different spec"
        pass
    with pytest.raises(PackError, match="generated from a different spec"):
        PackWriter.open(
            pack, {**new.header, "generation_spec": {**new.header["generation_spec"], "name": "x"}}
        )


def test_bad_header_settings_are_named(tiny_pack, tmp_path) -> None:
    pack = _copy(tiny_pack, tmp_path)
    _resign_json(pack / "pack.json", lambda doc: doc["generation_spec"]["env"].__setitem__("reward", "dense"))
    with pytest.raises(
        PackError, match=r"pack.json: generation_spec.env: unknown reward mode 'dense'; valid"
    ):
        open_pack(pack)
