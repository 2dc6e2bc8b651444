"""``esper bench --suite micro``: training on ``TRAIN_SPLIT``, evaluation on held-out instances of
``HELDOUT_SPLIT`` (one pinned per episode), the registry's fields for instance distributions, the
fast tier's entry from a headroom result, and every agent of the bench on the micro suite at a
tiny budget, in-process."""

from __future__ import annotations

import csv
import dataclasses
import importlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from esper_agents.bench import report as bench_report
from esper_agents.bench.runner import check_instance_separation, run_bench
from esper_agents.bench.suites import BENCH_AGENTS, SUITES, get_suite
from esper_env import references
from esper_env.instances import HELDOUT_SPLIT, TRAIN_SPLIT, Split
from esper_env.references import ReferenceScores

MICRO_KEY = "Esper-Micro-v3/baseline/micro/25"
BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

# ------------------------------------------------------------------------------------ the suite


def test_micro_suite_trains_on_train_split_and_evaluates_on_held_out_instances() -> None:
    suite = get_suite("micro")
    env = suite.settings
    assert (env.env_id, env.resolved_fidelity, env.max_epochs) == ("Esper-Micro-v3", "micro", 25)
    assert (env.start_level, env.num_levels) == (TRAIN_SPLIT.start_level, TRAIN_SPLIT.num_levels)
    assert suite.pack_spec().env == env  # the pack draws training instances only
    held = suite.eval_settings
    assert (held.start_level, held.num_levels) == (HELDOUT_SPLIT.start_level, HELDOUT_SPLIT.num_levels)
    assert dataclasses.replace(held, start_level=0, num_levels=0) == dataclasses.replace(
        env, start_level=0, num_levels=0
    )  # the same env otherwise
    instances = suite.eval_instances
    assert instances is not None and len(instances) == suite.eval_episodes == len(set(instances))
    assert all(k in HELDOUT_SPLIT and k not in TRAIN_SPLIT for k in instances)
    assert [suite.eval_instance(s) for s in suite.eval_seeds] == instances
    data = suite.to_json()
    assert data["eval_split"] == {
        "start_level": HELDOUT_SPLIT.start_level,
        "num_levels": HELDOUT_SPLIT.num_levels,
    }
    assert data["eval_instances"] == instances
    assert "TRAIN_SPLIT" in suite.description and "HELDOUT_SPLIT" in suite.description
    assert "held-out instances 1000000-1000049" in (suite.split_description() or "")


@pytest.mark.parametrize("name", ["smoke", "tiny", "full"])
def test_the_other_suites_evaluate_in_their_settings_and_their_records_are_unchanged(name: str) -> None:
    suite = SUITES[name]
    assert suite.eval_split is None and suite.eval_settings is suite.settings
    assert suite.eval_instances is None and suite.eval_instance(suite.eval_seed) is None
    assert suite.split_description() is None and bench_report.eval_split_label(suite) is None
    assert set(suite.to_json()) == {"name", "settings", "eval_seeds", "train_seed", "online_steps", "n_envs",
                                    "offline_steps", "pack", "agents"}  # fmt: skip


def test_a_suite_whose_splits_overlap_or_that_has_no_instances_is_refused() -> None:
    micro = get_suite("micro")
    with pytest.raises(ValueError, match="overlaps the held-out split"):
        dataclasses.replace(micro, settings=micro.settings.replace(start_level=0, num_levels=0))
    with pytest.raises(ValueError, match="holds fewer"):
        dataclasses.replace(micro, eval_split=Split(HELDOUT_SPLIT.start_level, 3))
    with pytest.raises(ValueError, match="no"):
        dataclasses.replace(get_suite("smoke"), eval_split=HELDOUT_SPLIT)


def test_a_pack_played_on_held_out_instances_is_refused() -> None:
    micro = get_suite("micro")
    check_instance_separation(micro, [0, 1, 99_999])
    with pytest.raises(ValueError, match=r"held-out instances \[1000003\]"):
        check_instance_separation(micro, [5, 1_000_003])
    check_instance_separation(get_suite("smoke"), [1_000_003])  # no held-out split: nothing to check


# ------------------------------------------------------------------------------------ the registry


