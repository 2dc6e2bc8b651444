"""Fitted Q iteration over growth options: the menu, the counterfactual data, the backward fit,
save/load, the agent in a real episode, and the bench family on a tiny budget."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from esper_agents.bench.runner import run_bench
from esper_agents.bench.suites import get_suite
from esper_agents.common.rollout import run_episode
from esper_agents.offline.fitted_q import (
    WAIT_OPTION,
    FittedQAgent,
    FittedQConfig,
    OptionMenu,
    collect,
    fit_q,
    load_fitted_q,
    option_records,
    play_option,
    train_fitted_q,
)
from esper_env.settings import EnvSettings

SETTINGS = EnvSettings("Esper-Micro-v3", instances="optimizers", max_epochs=6, device="cpu")
MENU = OptionMenu(epochs=(0, 2), grafts=((0,), (0, 1, 2)))


def test_the_menu_names_its_options_as_the_schedule_library_does() -> None:
    menu = OptionMenu()
    assert [s.name for s in menu.options(0)] == [
        "now:widen_4x@0",
        "now:widen_4x@1",
        "now:widen_4x@2",
        "now:widen_4x",
    ]
    assert [s.name for s in menu.options(5)][-1] == "from5:widen_4x"
    assert menu.episodes_per_instance == len(menu.schedules()) == 13
    assert OptionMenu.from_dict(json.loads(json.dumps(menu.to_dict()))) == menu


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": (2, 0)}, "increasing"),
        ({"epochs": ()}, "increasing"),
        ({"grafts": ((),)}, "at least one slot"),
    ],
)
def test_a_bad_menu_is_refused_by_name(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        OptionMenu(**kwargs)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    path = tmp_path_factory.mktemp("fq") / "options.jsonl"
    return path, collect(SETTINGS, [0, 1, 2], path, menu=MENU, seed=7, log=lambda m: None)


def test_collect_plays_every_option_on_every_instance_and_resumes(data: tuple[Path, list[dict]]) -> None:
    path, records = data
    assert len(records) == 3 * MENU.episodes_per_instance
    assert {(r["instance"], r["seed"]) for r in records} == {(0, 7), (1, 8), (2, 9)}
    waits = [r for r in records if r["option"] == WAIT_OPTION]
    assert all(sorted(r["observations"]) == ["0", "2"] for r in waits)
    assert all(not r["observations"] for r in records if r["option"] != WAIT_OPTION)
    messages: list[str] = []
    again = collect(SETTINGS, [0, 1, 2], path, menu=MENU, seed=7, log=messages.append)
    assert again == records and "0 option episodes to play (15 recorded)" in messages[0]
    assert len(path.read_text().splitlines()) == len(records)  # nothing replayed, nothing lost


def test_a_menu_deciding_after_the_episode_ends_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="decision epoch 5 is not before the episode's end"):
        collect(SETTINGS.replace(max_epochs=5), [0], tmp_path / "x.jsonl", log=lambda m: None)
    assert not (tmp_path / "x.jsonl").exists()


def test_every_option_shares_the_wait_episodes_prefix() -> None:
    """The env is deterministic given the seed: the state an option starts from is WAIT's."""
    sdict, mdict = SETTINGS.to_dict(), MENU.to_dict()
    wait = play_option(sdict, mdict, WAIT_OPTION, 0, 7)
    env = SETTINGS.make()
    obs, _ = env.reset(seed=7, options={"instance": 0})
    for _ in range(2):
        obs, *_ = env.step(np.zeros(env.action_space.shape, dtype=np.int64))
    np.testing.assert_array_equal(
        np.asarray(obs, dtype=np.float32), np.array(wait["observations"]["2"], dtype=np.float32)
    )
    again = play_option(sdict, mdict, "from2:widen_4x@0", 0, 7)
    assert again == play_option(sdict, mdict, "from2:widen_4x@0", 0, 7)  # bit for bit


def test_option_records_align_observations_and_scores(data: tuple[Path, list[dict]]) -> None:
    features, scores = option_records(data[1], MENU)
    assert set(features) == {0, 2} and all(f.shape[0] == 3 for f in features.values())
    assert set(scores) == {s.name for s in MENU.schedules()}
    by = {(r["instance"], r["option"]): r["score"] for r in data[1]}
    assert scores["from2:widen_4x"].tolist() == [by[k, "from2:widen_4x"] for k in (0, 1, 2)]
    with pytest.raises(ValueError, match="collect the data first"):
        option_records([r for r in data[1] if r["option"] != "now:widen_4x@0"], MENU)


