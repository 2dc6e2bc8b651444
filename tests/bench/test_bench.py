"""``esper bench``: the normalised-score arithmetic, seed separation, the report, the bench pipeline on a
subset of agents (scripted, one offline, one online) at the tests' NANO fidelity, and (``slow``) the
whole smoke suite end to end with a SIGKILL in the middle and a resume."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from esper_agents.bench import report as bench_report
from esper_agents.bench.runner import _check_out, check_seed_separation, run_bench
from esper_agents.bench.suites import BENCH_AGENTS, SUITES, agent_family, get_suite, parse_run, run_name
from esper_agents.common.stats import bootstrap_ci
from esper_agents.generation.planning import plan_uniform
from esper_env import references
from esper_env.references import MIN_SPREAD, ReferenceScores, normalize

# ------------------------------------------------------------------------------------ normalised score


def test_normalize_anchors_and_midpoint() -> None:
    assert normalize(0.60, 0.60, 0.80) == 0.0
    assert normalize(0.80, 0.60, 0.80) == 1.0
    assert normalize(0.70, 0.60, 0.80) == pytest.approx(0.5)
    assert normalize(0.50, 0.60, 0.80) == pytest.approx(-0.5)  # below never growing
    assert normalize(0.90, 0.60, 0.80) == pytest.approx(1.5)  # above the heuristic


@given(
    wait=st.floats(0.0, 1.0),
    spread=st.floats(MIN_SPREAD * 1.01, 1.0),
    a=st.floats(-1.0, 2.0),
    b=st.floats(-1.0, 2.0),
)
def test_normalize_is_the_affine_map_through_the_anchors(
    wait: float, spread: float, a: float, b: float
) -> None:
    heuristic = wait + spread
    na, nb = normalize(a, wait, heuristic), normalize(b, wait, heuristic)
    assert na * spread + wait == pytest.approx(a, abs=1e-9)
    if a <= b:
        assert na <= nb  # order preserving: ranking by normalised score is ranking by score


@pytest.mark.parametrize(
    ("args", "named"),
    [((0.5, 0.6, 0.6), "not above"), ((0.5, 0.6, 0.5), "not above"), ((float("nan"), 0.1, 0.2), "score"),
     ((0.5, "0.1", 0.2), "wait"), ((0.5, 0.1, float("inf")), "heuristic"), ((True, 0.1, 0.2), "score")],
)  # fmt: skip
def test_normalize_refuses_undefined_or_bad_input(args: tuple, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        normalize(*args)


def test_normalized_maps_the_interval_and_is_empty_where_undefined() -> None:
    score = {"mean": 0.7, "ci95": [0.65, 0.75]}
    n = bench_report.normalized(score, {"wait": 0.6, "heuristic": 0.8})
    assert n["mean"] == pytest.approx(0.5) and n["ci95"] == pytest.approx([0.25, 0.75])
    assert bench_report.normalized(score, {"wait": 0.6, "heuristic": 0.6}) is None
    assert bench_report.normalized(score, {"wait": None, "heuristic": None}) is None


def _rows(agent: str, scores: list[float], size: float = 1.0) -> list[dict]:
    return [
        {"agent": agent, "seed": 1000 + i, "final_val_accuracy": s, "test_accuracy": s - 0.01, "score": s,
         "size_ratio": size, "seeds_created": 1, "seeds_fossilized": 1, "seeds_pruned": 0, "illegal": 0,
         "return": 1.0, "length": 25, "ops": {"WAIT": 25}, "seconds": 2.0}
        for i, s in enumerate(scores)
    ]  # fmt: skip


def test_anchors_prefer_the_registry_then_the_runs_own_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    suite = get_suite("tiny")
    summaries = {
        "wait": bench_report.summarize_agent("wait", _rows("wait", [0.6, 0.62]), 0.0),
        "heuristic:capacity": bench_report.summarize_agent(
            "heuristic:capacity", _rows("h", [0.8, 0.82]), 0.0
        ),
    }
    env = suite.settings
    ref = references.reference_scores(env.env_id, config=env.config, fidelity=env.fidelity)
    registry = bench_report.anchors(suite, summaries)
    assert (registry["wait"], registry["heuristic"]) == (ref.wait, ref.heuristic)
    assert "registry" in registry["source"] and registry["heuristic_agent"] == "heuristic:capacity"
    # the micro entry's heuristic is rent-aware: the paired comparison's reference where the run has it
    rent_aware = bench_report.summarize_agent("heuristic:rent-aware", _rows("h", [0.7, 0.7]), 0.0)
    micro = bench_report.anchors(get_suite("micro"), {**summaries, "heuristic:rent-aware": rent_aware})
    assert micro["heuristic_agent"] == "heuristic:rent-aware"
    assert bench_report.anchors(get_suite("micro"), summaries)["heuristic_agent"] == "heuristic:capacity"

    def missing(*args: object, **kwargs: object) -> ReferenceScores:
        raise LookupError("none")

    monkeypatch.setattr(references, "reference_scores", missing)
    own = bench_report.anchors(suite, summaries)
    assert own["wait"] == pytest.approx(0.61) and own["heuristic"] == pytest.approx(0.81)
    assert "this run" in own["source"]
    assert bench_report.anchors(suite, {})["wait"] is None


def test_summarize_agent() -> None:
    s = bench_report.summarize_agent("cql", _rows("cql", [0.6, 0.7, 0.8], size=1.5), 30.0)
    assert s["family"] == "offline" and s["episodes"] == 3
    assert s["score"]["mean"] == pytest.approx(0.7)
    lo, hi = s["score"]["ci95"]
    assert 0.6 - 1e-12 <= lo < 0.7 < hi <= 0.8 + 1e-12
    assert s["param_overhead"] == pytest.approx(0.5)
    assert s["wall_seconds"] == pytest.approx(36.0)
    with pytest.raises(ValueError, match="cql"):
        bench_report.summarize_agent("cql", [], 0.0)


def test_several_training_runs_are_averaged_per_episode_and_their_spread_reported() -> None:
    # Two runs of cql on the same three episodes: per-episode means 0.65, 0.75, 0.85; run means 0.7 and 0.8.
    rows = _rows("cql", [0.6, 0.7, 0.8]) + [
        {**r, "run": "cql-seed1", "train_index": 1, "score": r["score"] + 0.1}
        for r in _rows("cql", [0.6, 0.7, 0.8])
    ]
    s = bench_report.summarize_agent("cql", rows, 60.0)
    assert s["episodes"] == 3 and s["seeds"] == [1000, 1001, 1002] and s["train_runs"] == 2
    assert s["score"]["mean"] == pytest.approx(0.75)
    assert s["train_seed_scores"] == pytest.approx([0.7, 0.8])
    assert bench_report._spread(s["train_seed_scores"]) == "10.0 (70.0, 80.0)"
    assert bench_report._spread([0.7]) == "-"
    heuristic = _rows("heuristic:capacity", [0.6, 0.6, 0.9])
    diff = bench_report.paired_difference(rows, heuristic)
    assert diff is not None and diff["mean"] == pytest.approx((0.05 + 0.15 - 0.05) / 3)
    assert bench_report.paired_difference(rows, []) is None


def test_training_run_names_round_trip() -> None:
    assert run_name("cql", 0) == "cql" and run_name("cql", 2) == "cql-seed2"
    for agent in (*BENCH_AGENTS, "heuristic:rent-aware"):
        for i in range(3):
            assert parse_run(run_name(agent, i)) == (agent, i)
    assert parse_run("cql-seed0") == ("cql-seed0", 0) and parse_run("cql-seed01") == ("cql-seed01", 0)
    suite = get_suite("micro")
    assert suite.runs("wait") == ["wait"] and suite.runs("iql") == ["iql", "iql-seed1", "iql-seed2"]
    assert [suite.run_seed(i) for i in range(3)] == [0, 2, 4]  # 2 online envs per run: apart
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="train_seeds"):
            dataclasses.replace(suite, train_seeds=bad)
    with pytest.raises(ValueError, match="heuristic:nope.*heuristic:rent-aware"):
        dataclasses.replace(suite, agents=("heuristic:nope",))


def test_bootstrap_ci() -> None:
    x = np.random.default_rng(0).normal(0.7, 0.05, size=20)
    a, b = bootstrap_ci(x), bootstrap_ci(x)
    assert a == b  # deterministic
    assert a["ci95"][0] < a["mean"] < a["ci95"][1]
    assert a["ci95"][1] - a["ci95"][0] == pytest.approx(2 * 1.96 * x.std() / math.sqrt(20), rel=0.25)
    assert bootstrap_ci([0.3])["ci95"] == [0.3, 0.3]
    for bad in ({"values": []}, {"values": [1.0], "confidence": 1.0}, {"values": [1.0], "resamples": 0}):
        with pytest.raises(ValueError):
            bootstrap_ci(**bad)


# ------------------------------------------------------------------------------------ the registry


def test_reference_registry_entries() -> None:
    entries = references.load_references()
    assert entries, "the shipped registry is empty"
    for key, ref in entries.items():
        assert key == ref.key
        assert ref.command.startswith("python benchmarks/reference_scores.py")
        assert ref.code_version["git_commit"]
        if ref.instances is None:  # an entry over instances (the fast tier's) comes from a headroom run
            assert set(ref.returns) == {"wait", "heuristic", "best_scripted"}
        else:
            assert ref.virtual_best is not None and ref.virtual_best >= ref.best_scripted - 0.05
        assert all(math.isfinite(v) for v in (ref.wait, ref.heuristic, ref.best_scripted))
        if ref.heuristic - ref.wait > MIN_SPREAD:
            assert ref.normalize(ref.wait) == 0.0 and ref.normalize(ref.heuristic) == 1.0
        else:  # "test" (near chance), or a preset where the heuristic's growth does not pay (baseline)
            with pytest.raises(ValueError, match="undefined"):
                ref.normalize(ref.wait)
    # Keyed by the id measured on (v1); v2 has v1's dynamics, so v1's entries serve it.
    assert (
        entries["Esper-SynthCIFAR-v1/impaired/tiny/25"].heuristic
        > entries["Esper-SynthCIFAR-v1/impaired/tiny/25"].wait
    )
    assert (
        references.reference_scores("Esper-SynthCIFAR-v2") is entries["Esper-SynthCIFAR-v1/impaired/tiny/25"]
    )
    with pytest.raises(LookupError, match="no reference scores for 'Esper-SynthCIFAR-v0/impaired/tiny/25'"):
        references.reference_scores("Esper-SynthCIFAR-v0")


def test_reference_lookup_errors_name_what_is_measured() -> None:
    with pytest.raises(LookupError, match="Esper-SynthCIFAR-v1/impaired/tiny/25"):
        references.reference_scores("Esper-SynthCIFAR-v2", config="impaired", fidelity="tiny", max_epochs=7)
    ref = references.reference_scores("Esper-SynthCIFAR-v2", config="impaired", fidelity="tiny")
    assert references.normalized_score(ref.best_scripted, ref.env_id, config="impaired", fidelity="tiny") == (
        pytest.approx((ref.best_scripted - ref.wait) / (ref.heuristic - ref.wait))
    )


# ------------------------------------------------------------------------------------ seeds


@pytest.mark.parametrize("name", list(SUITES))
def test_evaluation_seeds_never_overlap_training_seeds(name: str) -> None:
    suite = get_suite(name)
    pack_seeds = {t.seed for t in plan_uniform(suite.pack_spec())}
    online_seeds = set(range(suite.train_seed, suite.train_seed + suite.n_envs))
    assert pack_seeds and online_seeds
    assert not set(suite.eval_seeds) & (pack_seeds | online_seeds)
    check_seed_separation(suite, {"pack": sorted(pack_seeds), "online": sorted(online_seeds)})


def test_overlapping_seeds_are_refused() -> None:
    suite = dataclasses.replace(get_suite("smoke"), eval_seed=0)
    with pytest.raises(ValueError, match=r"evaluation seeds \[0\] .*online"):
        check_seed_separation(suite, {"online": [0]})


def test_a_bench_directory_of_another_suite_is_refused(tmp_path: Path) -> None:
    _check_out(get_suite("smoke"), tmp_path)
    _check_out(
        dataclasses.replace(get_suite("smoke"), agents=("wait",)), tmp_path
    )  # a subset is the same run
    with pytest.raises(ValueError, match="other settings"):
        _check_out(get_suite("tiny"), tmp_path)
    sparse = get_suite("smoke").settings.replace(reward="sparse")  # esper bench --reward sparse
    with pytest.raises(ValueError, match=r"other settings \(pack, settings differ\)"):
        _check_out(dataclasses.replace(get_suite("smoke"), settings=sparse), tmp_path)


def test_a_bench_directory_may_evaluate_more_or_fewer_of_the_same_seeds(tmp_path: Path) -> None:
    """esper bench --eval-episodes: the evaluation set grows (or shrinks) from the suite's first seed."""
    import json

    micro = dataclasses.replace(get_suite("micro-optimizers"), eval_episodes=50)
    _check_out(micro, tmp_path)
    more = dataclasses.replace(micro, eval_episodes=200)
    _check_out(more, tmp_path)
    record = json.loads((tmp_path / "bench.json").read_text())
    assert record["eval_seeds"] == more.eval_seeds and len(record["eval_instances"]) == 200
    _check_out(micro, tmp_path)  # back to the first 50: still the same run
    assert json.loads((tmp_path / "bench.json").read_text())["eval_seeds"] == micro.eval_seeds
    with pytest.raises(ValueError, match=r"other settings \(eval_seeds differ\)"):
        _check_out(dataclasses.replace(micro, eval_seed=5000), tmp_path)  # other seeds: another run
    with pytest.raises(ValueError, match=r"eval_seeds, online_steps differ"):
        _check_out(dataclasses.replace(more, online_steps=20_000), tmp_path)


