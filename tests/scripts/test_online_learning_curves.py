"""benchmarks/online_learning_curves.py --env Esper-Micro-v3: held-out learning curves at a tiny budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from esper_env.instances import HELDOUT_SPLIT
from esper_env.references import reference_scores


def test_micro_curves_have_every_algorithm_its_steps_and_the_reference_lines(tmp_path: Path) -> None:
    pytest.importorskip("sb3_contrib")
    import online_learning_curves as olc

    argv = ["--env", "Esper-Micro-v3", "--steps", "64", "--n-envs", "1", "--n-steps", "16", "--eval-every", "32",
            "--train-seeds", "1", "--eval-instances", "2", "--no-progress", "--runs", str(tmp_path / "runs"),
            "--out", str(tmp_path)]  # fmt: skip
    olc.main(argv)
    result = json.loads((tmp_path / "online_learning_curves_micro.json").read_text())
    assert result["provenance"]["env_id"] == "Esper-Micro-v3" and result["provenance"]["env_version"] == "v3"
    assert result["provenance"]["command"].startswith("python benchmarks/online_learning_curves.py")
    assert result["eval_instances"] == [HELDOUT_SPLIT.start_level, HELDOUT_SPLIT.start_level + 1]
    assert result["train_seeds"] == [0]
    assert set(result["algorithms"]) == set(olc.ONLINE_ALGORITHMS)
    for algo, record in result["algorithms"].items():
        curve = record["curve"]
        assert [p["steps"] for p in curve] == [32, 64], algo
        for p in curve:
            assert p["min"] <= p["mean"] <= p["max"] and len(p["per_seed"]) == 1
            assert -100 <= p["mean"] <= 100
        assert len(record["runs"]["seed0"][0]["scores"]) == 2
    entry = reference_scores("Esper-Micro-v3", config="baseline", fidelity="micro", max_epochs=25)
    lines = result["reference_lines"]
    assert lines["WAIT"] == pytest.approx(100 * entry.wait)
    assert lines[f"best heuristic ({entry.heuristic_policy})"] == pytest.approx(100 * entry.heuristic)
    assert lines[f"single best ({entry.best_scripted_schedule})"] == pytest.approx(100 * entry.best_scripted)
    assert lines["virtual best"] == pytest.approx(100 * entry.virtual_best)
    assert (tmp_path / "online_learning_curves_micro.png").stat().st_size > 0
    table = (tmp_path / "online_learning_curves_micro.md").read_text()
    assert "| virtual best |" in table and "| maskable-ppo | 64 |" in table
    # A second run resumes: the runs are finished and every evaluation point is cached.
    cached = (tmp_path / "runs" / "maskable-ppo" / "seed0" / "heldout.jsonl").read_text()
    olc.main(argv)
    assert (tmp_path / "runs" / "maskable-ppo" / "seed0" / "heldout.jsonl").read_text() == cached
    assert (
        json.loads((tmp_path / "online_learning_curves_micro.json").read_text())["algorithms"]
        == result["algorithms"]
    )


def test_micro_curves_read_the_training_runs_of_a_micro_bench(tmp_path: Path) -> None:
    """--bench: the bench's runs (2 training seeds of maskable-ppo) scored at their checkpoints, nothing retrained."""
    pytest.importorskip("sb3_contrib")
    import dataclasses

    import online_learning_curves as olc

    from esper_agents.bench.runner import run_bench
    from esper_agents.bench.suites import get_suite

    micro = get_suite("micro")
    suite = dataclasses.replace(micro, online_steps=100, n_envs=1, eval_episodes=1, train_seeds=2,
                                agents=("wait", "maskable-ppo"))  # fmt: skip
    bench = tmp_path / "bench"
    run_bench(suite, bench, workers=1, device="cpu", progress=False, log=lambda message: None)
    models = sorted(p.name for p in (bench / "online").rglob("model.zip"))
    argv = ["--env", "Esper-Micro-v3", "--bench", str(bench), "--steps", "100", "--n-envs", "1", "--train-seeds",
            "2", "--eval-every", "50", "--eval-instances", "1", "--algos", "maskable-ppo", "--no-progress",
            "--out", str(tmp_path)]  # fmt: skip
    olc.main(argv)
    result = json.loads((tmp_path / "online_learning_curves_micro.json").read_text())
    record = result["algorithms"]["maskable-ppo"]
    assert [p["steps"] for p in record["curve"]] == [50, 100] and len(record["curve"][0]["per_seed"]) == 2
    assert (bench / "online" / "maskable-ppo-seed1" / "heldout.jsonl").exists()
    # the final point is the bench's own evaluation of the final model (same seed, same instance)
    row = json.loads((bench / "episodes" / "maskable-ppo.jsonl").read_text().splitlines()[0])
    assert record["runs"]["seed0"][-1]["scores"] == [pytest.approx(row["score"])]
    assert sorted(p.name for p in (bench / "online").rglob("model.zip")) == models  # nothing trained again
    # the action mix over training, per interval between checkpoints, and PPO's statistics
    diag = record["diagnostics"]["seed0"]
    assert [(i["from"], i["to"]) for i in diag["intervals"]] == [(0, 50), (50, 100)]
    assert all(i["episodes"] >= 1 and i["seeds_created"] >= i["seeds_fossilized"] for i in diag["intervals"])
    assert "train/explained_variance" in diag["ppo"]
    assert "| maskable-ppo | seed1 | 50-100 |" in (tmp_path / "online_learning_curves_micro.md").read_text()
    with pytest.raises(SystemExit, match="its checkpoint period"):
        olc.main([*argv[:11], "40", *argv[12:]])


def test_micro_curves_of_another_suite_use_its_distribution_and_its_registry_entry(tmp_path: Path) -> None:
    """--suite micro-optimizers: that suite's training env and held-out instances, its entry's lines, its own files."""
    pytest.importorskip("sb3_contrib")
    import online_learning_curves as olc

    olc.main(["--env", "Esper-Micro-v3", "--suite", "micro-optimizers", "--algos", "maskable-ppo-options",
              "--steps", "32", "--n-envs", "1", "--n-steps", "16", "--eval-every", "32", "--eval-instances", "1",
              "--no-progress", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path)])  # fmt: skip
    result = json.loads((tmp_path / "online_learning_curves_micro_optimizers.json").read_text())
    assert result["settings"]["instances"] == "optimizers"
    assert "'optimizers'" in result["eval_split"]
    entry = reference_scores(
        "Esper-Micro-v3", config="baseline", fidelity="micro", max_epochs=25, instances="optimizers"
    )
    assert result["reference_key"] == entry.key and entry.heuristic_policy == "curve-aware"
    assert result["reference_lines"]["best heuristic (curve-aware)"] == pytest.approx(100 * entry.heuristic)
    # the other heuristics' lines come from the optimizers headroom study
    assert "heuristic:rent-aware" in result["reference_lines"]
    assert [p["steps"] for p in result["algorithms"]["maskable-ppo-options"]["curve"]] == [32]
    assert not (tmp_path / "online_learning_curves_micro.json").exists()
