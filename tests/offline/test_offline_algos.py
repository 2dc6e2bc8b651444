"""Each offline algorithm trains, saves, reloads by name and acts identically, and runs in the env
with masks without ever choosing an illegal action."""

from __future__ import annotations

import json

import numpy as np
import pytest

from esper_agents.offline import (
    ALGORITHMS,
    LoggedEpisode,
    build_replay_buffer,
    dataset_arrays,
    evaluate_in_env,
    evaluate_on_dataset,
    load_agent,
    make_eval_env,
    rollout,
    rwbc_dataset,
    train_offline,
)
from esper_agents.offline.saved import is_saved_agent
from esper_env.settings import EnvSettings
from esper_env.wrappers import compact_action_table

N_ACTIONS, N_FEATURES = 7, 10


def synthetic_records(n: int = 12, seed: int = 0) -> list[LoggedEpisode]:
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        T = 4 + i % 3
        masks = rng.random((T + 1, N_ACTIONS)) < 0.5
        masks[:, 0] = True
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks[:T]])
        records.append(
            LoggedEpisode(
                rng.normal(size=(T + 1, N_FEATURES)),
                masks,
                actions,
                rng.normal(size=T),
                i % 4 == 0,
                float(rng.random()),
            )
        )
    return records


def random_agent(seed: int = 0):
    """WAIT half the time, otherwise a uniformly random legal action (read from the mask)."""
    rng = np.random.default_rng(seed)

    def act(obs: np.ndarray) -> np.ndarray:
        mask = obs[0, -N_COMPACT:] > 0.5
        return np.array([0 if rng.random() < 0.5 else rng.choice(np.flatnonzero(mask))])

    return act


N_COMPACT = len(compact_action_table(3))  # CompactActions with 3 slots


@pytest.fixture(scope="module")
def eval_env(nano_fidelity: str):
    env = make_eval_env(EnvSettings(fidelity=nano_fidelity, max_epochs=3))  # legality, not learning
    assert env.n_actions == N_COMPACT
    yield env
    env.close()


@pytest.fixture(scope="module")
def env_records(eval_env) -> list[LoggedEpisode]:
    records, illegal = rollout(eval_env, random_agent(), episodes=6, seed=100)
    assert illegal == 0
    return records


def test_buffer_keeps_every_transition_of_truncated_episodes() -> None:
    records = synthetic_records()
    buf = build_replay_buffer(records)
    assert buf.dataset_info.action_size == N_ACTIONS  # not guessed from the largest logged action
    assert buf.transition_count == sum(len(r) for r in records)
    data = dataset_arrays(buf)
    assert data["observations"].shape[1] == N_FEATURES + N_ACTIONS
    np.testing.assert_array_equal(data["actions"], np.concatenate([r.actions for r in records]))
    # the last transition of a truncated episode bootstraps from its true final state and mask
    ep = buf.episodes[1]
    t = buf.transition_picker(ep, ep.transition_count - 1)
    assert t.terminal == 0.0
    np.testing.assert_array_equal(t.next_observation[-N_ACTIONS:], records[1].masks[-1].astype(np.float32))


def test_illegal_logged_actions_are_refused() -> None:
    masks = np.ones((3, 4), dtype=bool)
    masks[0, 2] = False
    with pytest.raises(ValueError, match="illegal under their masks at steps \\[0\\]"):
        LoggedEpisode(np.zeros((3, 2)), masks, [2, 1], [0.0, 0.0], False, 0.5)


