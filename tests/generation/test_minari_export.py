"""The Minari export is self-contained: env spec, per-episode preset and reference scores."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from esper_agents.generation.exports import MINARI_PRESETS_KEY, minari_env_spec, to_minari
from esper_agents.generation.orchestrator import generate
from esper_agents.generation.packs import Pack, open_pack
from esper_agents.generation.replay import replay_episode, replay_settings
from esper_agents.generation.spec import parse_spec
from esper_env import references
from esper_env.references import ReferenceScores
from esper_env.rewards import REWARD_MODES
from esper_env.settings import EnvSettings
from esper_env.wrappers import CompactActions

minari = pytest.importorskip("minari")

ENV_ID = "Esper-SynthCIFAR-v2"
REF_KEYS = ("ref_min_score", "ref_max_score", "num_episodes_average_score")


@pytest.fixture(scope="module")
def multi_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two episodes, one per preset (baseline, fast-lr), 2 epochs at "test"."""
    doc = {
        "name": "multi",
        "env": {"id": ENV_ID, "fidelity": "test", "max_epochs": 2},
        "matrix": {"policies": ["baseline"], "configs": ["fast-lr", "baseline"], "epsilons": [0.0],
                   "episodes_per_cell": 1},
    }  # fmt: skip
    out = tmp_path_factory.mktemp("multi") / "pack"
    generate(parse_spec(doc), out, workers=1, progress=False, log=lambda message: None)
    return out


def fake_refs(config: str = "baseline", fidelity: str = "test", max_epochs: int = 3) -> ReferenceScores:
    returns = {
        "wait": {m: 0.1 + i for i, m in enumerate(REWARD_MODES)},
        "heuristic": {m: 0.6 + 2 * i for i, m in enumerate(REWARD_MODES)},
        "best_scripted": {m: 0.9 + 3 * i for i, m in enumerate(REWARD_MODES)},
    }
    return ReferenceScores(ENV_ID, config, fidelity, max_epochs, wait=0.1, heuristic=0.2,
                           heuristic_policy="capacity", best_scripted=0.3, best_scripted_schedule="now:x@0",
                           seeds=(1000, 1001, 1002), returns=returns)  # fmt: skip


def patch_registry(monkeypatch: pytest.MonkeyPatch, entries: dict[str, ReferenceScores]) -> list[dict]:
    """Make ``reference_scores`` read ``entries`` (by key); returns the calls it got."""
    calls: list[dict] = []

    def lookup(
        env_id: str, *, config: str, fidelity: str, max_epochs: int, instances: str | None = None
    ) -> ReferenceScores:
        calls.append({"env_id": env_id, "config": config, "fidelity": fidelity, "max_epochs": max_epochs})
        key = references.reference_key(env_id, config, fidelity, max_epochs, instances)
        if key not in entries:
            raise LookupError(f"no reference scores for {key!r}")
        return entries[key]

    monkeypatch.setattr(references, "reference_scores", lookup)
    return calls


def export(pack: Pack | Path, root: Path, monkeypatch: pytest.MonkeyPatch, **kwargs) -> minari.MinariDataset:
    to_minari(pack, "esper/test-v0", root, force=True, **kwargs)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return minari.load_dataset("esper/test-v0")


def wrapper_chain(env: gym.Env) -> list[str]:
    names = []
    while isinstance(env, gym.Wrapper):
        names.append(type(env).__name__)
        env = env.env
    return [*names, type(env).__name__]


