"""Generation: schema, collector, packs (atomicity, checksums, versions), orchestrator, exports."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from esper_agents.generation import packs
from esper_agents.generation.collector import EpisodeRecord, collect_episode
from esper_agents.generation.exports import load_d3rlpy, save_d3rlpy, to_d3rlpy
from esper_agents.generation.orchestrator import generate
from esper_agents.generation.pack_writer import PackWriter
from esper_agents.generation.packs import PackError, open_pack
from esper_agents.generation.planning import (
    EpisodeTask,
    adaptive_targets,
    episode_id,
    plan_extra,
    plan_uniform,
)
from esper_agents.generation.provenance import pack_header
from esper_agents.generation.relabel import episode_rewards, reward_config
from esper_agents.generation.schema import (
    SCHEMA_VERSION,
    STEP_ARRAYS,
    return_to_go,
    state_hash,
    trajectory_quality,
)
from esper_agents.generation.spec import SpecError, parse_spec
from esper_agents.policies import EpsilonGreedy, get_policy
from esper_env.rewards import relabel
from esper_env.settings import EnvSettings
from esper_env.spaces import make_observation_space
from esper_env.wrappers import CompactActions, compact_action_table

os.environ.setdefault("OMP_NUM_THREADS", "1")

OBS = make_observation_space(3, context=True).shape[0]
N_ACTIONS = len(compact_action_table(3))  # CompactActions with 3 slots


def small_spec_doc(name: str = "unit", **matrix: object) -> dict:
    """Test fidelity, 4 epochs, early stop after 2 flat epochs: a mix of truncated and terminated episodes."""
    return {
        "name": name,
        "env": {"id": "Esper-SynthCIFAR-v2", "fidelity": "test", "max_epochs": 4, "early_stop_patience": 2},
        "matrix": {
            "policies": ["baseline", "random"],
            "configs": ["baseline", "fast-lr"],
            "epsilons": [0.0, 0.2],
            "episodes_per_cell": 2,
            "policy": {"random": {"epsilons": [1.0]}},
            **matrix,
        },
    }


@pytest.fixture(scope="session")
def pack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("packs") / "unit"
    generate(parse_spec(small_spec_doc()), out, workers=1, progress=False, log=lambda m: None)
    return out


@pytest.fixture(scope="session")
def record() -> EpisodeRecord:
    env = CompactActions(EnvSettings(fidelity="test", max_epochs=4).make())
    return collect_episode(env, EpsilonGreedy(get_policy("aggressive"), 0.3), seed=7, episode_id="one")


# ------------------------------------------------------------------ schema and collector


def test_schema_helpers() -> None:
    assert return_to_go(np.array([1.0, 2.0, 3.0])).tolist() == [6.0, 5.0, 3.0]
    assert state_hash(np.array([0.1234, -0.0])) == state_hash(np.array([0.12341, 0.0]))
    assert trajectory_quality("diverged", 0.5, 0.5, 1, 0.1) == "failure"
    assert trajectory_quality("max_epochs", 0.40, 0.50, 1, 0.1) == "failure"  # lost 10 points
    assert trajectory_quality("max_epochs", 0.11, 0.11, 0, 0.1) == "failure"  # never above chance
    assert trajectory_quality("max_epochs", 0.50, 0.505, 1, 0.1) == "success"
    assert trajectory_quality("max_epochs", 0.50, 0.505, 0, 0.1) == "partial"


def test_collector_logs_schema(record: EpisodeRecord) -> None:
    a, m, T = record.arrays, record.metadata, len(record)
    assert set(a) == set(STEP_ARRAYS)
    assert a["observations"].shape == (T + 1, OBS) and a["masks"].shape == (T + 1, N_ACTIONS)
    assert a["rc_contributions"].shape == (T, 3)
    # every logged action is legal under its mask, and mu(a|s) is the logged distribution at a
    assert a["masks"][np.arange(T), a["actions"]].all()
    np.testing.assert_allclose(a["behavior_prob"], a["behavior_probs"][np.arange(T), a["actions"]])
    np.testing.assert_allclose(a["behavior_probs"].sum(axis=1), 1.0)
    np.testing.assert_allclose(a["return_to_go"][0], m.total_return)
    np.testing.assert_allclose(relabel(record.reward_components, "shaped"), a["rewards"])
    assert a["timestep"].tolist() == list(range(T))
    assert a["training_budget_remaining"][0] == 1.0
    assert m.schema_version == SCHEMA_VERSION and m.episode_length == T
    assert m.done == bool(a["terminated"][-1]) and m.truncated == bool(a["truncated"][-1])
    assert m.done != m.truncated
    assert sum(m.action_counts.values()) == T
    assert m.behavior_policy["policy_id"] == "aggressive" and m.behavior_policy["epsilon"] == 0.3
    assert m.environment["config_id"] == "baseline" and m.environment["fidelity"] == "test"
    assert m.trajectory_quality in ("success", "partial", "failure")
    assert m.instance is None and "instance" not in m.to_dict()  # an image id: the file is as it was


def test_collector_names_the_instance_of_a_fast_tier_episode() -> None:
    settings = EnvSettings(env_id="Esper-Micro-v3", max_epochs=3, start_level=50, num_levels=5, device="cpu")
    env = CompactActions(settings.make())
    record = collect_episode(env, EpsilonGreedy(get_policy("aggressive"), 0.3), seed=7, episode_id="micro")
    drawn = settings.make().reset(seed=7)[1]["instance"]
    assert record.metadata.instance == drawn and 50 <= drawn < 55
    assert record.metadata.to_dict()["instance"] == drawn
    assert type(record.metadata).from_dict(record.metadata.to_dict()) == record.metadata
    assert record.arrays["action_valid"].all()  # the behavior kept to the masked blueprints


def test_collector_is_deterministic(record: EpisodeRecord) -> None:
    env = CompactActions(EnvSettings(fidelity="test", max_epochs=4).make())
    again = collect_episode(env, EpsilonGreedy(get_policy("aggressive"), 0.3), seed=7, episode_id="one")
    assert again.metadata.trajectory_hash == record.metadata.trajectory_hash


# ------------------------------------------------------------------ spec and plan


def test_spec_errors_name_the_bad_value() -> None:
    with pytest.raises(SpecError, match="unknown policy 'kasmina'"):
        parse_spec(small_spec_doc(policies=["kasmina"]))
    with pytest.raises(SpecError, match="unknown config 'resnet99'"):
        parse_spec(small_spec_doc(configs=["resnet99"]))
    with pytest.raises(SpecError, match="epsilon 1.5"):
        parse_spec(small_spec_doc(epsilons=[1.5]))
    with pytest.raises(SpecError, match="unknown keys \\['episodes'\\]"):
        parse_spec(small_spec_doc(episodes=3))


@pytest.mark.parametrize(
    ("env", "named"),
    [({"instances": "nope"}, r"spec\[env\]\.instances: .*'nope'.*'bottlenecks'"),
     ({"num_levels": -1}, r"spec\[env\]\.num_levels: must be an integer in .* got -1"),
     ({"start_level": "7"}, r"spec\[env\]\.start_level"),
     ({"id": "Esper-SynthCIFAR-v2", "num_levels": 3}, r"spec\[env\]: num_levels=3 .*set instances")],
)  # fmt: skip
def test_spec_errors_name_a_bad_distribution_or_split(env: dict, named: str) -> None:
    doc = {**small_spec_doc(), "env": {"id": "Esper-Micro-v3", "max_epochs": 2, **env}}
    with pytest.raises(SpecError, match=named):
        parse_spec(doc)


def test_plan_is_deterministic_and_unique() -> None:
    spec = parse_spec(small_spec_doc())
    tasks = plan_uniform(spec)
    assert tasks == plan_uniform(spec)
    assert len(tasks) == spec.uniform_episodes == 8
    assert len({t.episode_id for t in tasks}) == 8 and len({t.seed for t in tasks}) == 8
    assert {t.epsilon for t in tasks if t.policy_id == "random"} == {1.0}
    assert (
        tasks[0].episode_id
        == episode_id("baseline", "baseline", 0.0, 0)
        == "baseline--baseline--e0.000--r0000"
    )
    extra = plan_extra(spec, tasks, [("baseline", "fast-lr")], 3, round=1)
    # continues the cell's epsilon cycle and replicate counts
    assert [(t.epsilon, t.replicate) for t in extra] == [(0.0, 1), (0.2, 1), (0.0, 2)]
    assert not {t.episode_id for t in extra} & {t.episode_id for t in tasks}


def test_adaptive_targets_from_failed_checks() -> None:
    from esper_agents.generation.health.results import CheckResult

    spec = parse_spec(small_spec_doc())

    class Report:
        checks: ClassVar[list[CheckResult]] = [
            CheckResult("min_op_share", "error", 0.0, 0.02, False, "", ["PRUNE"]),
            CheckResult("single_action_clusters", "error", 0.9, 0.5, False, "", [("baseline", "fast-lr")]),
            CheckResult("return_spread", "warning", 0.0, 0.1, False, "", [("random", "baseline")]),
        ]

    mass = {("random", "baseline"): {"PRUNE": 0.3}, ("baseline", "baseline"): {"PRUNE": 0.01}}
    targets, reasons = adaptive_targets(Report(), spec, mass)
    assert targets[:2] == [
        ("random", "baseline"),
        ("baseline", "fast-lr"),
    ]  # worst of each failed check first
    assert all("error" in r for r in reasons)  # the warning tier is not targeted by default


# ------------------------------------------------------------------ packs


def test_pack_round_trip(pack_dir: Path) -> None:
    pack = open_pack(pack_dir)
    spec = parse_spec(small_spec_doc())
    assert sorted(pack.episode_ids) == sorted(t.episode_id for t in plan_uniform(spec))
    assert pack.header["schema_version"] == SCHEMA_VERSION and pack.n_actions == N_ACTIONS
    for rec in pack:
        assert rec.metadata.episode_id == rec.episode_id
        assert rec.arrays["observations"].dtype == np.float32
    reasons = {pack.metadata(i).termination_reason for i in pack.episode_ids}
    assert "max_epochs" in reasons  # truncated ones; early_stop ones terminate
    # nothing but the documented files
    names = {p.name for p in (pack_dir / "episodes").iterdir()}
    assert names == {f"{i}.{ext}" for i in pack.episode_ids for ext in ("npz", "json")}
    # npz files load without pickle
    with np.load(next((pack_dir / "episodes").glob("*.npz")), allow_pickle=False) as z:
        assert "observations" in z.files


def _copy(pack_dir: Path, tmp_path: Path) -> Path:
    import shutil

    dst = tmp_path / "copy"
    shutil.copytree(pack_dir, dst)
    return dst


def test_corrupt_arrays_raise_pack_error(pack_dir: Path, tmp_path: Path) -> None:
    d = _copy(pack_dir, tmp_path)
    npz = min((d / "episodes").glob("*.npz"))
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
    with pytest.raises(PackError, match=f"{npz.name}.*sha256 mismatch"):
        open_pack(d)
    npz.unlink()
    with pytest.raises(PackError, match=f"{npz.name}: missing"):
        open_pack(d)


def test_corrupt_metadata_raises_pack_error(pack_dir: Path, tmp_path: Path) -> None:
    d = _copy(pack_dir, tmp_path)
    jp = min((d / "episodes").glob("*.json"))
    doc = json.loads(jp.read_text())
    doc["metadata"]["final_accuracy"] = 0.99  # edited without fixing the checksum
    jp.write_text(json.dumps(doc))
    with pytest.raises(PackError, match=f"{jp.name}: episode metadata checksum mismatch"):
        open_pack(d)
    jp.write_text("{not json")
    with pytest.raises(PackError, match=f"{jp.name}: episode metadata is not valid JSON"):
        open_pack(d)


def test_wrong_schema_version_raises_pack_error(pack_dir: Path, tmp_path: Path) -> None:
    d = _copy(pack_dir, tmp_path)
    hp = d / "pack.json"
    header = json.loads(hp.read_text())
    hp.write_text(json.dumps(packs.with_checksum({**header, "schema_version": "1.0.0"})))
    with pytest.raises(PackError, match="pack.json: schema_version '1.0.0' is not supported"):
        open_pack(d)
    hp.write_text(json.dumps(header))
    jp = min((d / "episodes").glob("*.json"))
    doc = json.loads(jp.read_text())
    doc["metadata"]["schema_version"] = "3.0.0"
    jp.write_text(json.dumps(packs.with_checksum(doc)))
    with pytest.raises(PackError, match=f"{jp.name}: schema_version '3.0.0' is not supported"):
        open_pack(d)
    hp.write_text(json.dumps(packs.with_checksum({**header, "format_version": 99})))
    with pytest.raises(PackError, match="format_version 99 is not supported"):
        open_pack(d)


def test_schema_2_0_episodes_are_read_with_seeds_culled_mapped(pack_dir: Path, tmp_path: Path) -> None:
    """Schema 2.0 named the metadata's pruned-seed count ``seeds_culled``; such a pack still reads."""
    d = _copy(pack_dir, tmp_path)
    hp = d / "pack.json"
    header = json.loads(hp.read_text())
    hp.write_text(json.dumps(packs.with_checksum({**header, "schema_version": "2.0.0"})))
    jp = min((d / "episodes").glob("*.json"))
    doc = json.loads(jp.read_text())
    pruned = doc["metadata"].pop("seeds_pruned")
    doc["metadata"].update(seeds_culled=pruned + 1, schema_version="2.0.0")
    jp.write_text(json.dumps(packs.with_checksum(doc)))
    pack = open_pack(d)
    meta = pack.metadata(jp.stem)
    assert meta.seeds_pruned == pruned + 1 and "seeds_culled" not in meta.to_dict()
    assert all("seeds_pruned" in pack.metadata(i).to_dict() for i in pack.episode_ids)