def test_rwbc_dataset_options() -> None:
    records = synthetic_records(8)
    acc = np.array([r.final_accuracy for r in records])
    kept, info = rwbc_dataset(records, "filter", quantile=0.5)
    assert len(kept) == info["kept_episodes"] == int((acc >= np.quantile(acc, 0.5)).sum())
    assert all((r.rewards == 1.0).all() for r in kept)
    weighted, info = rwbc_dataset(records, "weight", baseline=float(np.median(acc)), scale=0.1)
    raw = {i: (a - np.median(acc)) / 0.1 for i, a in enumerate(acc) if a > np.median(acc)}
    assert len(weighted) == len(raw)
    ratios = [r.rewards[0] / raw[i] for r, i in zip(weighted, sorted(raw))]
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-5)  # proportional to (acc - baseline) / scale
    steps = np.array([len(r) for r in weighted])
    assert np.sum([r.rewards[0] * n for r, n in zip(weighted, steps)]) / steps.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="valid modes"):
        rwbc_dataset(records, "reweight")


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_saved_model_reloads_by_name_and_acts_identically(algo: str, tmp_path) -> None:
    records = synthetic_records()
    result = train_offline(algo, records, n_steps=30, out=tmp_path, show_progress=False)
    loaded = load_agent(result.model_path)
    assert type(loaded) is type(result.algo) and loaded.config.get_type() == result.algo.config.get_type()
    obs = np.random.default_rng(1).normal(size=(64, N_FEATURES + N_ACTIONS)).astype(np.float32)
    obs[:, N_FEATURES:] = np.random.default_rng(2).random((64, N_ACTIONS)) < 0.4
    np.testing.assert_array_equal(result.algo.predict(obs), loaded.predict(obs))
    legal = obs[:, N_FEATURES:] > 0.5
    legal |= ~legal.any(axis=1, keepdims=True)  # a row with no legal action counts as all-legal
    assert legal[np.arange(64), loaded.predict(obs)].all()
    if algo in ("cql", "iql"):
        actions = loaded.predict(obs)
        np.testing.assert_array_equal(
            result.algo.predict_value(obs, actions), loaded.predict_value(obs, actions)
        )
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["algo"] == algo and summary["steps"] == 30
    (run,) = (tmp_path / "logs").iterdir()  # d3rlpy's logs, and its checkpoints as saved agents
    assert (run / "params.json").is_file() and is_saved_agent(run / "model_30")
    assert not list(tmp_path.rglob("*.d3"))  # nothing pickled


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_trains_loads_and_runs_20_episodes_without_illegal_actions(
    algo, env_records, eval_env, tmp_path
) -> None:
    result = train_offline(algo, env_records, n_steps=100, out=tmp_path, seed=0, show_progress=False)
    agent = load_agent(result.model_path)
    summary = evaluate_in_env(agent.predict, eval_env, episodes=20, seed=0)
    assert summary["illegal_actions"] == 0
    assert summary["episodes"] == 20 and summary["episode_length"] == 3
    assert sum(summary["action_mix"].values()) == pytest.approx(1.0)
    ci = summary["final_val_accuracy"]
    assert ci["ci95"][0] <= ci["mean"] <= ci["ci95"][1] and ci["n"] == 20
    json.dumps(summary)
    report = evaluate_on_dataset(agent, build_replay_buffer(env_records), fqe_steps=20)
    assert 0.0 <= report["agreement"] <= 1.0 and np.isfinite(report["fqe"]["initial_value"])
    json.dumps(report)


def test_mask_in_observation_matches_info_mask(eval_env) -> None:
    obs, info = eval_env.reset(seed=3)
    for action in (0, int(np.flatnonzero(info["action_mask"])[-1]), 0):
        assert eval_env.observation_space.contains(obs)
        np.testing.assert_array_equal(obs[-N_COMPACT:], info["action_mask"].astype(np.float32))
        np.testing.assert_array_equal(eval_env.action_masks(), info["action_mask"])
        obs, _, _terminated, truncated, info = eval_env.step(action)
    assert truncated and obs.shape == (eval_env.n_features + N_COMPACT,)


def test_mask_in_observation_needs_discrete_actions() -> None:
    import gymnasium as gym

    from esper_agents.offline import MaskInObservation

    with pytest.raises(TypeError, match="CompactActions or ClassicActions"):
        MaskInObservation(gym.make("Esper-SynthCIFAR-v2", fidelity="test", max_epochs=2))


@pytest.fixture(scope="module")
def pack_dir(tmp_path_factory):
    """A real pack from the generation package: 4 episodes of 3 epochs."""
    from esper_agents.generation.orchestrator import generate
    from esper_agents.generation.spec import parse_spec

    spec = parse_spec(
        {
            "name": "offline-test",
            "env": {"id": "Esper-SynthCIFAR-v2", "fidelity": "test", "max_epochs": 3},
            "matrix": {
                "policies": ["baseline", "random"],
                "configs": ["baseline"],
                "epsilons": [0.0, 0.5],
                "episodes_per_cell": 2,
                "base_seed": 0,
            },
        },
        "offline test",
    )
    out = tmp_path_factory.mktemp("packs") / "offline-test"
    generate(spec, out, progress=False, log=lambda msg: None)
    return out