def _headroom(**changes: Any) -> dict[str, Any]:
    """A synthetic ``micro_tier.py headroom`` result (scores in points)."""
    return {
        "provenance": {"git_commit": "abc123", "dirty": False, "env_id": "Esper-Micro-v3", "env_version": "v3",
                       "torch": "2.x", "torch_threads": 1,
                       "command": "python benchmarks/micro_tier.py headroom --train 40 --heldout 3 --seeds 2"},
        "held_out_means": {"wait": 60.0, "widen_4x@0": 66.0, "widen_2x@1": 64.0, "heuristic:capacity": 65.0},
        "single_best": "widen_4x@0",
        "virtual_best": 71.5,
        "best_heuristic": "heuristic:capacity",
        "per_instance_best": {"1000000": "widen_4x@0", "1000001": "wait", "1000002": "widen_2x@1"},
    } | changes  # fmt: skip


@pytest.fixture(scope="module")
def reference_script() -> Any:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("reference_scores")
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_headroom_becomes_the_micro_entry(reference_script: Any) -> None:
    entry = reference_script.entry_from_headroom(_headroom(), ["--from-headroom", "h.json"])
    ref = ReferenceScores.from_json(entry)
    assert ref.key == "Esper-Micro-v3/baseline/micro/25"
    assert (ref.wait, ref.heuristic, ref.best_scripted, ref.virtual_best) == pytest.approx(
        (0.6, 0.65, 0.66, 0.715)
    )
    assert (ref.heuristic_policy, ref.best_scripted_schedule) == ("capacity", "widen_4x@0")
    assert ref.seeds == (0, 1) and ref.instances == "bottlenecks"
    assert ref.instance_indices == (1_000_000, 1_000_001, 1_000_002)
    assert ref.split == {"name": "HELDOUT_SPLIT", "start_level": 1_000_000, "num_levels": 100_000}
    assert ref.command == "python benchmarks/reference_scores.py --from-headroom h.json"
    assert ref.code_version["git_commit"] == "abc123"
    assert ref.code_version["measured_by"].startswith("python benchmarks/micro_tier.py headroom")
    assert ReferenceScores.from_json(json.loads(json.dumps(ref.to_json()))) == ref
    assert "3 instances of HELDOUT_SPLIT" in (ref.measured_on() or "")
    assert ref.normalize(0.65) == pytest.approx(1.0)
    other = reference_script.entry_from_headroom(
        _headroom(
            provenance={
                "git_commit": "x",
                "command": "micro_tier.py headroom --seeds 3 --instances bottlenecks-b",
            }
        )
    )
    assert other["seeds"] == [0, 1, 2] and other["instances"] == "bottlenecks-b"


@pytest.mark.parametrize(
    ("changes", "named"),
    [({"virtual_best": None}, "virtual_best"), ({"single_best": "nope"}, "nope"),
     ({"per_instance_best": {"5": "wait"}}, "HELDOUT_SPLIT"), ({"virtual_best": 7150.0}, "points")],
)  # fmt: skip
def test_a_bad_headroom_result_is_refused(reference_script: Any, changes: dict, named: str) -> None:
    data = _headroom(**changes)
    if changes.get("virtual_best", 0) is None:
        del data["virtual_best"]
    with pytest.raises(ValueError, match=named):
        reference_script.entry_from_headroom(data)