def test_fitted_q_learns_which_option_pays_where_and_backs_up_the_later_choice() -> None:
    """Synthetic data: at epoch 0 nothing tells the instances apart; at epoch 2 feature 0 does.
    GROW@0 pays on the positive half, GROW-all on the other; growing at once costs 0.1 against growing
    at epoch 2 on both; WAIT to the end scores 0.5."""
    rng = np.random.default_rng(0)
    n = 400
    sign = rng.random(n) < 0.5
    x0, x2 = np.zeros((n, 3)), np.zeros((n, 3))
    x2[:, 0] = np.where(sign, 1.0, -1.0) + 0.1 * rng.standard_normal(n)
    late_a, late_all = np.where(sign, 0.9, 0.4), np.where(sign, 0.4, 0.8)
    scores = {
        WAIT_OPTION: np.full(n, 0.5),
        "now:widen_4x@0": late_a - 0.1, "now:widen_4x": late_all - 0.1,
        "from2:widen_4x@0": late_a, "from2:widen_4x": late_all,
    }  # fmt: skip
    q = fit_q({0: x0, 2: x2}, scores, FittedQConfig(trees=20, min_samples_leaf=5, menu=MENU), seed=0)
    assert q.choose(0, np.zeros(3)) == WAIT_OPTION  # waiting to read the sign is worth 0.85 > 0.75
    # the backed-up value, near the mean of the best later options (0.85), not WAIT's own 0.5
    assert q.q_values(0, np.zeros(3))[WAIT_OPTION] == pytest.approx(0.85, abs=0.06)
    assert q.choose(2, np.array([1.0, 0, 0])) == "from2:widen_4x@0"
    assert q.choose(2, np.array([-1.0, 0, 0])) == "from2:widen_4x"


def test_a_saved_agent_refits_bit_for_bit_and_plays_a_real_episode(
    data: tuple[Path, list[dict]], tmp_path: Path
) -> None:
    config = FittedQConfig(trees=10, min_samples_leaf=1, menu=MENU)
    model = train_fitted_q(data[1], tmp_path / "agent", config=config, seed=3, instances=3)
    meta = json.loads((tmp_path / "agent" / "fitted_q.json").read_text())
    assert (meta["seed"], meta["samples"], meta["instances"]) == (3, 3, 3)
    loaded = load_fitted_q(tmp_path / "agent")
    env = SETTINGS.make()
    obs, _ = env.reset(seed=11, options={"instance": 5})
    assert loaded.q_values(0, obs) == model.q_values(0, obs)
    agent = FittedQAgent(loaded, env)
    episode = run_episode(env, agent, seed=11, options={"instance": 5})
    assert len(episode) == 6 and episode.illegal == 0
    decided = dict(agent.choices)
    grown = next((c for c in decided.values() if c != WAIT_OPTION), None)
    assert list(decided) == ([0, 2][: len(decided)]) and all(
        c == WAIT_OPTION for c in list(decided.values())[:-1]
    )
    assert (episode.info["seeds_created"] > 0) == (grown is not None)
    with pytest.raises(FileNotFoundError):
        load_fitted_q(tmp_path / "nothing")


# ------------------------------------------------------------------------------------ the bench family


def test_a_suite_with_a_fitted_q_agent_needs_its_instances() -> None:
    suite = get_suite("micro-optimizers")
    with pytest.raises(ValueError, match="option_instances >= 1"):
        dataclasses.replace(suite, agents=("wait", "fitted-q"), option_instances=0)


def test_the_bench_trains_and_evaluates_fitted_q_on_held_out_instances(tmp_path: Path) -> None:
    base = get_suite("micro-optimizers")
    suite = dataclasses.replace(
        base, settings=base.settings.replace(max_epochs=6), eval_episodes=2, train_seeds=2,
        agents=("wait", "fitted-q"), option_instances=2,
    )  # fmt: skip
    report = run_bench(suite, tmp_path, workers=1, device="cpu", progress=False, log=lambda m: None)
    rows = {a["agent"]: a for a in report["agents"]}
    assert rows["fitted-q"]["family"] == "fitted-q" and rows["fitted-q"]["train_runs"] == 2
    assert rows["fitted-q"]["illegal_actions"] == 0 and rows["fitted-q"]["episodes"] == 2
    data = [json.loads(line) for line in (tmp_path / "fitted_q" / "options.jsonl").read_text().splitlines()]
    assert len(data) == 2 * 13 and {r["instance"] for r in data} == {0, 1}  # training instances only
    seeds = json.loads((tmp_path / "seeds.json").read_text())
    assert seeds["training"]["fitted-q"] == [0, 1]
    for run in ("fitted-q", "fitted-q-seed1"):
        meta = json.loads((tmp_path / "fitted_q" / run / "fitted_q.json").read_text())
        assert meta["seed"] == suite.run_seed(int(run[-1]) if run.endswith("1") else 0)
    assert json.loads((tmp_path / "fitted_q" / "collection.json").read_text())["episodes"] == 26