def test_wait_heuristic_and_trained_agents_on_a_pack(pack_dir, eval_env, tmp_path) -> None:
    """What the retired offline comparison measured, through the library: agents trained on a pack,
    next to WAIT and the greedy heuristic, in the env without illegal actions; action mixes."""
    from esper_agents.common.agents import behavior_agent
    from esper_agents.common.evaluation import action_mix, action_names
    from esper_agents.offline.datasets import load_pack

    records, source = load_pack(pack_dir)
    logged = dataset_arrays(build_replay_buffer(records))
    names = action_names(records[0].n_actions)
    wait = lambda obs: np.zeros(len(np.atleast_2d(obs)), dtype=np.int64)
    agents = {"WAIT": wait, "heuristic": behavior_agent("baseline", eval_env)}
    for algo in ALGORITHMS:
        result = train_offline(algo, records, 20, tmp_path / algo, seed=0, show_progress=False, source=source)
        assert 0.0 <= result.summary["train_metrics"]["agreement"] <= 1.0
        agents[algo] = result.algo.predict
    for agent in agents.values():
        summary = evaluate_in_env(agent, eval_env, 2, seed=1000)
        assert summary["illegal_actions"] == 0 and summary["final_val_accuracy"]["n"] == 2
    wait_mix = action_mix(wait(logged["observations"]), names)
    assert wait_mix["WAIT"] == 1.0 and sum(wait_mix.values()) == pytest.approx(1.0)
    assert sum(action_mix(logged["actions"], names).values()) == pytest.approx(1.0)


def test_pack_loads_as_the_generation_export_does(pack_dir) -> None:
    from esper_agents.generation.exports import to_d3rlpy
    from esper_agents.offline import load_pack

    episodes, source = load_pack(pack_dir)
    assert source["episodes"] == len(episodes) == 4 and source["n_actions"] == N_COMPACT
    ours, theirs = build_replay_buffer(episodes), to_d3rlpy(pack_dir, append_mask=True)
    assert ours.transition_count == theirs.transition_count == source["transitions"]
    assert ours.dataset_info.action_size == theirs.dataset_info.action_size == N_COMPACT
    for a, b in zip(ours.episodes, theirs.episodes):
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_allclose(a.rewards, b.rewards)
        assert a.terminated == b.terminated
    assert all(0.0 <= e.final_accuracy <= 1.0 for e in episodes)
    sparse, _ = load_pack(pack_dir, reward_mode="sparse")
    assert all((e.rewards[:-1] == 0).all() for e in sparse if not e.terminated)


def test_cli_train_offline_then_evaluate(pack_dir, tmp_path, capsys) -> None:
    from esper_agents import cli

    out = tmp_path / "rwbc"
    argv = ["train-offline", "--algo", "rwbc", "--pack", str(pack_dir), "--steps", "20", "--out", str(out)]
    assert cli.main([*argv, "--no-progress", "--fqe-steps", "10", "--rwbc-mode", "weight"]) == 0
    trained = json.loads(capsys.readouterr().out)  # stdout holds the JSON only (d3rlpy logs go to stderr)
    assert (
        trained["algo"] == "rwbc" and trained["steps"] == 20 and trained["episodes"] == 4 and "fqe" in trained
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["source"]["pack"] == str(pack_dir) and summary["rwbc"]["mode"] == "weight"
    assert is_saved_agent(out / "agent")
    assert cli.main(["evaluate", "--policy", str(out / "agent"), "--episodes", "2", "--fidelity", "test",
                     "--max-epochs", "2", "--seed", "5", "--pack", str(pack_dir)]) == 0  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 2 and summary["illegal_actions"] == 0 and summary["seed"] == 5
    assert 0.0 <= summary["dataset"]["agreement"] <= 1.0


def test_cli_evaluate_refuses_a_mismatched_model(tmp_path, capsys) -> None:
    from esper_agents import cli

    result = train_offline("bc", synthetic_records(), n_steps=5, out=tmp_path, show_progress=False)
    assert cli.main(["evaluate", "--policy", result.model_path, "--episodes", "1", "--fidelity", "test"]) == 2
    assert "the model expects observations (17,) and 7 actions" in capsys.readouterr().err


def test_steps_must_fill_whole_d3rlpy_epochs(tmp_path) -> None:
    with pytest.raises(
        ValueError, match="multiple of the steps per epoch \\(1000\\).*use 500 steps per epoch"
    ):
        train_offline("bc", synthetic_records(), n_steps=2500, out=tmp_path, show_progress=False)
    result = train_offline(
        "bc", synthetic_records(), n_steps=7, out=tmp_path, n_steps_per_epoch=50, show_progress=False
    )
    assert result.summary["steps_per_epoch"] == 7  # capped: d3rlpy would train 0 steps otherwise
    assert result.algo.grad_step == 7