def test_eval_episodes_on_the_command_line_sets_the_suites(tmp_path: Path) -> None:
    from esper_agents.cli import main

    main(["bench", "--suite", "smoke", "--agents", "wait", "--eval-episodes", "2", "--out", str(tmp_path),
          "--no-progress"])  # fmt: skip
    rows = (tmp_path / "episodes" / "wait.jsonl").read_text().splitlines()
    assert len(rows) == 2
    main(["bench", "--suite", "smoke", "--agents", "wait", "--eval-episodes", "4", "--out", str(tmp_path),
          "--no-progress"])  # fmt: skip
    rows_after = (tmp_path / "episodes" / "wait.jsonl").read_text().splitlines()
    assert rows_after[:2] == rows and len(rows_after) == 4  # the first two kept, two more played


def test_a_suite_pack_is_its_matrix_in_the_suites_env() -> None:
    suite = get_suite("smoke")
    spec = suite.pack_spec()
    assert spec.env == suite.settings and spec.configs == (suite.settings.config,)
    assert spec.base_seed == suite.train_seed and not spec.adaptive.enabled
    assert spec.plan_for("random").epsilons == (1.0,) and spec.plan_for("capacity").epsilons == (0.2,)
    assert suite.to_json()["settings"] == suite.settings.to_dict()