def test_from_headroom_writes_the_entry_and_keeps_the_others(
    reference_script: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = tmp_path / "reference_scores.json"
    registry.write_text(references.REFERENCE_PATH.read_text())
    headroom = tmp_path / "micro_headroom.json"
    headroom.write_text(json.dumps(_headroom()))
    assert reference_script.main(["--from-headroom", str(headroom), "--registry", str(registry)]) == 0
    written = references.load_references(registry)
    old = references.load_references()
    assert set(written) == set(old) | {MICRO_KEY}
    assert all(written[k] == old[k] for k in old if k != MICRO_KEY)  # the others untouched, bit for bit
    assert written["Esper-Micro-v3/baseline/micro/25"].virtual_best == pytest.approx(0.715)
    with pytest.raises(SystemExit):
        reference_script.main(
            ["--from-headroom", str(tmp_path / "missing.json"), "--registry", str(registry)]
        )
    # The micro suite's report anchors on that entry and names its instances.
    monkeypatch.setattr(references, "REFERENCE_PATH", registry)
    anchor = bench_report.anchors(get_suite("micro"), {})
    assert (anchor["wait"], anchor["heuristic"]) == pytest.approx((0.6, 0.65))
    assert "Esper-Micro-v3/baseline/micro/25" in anchor["source"] and "HELDOUT_SPLIT" in anchor["source"]


def test_old_entries_have_no_instance_fields() -> None:
    for ref in references.load_references().values():
        if ref.instances is None:
            assert ref.virtual_best is None and ref.split is None and ref.instance_indices is None
            assert not set(ReferenceScores.OPTIONAL) & set(ref.to_json())


# ------------------------------------------------------------------------------------ every agent, tiny budget


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The micro suite with every agent, a 1-episode pack per cell, 50 online env steps, 20
    gradient steps, 2 training seeds, 2 held-out instances of 5 epochs, in this process (one worker)."""
    micro = get_suite("micro")
    suite = dataclasses.replace(
        micro, settings=micro.settings.replace(max_epochs=5), eval_episodes=2, online_steps=50, n_envs=1,
        offline_steps=20, pack=dataclasses.replace(micro.pack, episodes_per_cell=1), train_seeds=2,
    )  # fmt: skip
    out = tmp_path_factory.mktemp("bench") / "micro"
    report = run_bench(suite, out, workers=1, device="cpu", progress=False, log=lambda message: None)
    return {"suite": suite, "out": out, "report": report}


def test_every_agent_runs_on_the_micro_suite(micro_run: dict) -> None:
    out, suite = micro_run["out"], micro_run["suite"]
    rows = {a["agent"]: a for a in micro_run["report"]["agents"]}
    assert list(rows) == list(suite.agents) == [*BENCH_AGENTS[:6], "heuristic:rent-aware", *BENCH_AGENTS[6:]]
    for agent, row in rows.items():
        assert row["episodes"] == 2 and row["eval_split"] == "held-out 1000000-1000001", agent
        assert row["train_runs"] == len(suite.runs(agent)) == (1 if row["family"] == "scripted" else 2), agent
        assert row["eval_instances"] == [1_000_000, 1_000_001]
        # recurrent-ppo is unmasked (an illegal choice runs as WAIT); every other agent, the masked
        # recurrent PPO included (it masks the host's blueprints), stays legal.
        if agent != "recurrent-ppo":
            assert row["illegal_actions"] == 0, agent
    runs = [r for a in suite.agents for r in suite.runs(a)]
    assert "cql-seed1" in runs and "masked-recurrent-ppo-seed1" in runs
    for run in runs:  # each episode of every training run ran on the held-out instance of its seed
        episodes = [json.loads(line) for line in (out / "episodes" / f"{run}.jsonl").read_text().splitlines()]
        assert sorted((e["seed"], e["instance"]) for e in episodes) == [(1000, 1_000_000), (1001, 1_000_001)]
        assert {e.get("run", e["agent"]) for e in episodes} == {run}
    # 5 epochs have no registry entry: the run's best heuristic row is the paired comparison's reference
    best = max((a for a in rows if a.startswith("heuristic:")), key=lambda a: rows[a]["score"]["mean"])
    assert micro_run["report"]["anchors"]["heuristic_agent"] == best
    assert rows[best]["vs_heuristic"]["mean"] == 0.0
    for agent, row in rows.items():
        assert row["vs_heuristic"]["mean"] == pytest.approx(
            row["score"]["mean"] - rows[best]["score"]["mean"]
        )
    assert f"| vs {best} [95% CI] | across training seeds |" in (out / "results.md").read_text()
    with (out / "results.csv").open() as f:
        table = list(csv.DictReader(f))
    assert {r["eval_split"] for r in table} == {"held-out 1000000-1000001"}
    md = (out / "results.md").read_text()
    assert "| eval split |" in md and "held-out instances 1000000-1000001 of distribution 'bottlenecks'" in md
    seeds = json.loads((out / "seeds.json").read_text())
    assert seeds["evaluation_instances"] == [1_000_000, 1_000_001]
    assert seeds["training_split"] == {
        "start_level": TRAIN_SPLIT.start_level,
        "num_levels": TRAIN_SPLIT.num_levels,
    }
    assert suite.to_json()["eval_instances"] == seeds["evaluation_instances"]
    header = micro_run["report"]["provenance"]
    assert (header["env_id"], header["env_version"], header["torch_threads"]) == ("Esper-Micro-v3", "v3", 1)
    assert header["command"].startswith("esper_agents.bench.run_bench(get_suite('micro')")
    # each training run of an online agent starts its env from its own seed
    assert seeds["training"]["online"] == [suite.run_seed(0), suite.run_seed(1)] == [0, 1]


def test_the_micro_pack_never_played_a_held_out_instance(micro_run: dict) -> None:
    from esper_agents.bench.runner import training_instances

    played = training_instances(micro_run["out"] / "pack")
    assert played and all(k in TRAIN_SPLIT for k in played)


def test_a_distribution_other_than_the_ids_own_has_its_own_registry_entry() -> None:
    from esper_env.references import reference_key, reference_scores

    base = "Esper-Micro-v3/baseline/micro/25"
    assert reference_key("Esper-Micro-v3", "baseline", "micro", 25) == base
    assert reference_key("Esper-Micro-v3", "baseline", "micro", 25, "bottlenecks") == base  # the id's own
    assert reference_key("Esper-Micro-v3", "baseline", "micro", 25, "optimizers") == f"{base}/optimizers"
    own = reference_scores("Esper-Micro-v3", config="baseline", fidelity="micro", max_epochs=25)
    other = reference_scores(
        "Esper-Micro-v3", config="baseline", fidelity="micro", max_epochs=25, instances="optimizers"
    )
    assert (own.instances, own.key) == ("bottlenecks", base)
    assert (other.instances, other.key, other.heuristic_policy) == (
        "optimizers",
        f"{base}/optimizers",
        "curve-aware",
    )
    assert other.wait < other.best_scripted < other.heuristic < other.virtual_best
    with pytest.raises(LookupError, match="micro/25/no-such"):
        reference_scores(
            "Esper-Micro-v3", config="baseline", fidelity="micro", max_epochs=25, instances="no-such"
        )


@pytest.mark.parametrize(
    ("name", "distribution"),
    [
        ("micro-optimizers", "optimizers"),
        ("micro-difficulty", "difficulty"),
        ("micro-slow", "slow"),
        ("micro-slow-paced", "slow-paced"),
    ],
)
def test_the_suite_draws_its_distribution_and_is_anchored_on_its_entry(name: str, distribution: str) -> None:
    from esper_agents.bench.report import anchors
    from esper_agents.bench.suites import get_suite
    from esper_env.references import reference_scores

    suite = get_suite(name)
    assert suite.settings.instances == suite.eval_settings.instances == distribution
    assert (
        {"heuristic:lr-aware", "heuristic:curve-aware"} <= set(suite.agents)
        and suite.train_seeds == 3
        and suite.eval_episodes == 200
    )
    got = anchors(suite, {})
    ref = reference_scores(
        "Esper-Micro-v3", config="baseline", fidelity="micro", max_epochs=25, instances=distribution
    )
    assert (got["wait"], got["heuristic"]) == (ref.wait, ref.heuristic)
    assert f"micro/25/{distribution}" in got["source"] and f"distribution '{distribution}'" in got["source"]


@pytest.mark.parametrize(
    "name",
    ["micro-optimizers", "micro-offline-optimizers", "micro-difficulty", "micro-slow", "micro-slow-paced"],
)
def test_the_distribution_suites_evaluate_200_held_out_instances(name: str) -> None:
    """Enough to tell a win of +1.5 over lr-aware from 0 (paired spread 7.7 points per episode)."""
    suite = get_suite(name)
    assert (
        suite.settings.instances in ("optimizers", "difficulty", "slow", "slow-paced")
        and suite.eval_episodes == 200
    )
    instances = suite.eval_instances
    assert instances is not None and instances[0] == HELDOUT_SPLIT.start_level and len(set(instances)) == 200
    assert suite.eval_instances[:50] == get_suite("micro").eval_instances  # the first 50 are micro's


def test_a_run_on_other_instances_than_its_registry_entrys_is_anchored_on_its_own_rows() -> None:
    """micro-optimizers evaluates 200 instances; its entry was measured on the first 50."""
    from esper_agents.bench import report as bench_report
    from esper_agents.bench.suites import get_suite

    suite = get_suite("micro-optimizers")
    rows = {
        "wait": {"score": {"mean": 0.6}},
        "heuristic:curve-aware": {"score": {"mean": 0.7}},
    }  # summaries' means
    own = bench_report.anchors(suite, rows)
    assert (own["wait"], own["heuristic"]) == (0.6, 0.7) and own["heuristic_agent"] == "heuristic:curve-aware"
    assert "this run's wait and heuristic:curve-aware rows, on its 200" in own["source"]
    assert "measured on 50" in own["source"]
    first_50 = dataclasses.replace(suite, eval_episodes=50)  # the entry's own instances: the registry
    assert "reference registry" in bench_report.anchors(first_50, rows)["source"]
    assert "reference registry" in bench_report.anchors(suite, {})["source"]  # no rows of its own
