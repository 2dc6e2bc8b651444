"""benchmarks/online_sweep.py: configurations trained and scored on held-out instances at a tiny budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_sweep_scores_each_configuration_against_wait_and_the_heuristic(tmp_path: Path) -> None:
    pytest.importorskip("sb3_contrib")
    import online_sweep

    argv = ["--algos", "maskable-ppo", "--configs", "base", "sparse", "--steps", "250", "--n-envs", "1",
            "--train-seeds", "1", "--eval-instances", "2", "--workers", "1", "--runs", str(tmp_path / "runs"),
            "--out", str(tmp_path)]  # fmt: skip
    online_sweep.main(argv)
    result = json.loads((tmp_path / "online_sweep.json").read_text())
    assert result["provenance"]["command"].startswith(
        "python benchmarks/online_sweep.py --algos maskable-ppo"
    )
    rows = {t["config"]: t for t in result["table"]}
    assert set(rows) == {"base", "sparse"} and rows["sparse"]["reward"] == "sparse"
    for t in rows.values():
        assert len(t["per_seed"]) == 1 and t["vs_wait"] is not None and t["vs_heuristic"] is not None
        assert t["training"]["seeds_created"] >= t["training"]["seeds_fossilized"]
    assert result["heuristic_agent"] == "heuristic:rent-aware" and result["wait"] is not None
    run = json.loads((tmp_path / "runs" / "maskable-ppo" / "sparse" / "seed0" / "run.json").read_text())
    assert (
        run["settings"]["reward"] == "sparse"
        and run["hyperparameters"]["n_steps"] == online_sweep.BASE["n_steps"]
    )
    cached = (tmp_path / "online_sweep.runs.jsonl").read_text().splitlines()
    online_sweep.main(argv)  # resumed: nothing runs again
    assert (tmp_path / "online_sweep.runs.jsonl").read_text().splitlines() == cached
    assert "| maskable-ppo | sparse | sparse |" in (tmp_path / "online_sweep.md").read_text()
    with pytest.raises(SystemExit):  # less than one rollout
        online_sweep.main([*argv[:6], "100", *argv[7:]])


def test_sweep_on_the_optimizers_suite_compares_with_its_best_heuristic(tmp_path: Path) -> None:
    pytest.importorskip("sb3_contrib")
    import online_sweep

    online_sweep.main(["--suite", "micro-optimizers", "--algos", "maskable-ppo-options-bc", "--configs", "lr-1e-4",
                       "--steps", "250", "--n-envs", "1", "--train-seeds", "1", "--eval-instances", "2",
                       "--workers", "1", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path)])  # fmt: skip
    result = json.loads((tmp_path / "online_sweep.json").read_text())
    assert (
        result["settings"]["instances"] == "optimizers"
        and result["heuristic_agent"] == "heuristic:curve-aware"
    )
    run_dir = tmp_path / "runs" / "maskable-ppo-options-bc" / "lr-1e-4" / "seed0"
    run = json.loads((run_dir / "run.json").read_text())
    assert run["settings"]["instances"] == "optimizers" and run["hyperparameters"]["learning_rate"] == 1e-4
    assert json.loads((run_dir / "warm_start.json").read_text())["teacher"] == "curve-aware"
    (row,) = result["table"]
    assert row["config"] == "lr-1e-4" and row["vs_heuristic"] is not None