def test_nothing_overwritten_without_force(pack_dir: Path, tmp_path: Path, record: EpisodeRecord) -> None:
    d = _copy(pack_dir, tmp_path)
    header = json.loads((d / "pack.json").read_text())
    existing = open_pack(d).load(open_pack(d).episode_ids[0])
    with PackWriter.open(d, header) as w:  # same spec: reopened (resume), nothing touched
        with pytest.raises(PackError, match="already exists; pass force=True"):
            w.write_episode(existing)
        w.write_episode(existing, force=True)
    other = pack_header(parse_spec(small_spec_doc(name="other")))
    with pytest.raises(PackError, match="different spec.*force=True"):
        PackWriter.open(d, other)
    with pytest.raises(PackError, match="different spec.*pass force=True"):
        generate(parse_spec(small_spec_doc(name="other")), d, progress=False, log=lambda m: None)
    (tmp_path / "notapack").mkdir()
    (tmp_path / "notapack" / "precious.txt").write_text("x")
    with pytest.raises(PackError, match="not empty and not a pack"):
        PackWriter.open(tmp_path / "notapack", other, force=True)
    with PackWriter.open(d, other, force=True) as w:  # force replaces a pack
        assert w.completed_ids() == set()
    assert open_pack(d).header["generation_spec"]["name"] == "other"


