"""benchmarks/offline_sweep.py: configurations trained on a pack and scored on held-out instances at a tiny budget."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def optimizers_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The micro-offline-optimizers suite's pack cut to 2 policies, 1 episode each, 5 epochs."""
    from esper_agents.bench.suites import PackMatrix, get_suite
    from esper_agents.generation.orchestrator import generate

    suite = get_suite("micro-offline-optimizers")
    small = dataclasses.replace(
        suite,
        settings=suite.settings.replace(max_epochs=5),
        pack=PackMatrix(("lr-aware", "random"), (0.0,), 1),
    )
    out = tmp_path_factory.mktemp("optimizers") / "pack"
    generate(small.pack_spec(), out, workers=1, progress=False, log=lambda message: None)
    return out


def test_sweep_scores_each_configuration_against_wait_and_the_heuristic(
    optimizers_pack: Path, tmp_path: Path
) -> None:
    import offline_sweep

    argv = ["--suite", "micro-offline-optimizers", "--pack", str(optimizers_pack), "--algos", "iql", "bc",
            "--configs", "base", "temp-10", "--steps", "20", "--train-seeds", "2", "--eval-instances", "2",
            "--workers", "1", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path)]  # fmt: skip
    offline_sweep.main(argv)
    result = json.loads((tmp_path / "offline_sweep.json").read_text())
    assert result["provenance"]["command"].startswith("python benchmarks/offline_sweep.py --suite")
    assert (
        result["settings"]["instances"] == "optimizers"
        and result["heuristic_agent"] == "heuristic:curve-aware"
    )
    rows = {(t["algo"], t["config"]): t for t in result["table"]}
    assert set(rows) == {("iql", "base"), ("iql", "temp-10"), ("bc", "base")}  # temp-10 is IQL's only
    for t in rows.values():
        assert len(t["per_seed"]) == 2 and t["vs_wait"] is not None and t["vs_heuristic"] is not None
        assert 0.0 <= t["grew"] <= 1.0
    assert rows["iql", "temp-10"]["overrides"] == {"weight_temp": 10.0}
    # the runs are bench run directories, seeded as the bench seeds its runs, with the config's fields
    runs = tmp_path / "runs" / "iql" / "temp-10" / "offline"
    assert sorted(p.name for p in runs.iterdir()) == ["iql", "iql-seed1"]
    agent = json.loads((runs / "iql-seed1" / "agent" / "agent.json").read_text())
    assert json.dumps(agent).count('"weight_temp": 10.0') == 1
    summaries = [json.loads((runs / r / "summary.json").read_text()) for r in ("iql", "iql-seed1")]
    suite = offline_sweep.get_suite("micro-offline-optimizers")
    assert [s["seed"] for s in summaries] == [suite.run_seed(0), suite.run_seed(1)]
    assert all(s["steps"] == 20 for s in summaries)
    cached = (tmp_path / "offline_sweep.runs.jsonl").read_text().splitlines()
    offline_sweep.main(argv)  # resumed: nothing runs again
    assert (tmp_path / "offline_sweep.runs.jsonl").read_text().splitlines() == cached
    assert '| iql | temp-10 | {"weight_temp": 10.0} |' in (tmp_path / "offline_sweep.md").read_text()
    # a heuristic an earlier run played (the registry's best before it changed) gets its own column
    from esper_agents.common.io import append_jsonl

    plain = {"suite": "micro-offline-optimizers", "pack": str(optimizers_pack), "steps": 20,
             "eval_instances": 2, "runs": str(tmp_path / "runs")}  # fmt: skip
    for seed in suite.eval_seeds[:2]:
        append_jsonl(
            tmp_path / "offline_sweep.runs.jsonl", offline_sweep._scripted("heuristic:lr-aware", seed, plain)
        )
    offline_sweep.main(argv)
    result = json.loads((tmp_path / "offline_sweep.json").read_text())
    assert list(result["others"]) == ["heuristic:lr-aware"]
    assert all(set(t["vs_others"]) == {"heuristic:lr-aware"} for t in result["table"])
    assert "vs heuristic:lr-aware [95% CI]" in (tmp_path / "offline_sweep.md").read_text()


def test_a_bad_pack_or_budget_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import offline_sweep

    with pytest.raises(SystemExit):
        offline_sweep.main(["--pack", str(tmp_path), "--out", str(tmp_path)])
    assert "holds no pack.json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        offline_sweep.main(["--pack", str(tmp_path), "--steps", "0", "--out", str(tmp_path)])
    assert "--steps" in capsys.readouterr().err