def test_every_agent_has_a_family() -> None:
    assert {agent_family(a) for a in BENCH_AGENTS} == {"scripted", "offline", "online"}
    with pytest.raises(ValueError, match="nope"):
        agent_family("nope")


# ------------------------------------------------------------------------------------ end to end


def _bench(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "esper_agents.cli", "bench", "--suite", "smoke", "--out", str(out),
            "--workers", "2", "--no-progress", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The smoke suite, killed (SIGKILL, process group) once evaluation has begun, then resumed."""
    out = tmp_path_factory.mktemp("bench") / "smoke"
    proc = subprocess.Popen(_bench(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    first = out / "episodes" / "wait.jsonl"
    deadline = time.monotonic() + 1200  # a hang guard only, not a speed check
    while not (first.exists() and first.read_text().strip()) and proc.poll() is None:
        assert time.monotonic() < deadline, "the bench never reached its evaluation"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {p.name: p.read_text() for p in (out / "episodes").glob("*.jsonl")}
    trained = {
        p: p.stat().st_mtime_ns
        for p in [*out.glob("offline/*/summary.json"), *out.glob("online/*/model.zip")]
    }
    done = subprocess.run(_bench(out), capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return {"out": out, "before": before, "trained": trained, "stdout": done.stdout}


@pytest.mark.slow
def test_smoke_bench_has_a_row_per_agent_with_intervals(smoke_run: dict) -> None:
    out = smoke_run["out"]
    table = (out / "results.md").read_text()
    for agent in BENCH_AGENTS:
        row = next(line for line in table.splitlines() if line.startswith(f"| {agent} |"))
        assert row.count("[") >= 3, row  # final acc, test acc and score, each with its interval
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["agent"] for r in rows] == list(BENCH_AGENTS)
    for r in rows:
        assert int(r["episodes"]) == 3
        for key in ("final_val_accuracy", "test_accuracy", "score"):
            assert float(r[f"{key}_lo"]) <= float(r[key]) <= float(r[f"{key}_hi"])
        assert float(r["wall_seconds"]) >= float(r["eval_seconds"]) > 0
        assert r["normalized_score"] == ""  # "test" fidelity: the heuristic does not beat WAIT, undefined
    assert (out / "results.png").stat().st_size > 10_000
    result = json.loads((out / "results.json").read_text())
    assert "registry" in result["anchors"]["source"]
    header = result["provenance"]  # what tests/scripts/test_results_provenance.py asks of a committed result
    assert header["command"] == shlex.join(["esper", *_bench(out)[3:]]) and len(header["git_commit"]) == 40
    assert (header["env_id"], header["env_version"]) == ("Esper-SynthCIFAR-v2", "v2")
    masked = [a for a in result["agents"] if a["agent"] not in ("recurrent-ppo",)]
    assert all(a["illegal_actions"] == 0 for a in masked)  # every masked agent stays legal


@pytest.mark.slow
def test_smoke_bench_resumed_without_redoing_work(smoke_run: dict) -> None:
    out = smoke_run["out"]
    for path, mtime in smoke_run["trained"].items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was trained again"
    assert smoke_run["trained"], "nothing was trained before the kill"
    for name, text in smoke_run["before"].items():
        kept = [json.loads(line) for line in text.splitlines() if line.strip()]
        now = {r["seed"]: r for r in map(json.loads, (out / "episodes" / name).read_text().splitlines())}
        for row in kept:
            assert now[row["seed"]] == row  # finished episodes were kept, not rerun
        assert sorted(now) == [1000, 1001, 1002]


@pytest.mark.slow
def test_smoke_bench_seeds_are_apart(smoke_run: dict) -> None:
    seeds = json.loads((smoke_run["out"] / "seeds.json").read_text())
    training = {s for used in seeds["training"].values() for s in used}
    assert training and not training & set(seeds["evaluation"])


@pytest.mark.slow
def test_smoke_bench_report_only_rewrites_the_same_table(smoke_run: dict, tmp_path: Path) -> None:
    done = subprocess.run(_bench(smoke_run["out"], "--report-only", "--results", str(tmp_path)),
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "results.md").read_text() == (smoke_run["out"] / "results.md").read_text()


# ------------------------------------------------------------------------------------ a subset, in-process

#: The default suite's check of the pipeline: the two anchors, one offline and one online agent.
SUBSET = ("wait", "heuristic:capacity", "bc", "maskable-ppo")


@pytest.fixture(scope="module")
def subset_run(nano_fidelity: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The smoke suite's pack, training and evaluation for :data:`SUBSET`, in this process (one
    worker), at the NANO fidelity and with one PPO rollout and 50 gradient steps."""
    smoke = get_suite("smoke")
    settings = smoke.settings.replace(fidelity=nano_fidelity, max_epochs=5)
    suite = dataclasses.replace(smoke, settings=settings, online_steps=50, offline_steps=50, agents=SUBSET)
    out = tmp_path_factory.mktemp("bench") / "subset"
    report = run_bench(suite, out, workers=1, device="cpu", progress=False, log=lambda message: None)
    return {"suite": suite, "out": out, "report": report}


def test_subset_bench_has_a_row_per_agent_with_intervals(subset_run: dict) -> None:
    out, suite = subset_run["out"], subset_run["suite"]
    table = (out / "results.md").read_text()
    for agent in SUBSET:
        row = next(line for line in table.splitlines() if line.startswith(f"| {agent} |"))
        assert row.count("[") >= 3, row  # final acc, test acc and score, each with its interval
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["agent"] for r in rows] == list(SUBSET)
    for r in rows:
        assert int(r["episodes"]) == suite.eval_episodes
        for key in ("final_val_accuracy", "test_accuracy", "score"):
            assert float(r[f"{key}_lo"]) <= float(r[key]) <= float(r[f"{key}_hi"])
        assert float(r["wall_seconds"]) >= float(r["eval_seconds"]) > 0
    assert (out / "results.png").stat().st_size > 10_000
    result = json.loads((out / "results.json").read_text())
    assert [a["agent"] for a in result["agents"]] == [a["agent"] for a in subset_run["report"]["agents"]]
    assert "this run" in result["anchors"]["source"]  # no registry entry at NANO: the run's own rows
    assert all(a["illegal_actions"] == 0 for a in result["agents"])  # every agent here is masked