def test_minari_env_spec_rebuilds_the_logged_env(
    tiny_pack: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    patch_registry(monkeypatch, {})
    pack = open_pack(tiny_pack)
    ds = export(pack, tmp_path, monkeypatch)
    generated = CompactActions(replay_settings(pack, "baseline").make())  # the generation's env stack
    kwargs = {"dataset": "synthcifar", "config": "baseline", "fidelity": "test", "max_epochs": 3, "num_slots": 3,
              "reward": "shaped", "num_threads": 1, "early_stop_patience": None, "synth_seed": 0,
              "device": "auto"}  # fmt: skip
    assert gym.envs.registration.EnvSpec.from_json(ds.storage.metadata["env_spec"]) == generated.spec
    assert minari_env_spec(pack, "baseline") == generated.spec
    for eval_env in (False, True):
        env = ds.recover_environment(eval_env=eval_env)
        assert isinstance(env, CompactActions)
        assert env.spec == generated.spec and env.spec.id == ENV_ID and env.spec.kwargs == kwargs
        assert wrapper_chain(env) == wrapper_chain(generated)
        assert wrapper_chain(env)[:2] == ["CompactActions", "MatchTimeLimit"]
        assert env.action_space == ds.action_space == gym.spaces.Discrete(pack.n_actions)
        assert env.observation_space == ds.observation_space
        # the recovered env steps with the logged actions and replays the episode bit for bit
        ep = ds[0]
        obs, _ = env.reset(seed=next(iter(ds.storage.get_episode_metadata([0])))["seed"])
        np.testing.assert_array_equal(obs, ep.observations[0])
        obs, reward, *_ = env.step(int(ep.actions[0]))
        np.testing.assert_array_equal(obs, ep.observations[1])
        assert reward == pytest.approx(ep.rewards[0])
        assert replay_episode(pack, pack.episode_ids[0], env).identical
        env.close()
    generated.close()


def test_minari_env_spec_uses_the_export_reward_mode(
    tiny_pack: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    patch_registry(monkeypatch, {})
    ds = export(tiny_pack, tmp_path, monkeypatch, reward_mode="sparse")
    assert ds.recover_environment().spec.kwargs["reward"] == "sparse"
    spec = minari_env_spec(open_pack(tiny_pack), "baseline", "sparse")  # the settings round trip
    settings = EnvSettings(env_id=spec.id, **{k: v for k, v in spec.kwargs.items() if k != "dataset"})
    assert settings == open_pack(tiny_pack).settings.replace(reward="sparse")


def test_minari_per_episode_preset(multi_pack: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pack = open_pack(multi_pack)
    # an entry for each preset: a multi-preset pack still gets no reference scores
    patch_registry(
        monkeypatch, {r.key: r for r in (fake_refs(c, max_epochs=2) for c in ("baseline", "fast-lr"))}
    )
    ds = export(pack, tmp_path, monkeypatch)
    names = ds.storage.metadata[MINARI_PRESETS_KEY]
    assert names == ["fast-lr", "baseline"]  # the matrix's order
    logged = [rec.metadata.config_id for rec in pack]
    assert sorted(logged) == ["baseline", "fast-lr"]
    meta = list(ds.storage.get_episode_metadata(range(ds.total_episodes)))
    for ep, m, rec, preset in zip(ds.iterate_episodes(), meta, pack, logged, strict=True):
        assert ep.infos["preset"].dtype == np.int64 and ep.infos["preset"].shape == (len(rec) + 1,)
        assert {names[i] for i in ep.infos["preset"]} == {preset}
        assert m["esper_preset"] == preset and m["esper_episode_id"] == rec.metadata.episode_id
    # the env spec (and eval env) use the matrix's first preset, and the description says so
    for eval_env in (False, True):
        env = ds.recover_environment(eval_env=eval_env)
        assert isinstance(env, CompactActions) and env.spec.kwargs["config"] == "fast-lr"
        assert env.base.config.config_id == "fast-lr"
        env.close()
    assert "spans presets ['fast-lr', 'baseline']" in ds.storage.metadata["description"]
    other = ds.recover_environment(config="baseline")
    assert other.base.config.config_id == "baseline"
    other.close()
    assert not set(REF_KEYS) & set(ds.storage.metadata)
    assert "No reference scores: the pack spans 2 presets" in ds.storage.metadata["description"]


@pytest.mark.parametrize("mode", [None, "sparse"])
def test_minari_ref_scores_from_registry(
    tiny_pack: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str | None
) -> None:
    refs = fake_refs()
    calls = patch_registry(monkeypatch, {refs.key: refs})
    ds = export(tiny_pack, tmp_path, monkeypatch, reward_mode=mode)
    assert calls == [{"env_id": ENV_ID, "config": "baseline", "fidelity": "test", "max_epochs": 3}]
    mode = mode or "shaped"
    low, high = refs.returns["wait"][mode], refs.returns["heuristic"][mode]
    meta = ds.storage.metadata
    assert meta["ref_min_score"] == low and meta["ref_max_score"] == high
    assert meta["num_episodes_average_score"] == len(refs.seeds)
    scores = minari.get_normalized_score(ds, np.array([low, high, (low + high) / 2]))
    np.testing.assert_allclose(scores, [0.0, 1.0, 0.5])
    assert f"Esper's reference entry {refs.key!r}" in ds.storage.metadata["description"]


@pytest.mark.parametrize("case", ["missing", "no_mode", "flat"])
def test_minari_without_usable_reference_scores(
    tiny_pack: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    refs = fake_refs()
    if case == "no_mode":
        refs = dataclasses.replace(refs, returns={"wait": {}, "heuristic": {}})
    elif case == "flat":  # heuristic no better than WAIT: a normalised score is undefined
        returns = {"wait": {m: 0.2 for m in REWARD_MODES}, "heuristic": {m: 0.2 for m in REWARD_MODES}}
        refs = dataclasses.replace(refs, returns=returns)
    patch_registry(monkeypatch, {} if case == "missing" else {refs.key: refs})
    pack = open_pack(tiny_pack)
    ds = export(pack, tmp_path, monkeypatch)
    assert not set(REF_KEYS) & set(ds.storage.metadata)
    with pytest.raises(ValueError, match="Reference score not provided"):
        minari.get_normalized_score(ds, np.array([0.0]))
    assert "No reference scores" in ds.storage.metadata["description"]
    # the rest of the export is whole
    assert ds.total_episodes == len(pack) and ds.total_steps == pack.n_transitions
    assert "env_spec" in ds.storage.metadata and ds.storage.metadata[MINARI_PRESETS_KEY] == ["baseline"]


def test_minari_warns_on_non_default_reward_weights(
    tiny_pack: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    patch_registry(monkeypatch, {})
    pack = open_pack(tiny_pack)
    pack.header = copy.deepcopy(pack.header)
    pack.header["environment"]["reward"]["accuracy_weight"] = 5.0
    with pytest.warns(UserWarning, match="reward weights differ"):
        export(pack, tmp_path, monkeypatch)


def test_a_fast_tier_pack_and_its_minari_export_name_each_episodes_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = {
        "name": "micro",
        "env": {"id": "Esper-Micro-v3", "max_epochs": 3, "start_level": 100, "num_levels": 10},
        "matrix": {"policies": ["baseline", "random"], "configs": ["baseline"], "epsilons": [0.2],
                   "episodes_per_cell": 2},
    }  # fmt: skip
    spec = parse_spec(doc)
    assert (spec.env.instances, spec.env.start_level, spec.env.num_levels) == (None, 100, 10)
    assert spec.env.fidelity == "micro" and spec.env.resolved_instances == "bottlenecks"
    generate(spec, tmp_path / "pack", workers=1, progress=False, log=lambda message: None)
    pack = open_pack(tmp_path / "pack")
    assert pack.settings == spec.env
    instances = {}
    for rec in pack:
        drawn = pack.settings.make().reset(seed=rec.metadata.random_seed)[1]["instance"]
        assert rec.metadata.instance == drawn and 100 <= drawn < 110
        instances[rec.metadata.episode_id] = drawn
    assert len(instances) == 4
    patch_registry(monkeypatch, {})
    ds = export(pack, tmp_path / "minari", monkeypatch)
    meta = list(ds.storage.get_episode_metadata(range(ds.total_episodes)))
    assert {m["esper_episode_id"]: int(m["esper_instance"]) for m in meta} == instances
    env = ds.recover_environment()
    assert (env.spec.kwargs["start_level"], env.spec.kwargs["num_levels"]) == (100, 10)
    assert env.spec.kwargs["instances"] == "bottlenecks"  # the id's, from its registration
    ep = ds[0]
    obs, info = env.reset(seed=int(meta[0]["seed"]))
    np.testing.assert_array_equal(obs, ep.observations[0])
    assert info["instance"] == int(meta[0]["esper_instance"])
    env.close()