def test_second_writer_is_locked_out(tmp_path: Path) -> None:
    header = pack_header(parse_spec(small_spec_doc()))
    with (
        PackWriter.open(tmp_path / "p", header),
        pytest.raises(PackError, match="another process is writing"),
    ):
        PackWriter.open(tmp_path / "p", header)


def test_crash_between_arrays_and_metadata_leaves_no_episode(
    tmp_path: Path, record: EpisodeRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    header = pack_header(parse_spec(small_spec_doc()))
    real_replace = os.replace

    def dying_replace(src: str, dst: str | Path) -> None:
        if str(dst).endswith(".json") and "episodes" in str(dst):
            raise KeyboardInterrupt("killed")  # after the .tmp metadata was written, before its rename
        real_replace(src, dst)

    with PackWriter.open(tmp_path / "p", header) as w:
        monkeypatch.setattr(packs.os, "replace", dying_replace)
        with pytest.raises(KeyboardInterrupt):
            w.write_episode(record)
        monkeypatch.setattr(packs.os, "replace", real_replace)
    ep = tmp_path / "p" / "episodes"
    assert (ep / "one.npz").exists() and not (ep / "one.json").exists()
    (ep / ".tmp-one.json-leftover").write_text("partial")
    assert len(open_pack(tmp_path / "p")) == 0  # an episode exists only with its metadata
    with PackWriter.open(tmp_path / "p", header) as w:  # reopening cleans up
        assert w.completed_ids() == set()
    assert list(ep.iterdir()) == []


def test_resume_adds_nothing_to_a_complete_pack(pack_dir: Path, tmp_path: Path) -> None:
    d = _copy(pack_dir, tmp_path)
    before = {p.name: p.stat().st_mtime_ns for p in (d / "episodes").iterdir()}
    result = generate(parse_spec(small_spec_doc()), d, progress=False, log=lambda m: None)
    assert result.new_episodes == 0 and result.episodes == 8
    assert {p.name: p.stat().st_mtime_ns for p in (d / "episodes").iterdir()} == before


def test_adaptive_round_is_planned_and_run(pack_dir: Path, tmp_path: Path) -> None:
    doc = small_spec_doc()
    doc["adaptive"] = {"budget": 2, "round_size": 2, "max_rounds": 1, "tiers": ["error", "warning"]}
    d = tmp_path / "adaptive"
    result = generate(parse_spec(doc), d, progress=False, log=lambda m: None)
    rounds = packs.read_plan(d)
    assert [r["kind"] for r in rounds] == ["uniform", "adaptive"]
    assert len(rounds[1]["episodes"]) == 2 and all(t["round"] == 1 for t in rounds[1]["episodes"])
    assert result.episodes == result.planned == 10
    assert {r.metadata.round for r in open_pack(d)} == {0, 1}


# ------------------------------------------------------------------ exports


def test_d3rlpy_export_keeps_every_transition(pack_dir: Path, tmp_path: Path) -> None:
    import d3rlpy
    from d3rlpy.dataset import InfiniteBuffer, ReplayBuffer

    pack = open_pack(pack_dir)
    buf = to_d3rlpy(pack)
    assert buf.transition_count == pack.n_transitions
    assert buf.dataset_info.action_size == N_ACTIONS
    for ep, rec in zip(buf.episodes, pack):
        assert ep.transition_count == len(rec)  # truncated episodes too
        np.testing.assert_allclose(ep.rewards[: len(rec), 0], rec.arrays["rewards"], rtol=1e-6)
        assert ep.terminated == rec.metadata.done
    assert any(not rec.metadata.done for rec in pack) and any(rec.metadata.done for rec in pack)
    # the last transition of a truncated episode bootstraps from the logged final observation
    trunc = next(i for i, rec in enumerate(pack) if not rec.metadata.done)
    rec = pack.load(pack.episode_ids[trunc])
    t = buf.transition_picker(buf.episodes[trunc], len(rec) - 1)
    np.testing.assert_array_equal(t.next_observation, rec.arrays["observations"][-1])
    assert t.terminal == 0.0

    path = save_d3rlpy(buf, tmp_path / "pack.h5", pack.n_actions)
    with open(path, "rb") as f:
        loaded = ReplayBuffer.load(f, InfiniteBuffer())
    assert loaded.transition_count == pack.n_transitions
    loaded = load_d3rlpy(path)
    assert loaded.transition_count == pack.n_transitions and loaded.dataset_info.action_size == N_ACTIONS
    cql = d3rlpy.algos.DiscreteCQLConfig(batch_size=16).create(device="cpu:0")
    cql.fit(loaded, n_steps=100, n_steps_per_epoch=100, show_progress=False, save_interval=10**9,
            logger_adapter=d3rlpy.logging.NoopAdapterFactory())  # fmt: skip
    assert cql.grad_step == 100


def test_d3rlpy_reward_relabeling(pack_dir: Path) -> None:
    pack = open_pack(pack_dir)
    buf = to_d3rlpy(pack, reward_mode="sparse")
    for ep, rec in zip(buf.episodes, pack):
        T = len(rec)
        r = ep.rewards[:T, 0]
        assert np.all(r[:-1] == 0.0) and r[-1] != 0.0  # paid once, at the last step
        np.testing.assert_allclose(r, episode_rewards(rec, reward_config(pack, "sparse")), rtol=1e-6)
    with pytest.raises(ValueError, match="unknown reward mode 'dense'"):
        to_d3rlpy(pack, reward_mode="dense")
    masked = to_d3rlpy(pack, append_mask=True)
    assert masked.dataset_info.observation_signature.shape[0] == (OBS + N_ACTIONS,)
    np.testing.assert_array_equal(
        masked.episodes[0].observations[0, OBS:], next(iter(pack)).arrays["masks"][0]
    )


def test_minari_export(pack_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    minari = pytest.importorskip("minari")
    from esper_agents.generation.exports import to_minari

    pack = open_pack(pack_dir)
    to_minari(pack, "esper/unit-v0", tmp_path / "minari")
    with pytest.raises(FileExistsError, match="already exists"):
        to_minari(pack, "esper/unit-v0", tmp_path / "minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    ds = minari.load_dataset("esper/unit-v0")
    assert ds.total_episodes == len(pack) and ds.total_steps == pack.n_transitions
    for ep, rec in zip(ds.iterate_episodes(), pack):
        T = len(rec)
        assert ep.observations.shape == (T + 1, OBS) and ep.actions.shape == (T,)
        np.testing.assert_array_equal(ep.actions, rec.arrays["actions"])
        np.testing.assert_array_equal(ep.observations, rec.arrays["observations"])
        assert bool(ep.truncations[-1]) == rec.metadata.truncated
        assert ep.infos["action_mask"].shape == (T + 1, N_ACTIONS)


def test_load_health_input_from_pack(pack_dir: Path) -> None:
    from esper_agents.generation.health.checks import run_health_checks
    from esper_agents.generation.health.inputs import load_health_input

    pack = open_pack(pack_dir)
    data = load_health_input(pack)
    assert data.n_transitions == pack.n_transitions and data.n_episodes == len(pack)
    assert data.expected_cells == 4
    report = run_health_checks(data)
    assert {c.name for c in report.checks} >= {"min_op_share", "single_action_clusters"}


def test_cli_export(pack_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from esper_agents.cli import main

    out = tmp_path / "x.h5"
    assert (
        main(
            [
                "export",
                "--pack",
                str(pack_dir),
                "--format",
                "d3rlpy",
                "--out",
                str(out),
                "--reward-mode",
                "contribution",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["transitions"] == open_pack(pack_dir).n_transitions and out.exists()
    assert main(["export", "--pack", str(pack_dir), "--format", "d3rlpy", "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["export", "--pack", str(tmp_path / "nope"), "--format", "d3rlpy", "--out", str(out)]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_episode_task_round_trip() -> None:
    t = EpisodeTask("a--b--e0.100--r0001", "a", "b", 0.1, 1, 42, 2)
    assert EpisodeTask.from_dict(json.loads(json.dumps(t.to_dict()))) == t
    assert replace(t, round=0) != t


class Killed(BaseException):
    """Stands for SIGKILL: raised from inside a write, with cleanup disabled."""


def test_killed_at_every_write_resumes_exactly(
    pack_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kill generation at each file commit in turn (temp files left behind, as after SIGKILL),
    resume, and find exactly the planned episodes and no stray file."""
    from esper_agents.generation import backends

    template = next(iter(open_pack(pack_dir)))

    def fake_run_task(task: EpisodeTask, settings: EnvSettings) -> EpisodeRecord:
        meta = replace(template.metadata, episode_id=task.episode_id, policy_id=task.policy_id,
                       config_id=task.config_id, trajectory_hash=task.episode_id)  # fmt: skip
        return EpisodeRecord(meta, template.arrays)

    monkeypatch.setattr(backends, "run_task", fake_run_task)
    spec = parse_spec(small_spec_doc())
    planned = sorted(t.episode_id for t in plan_uniform(spec))
    real_replace, real_unlink = os.replace, os.unlink
    commits = 2 + 2 * len(planned)  # pack.json, plan round 0, then .npz + .json per episode
    for k in range(1, commits + 1):
        calls = 0

        def replace_or_die(src: str, dst: str, k: int = k) -> None:
            nonlocal calls
            calls += 1
            if calls == k:
                raise Killed
            real_replace(src, dst)

        d = tmp_path / f"p{k}"
        monkeypatch.setattr(os, "replace", replace_or_die)
        monkeypatch.setattr(os, "unlink", lambda *a, **kw: None)  # a killed process cleans nothing up
        with pytest.raises(Killed):
            generate(spec, d, progress=False, log=lambda m: None)
        monkeypatch.setattr(os, "replace", real_replace)
        monkeypatch.setattr(os, "unlink", real_unlink)
        assert any(p.name.startswith(".tmp") for p in d.rglob("*"))
        generate(spec, d, progress=False, log=lambda m: None)
        pack = open_pack(d)
        assert sorted(pack.episode_ids) == planned, k
        assert not [p for p in d.rglob("*") if p.name.startswith(".tmp")], k
        assert sorted(p.stem for p in (d / "episodes").glob("*.npz")) == planned, k


def test_a_spec_on_an_older_env_version_is_refused_by_name() -> None:
    from esper_agents.generation.spec import SpecError, parse_spec

    doc = {"name": "old", "env": {"id": "Esper-SynthCIFAR-v0", "max_epochs": 3},
           "matrix": {"policies": ["baseline"], "configs": ["baseline"]}}  # fmt: skip
    with pytest.raises(SpecError, match="Esper-SynthCIFAR-v0.*older env version"):
        parse_spec(doc)
