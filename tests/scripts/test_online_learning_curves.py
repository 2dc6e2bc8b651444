"""benchmarks/online_learning_curves.py --env Esper-Micro-v2: held-out learning curves at a tiny budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from esper_env.instances import HELDOUT_SPLIT
from esper_env.references import reference_scores


def test_micro_curves_have_every_algorithm_its_steps_and_the_reference_lines(tmp_path: Path) -> None:
    pytest.importorskip("sb3_contrib")
    import online_learning_curves as olc

    argv = ["--env", "Esper-Micro-v2", "--steps", "64", "--n-envs", "1", "--n-steps", "16", "--eval-every", "32",
            "--train-seeds", "1", "--eval-instances", "2", "--no-progress", "--runs", str(tmp_path / "runs"),
            "--out", str(tmp_path)]  # fmt: skip
    olc.main(argv)
    result = json.loads((tmp_path / "online_learning_curves_micro.json").read_text())
    assert result["provenance"]["env_id"] == "Esper-Micro-v2" and result["provenance"]["env_version"] == "v2"
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
    entry = reference_scores("Esper-Micro-v2", config="baseline", fidelity="micro", max_epochs=25)
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