def test_subset_bench_trains_its_offline_and_online_agents(subset_run: dict) -> None:
    out = subset_run["out"]
    assert (out / "online" / "maskable-ppo" / "model.zip").is_file()
    assert list(out.glob("offline/bc/summary.json"))
    rows = {a["agent"]: a for a in subset_run["report"]["agents"]}
    assert rows["bc"]["family"] == "offline" and rows["maskable-ppo"]["family"] == "online"


def test_subset_bench_seeds_are_apart(subset_run: dict) -> None:
    seeds = json.loads((subset_run["out"] / "seeds.json").read_text())
    training = {s for used in seeds["training"].values() for s in used}
    assert training and not training & set(seeds["evaluation"])
    assert seeds["evaluation"] == subset_run["suite"].eval_seeds


def test_subset_bench_report_only_rewrites_the_same_table(subset_run: dict, tmp_path: Path) -> None:
    out = subset_run["out"]
    run_bench(subset_run["suite"], out, workers=1, device="cpu", progress=False, report_only=True,
              results=tmp_path, log=lambda message: None)  # fmt: skip
    assert (tmp_path / "results.md").read_text() == (out / "results.md").read_text()


def test_budget_flags_override_the_suites_and_are_recorded(tmp_path: Path) -> None:
    from esper_agents import cli

    out = tmp_path / "b"
    argv = ["bench", "--suite", "smoke", "--out", str(out), "--offline-steps", "7", "--online-steps", "9",
            "--agents", "wait", "--report-only", "--no-progress"]  # fmt: skip
    assert cli.main(argv) == 0
    record = json.loads((out / "bench.json").read_text())
    assert (record["offline_steps"], record["online_steps"]) == (7, 9)
    assert cli.main([*argv[:6], "8", *argv[7:]]) == 2  # another budget in the same directory is refused
