"""benchmarks/transfer_tiny.py: a bench directory's trained runs played, not retrained, on another
id (here at the "test" fidelity, 3 epochs), beside WAIT and the heuristics, resumably."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from esper_agents.bench.runner import run_bench
from esper_agents.bench.suites import get_suite


@pytest.fixture(scope="module")
def micro_bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """BC trained twice (2 training seeds, 10 gradient steps) on a micro pack of 1 episode per cell."""
    micro = get_suite("micro")
    suite = dataclasses.replace(
        micro, settings=micro.settings.replace(max_epochs=3), eval_episodes=1, offline_steps=10,
        pack=dataclasses.replace(micro.pack, episodes_per_cell=1), train_seeds=2, agents=("wait", "bc"),
    )  # fmt: skip
    out = tmp_path_factory.mktemp("bench") / "micro"
    run_bench(suite, out, workers=1, device="cpu", progress=False, log=lambda message: None)
    return out


def test_trained_runs_play_on_the_image_id_beside_wait_and_the_heuristics(
    micro_bench: Path, tmp_path: Path
) -> None:
    import transfer_tiny

    argv = ["--bench", str(micro_bench), "--agents", "bc", "--fidelity", "test", "--max-epochs", "3",
            "--episodes", "2", "--workers", "1", "--out", str(tmp_path)]  # fmt: skip
    transfer_tiny.main(argv)
    result = json.loads((tmp_path / "transfer_test_impaired.json").read_text())
    assert result["provenance"]["env_id"] == "Esper-SynthCIFAR-v2"
    assert result["provenance"]["command"].startswith("python benchmarks/transfer_tiny.py --bench")
    rows = {a["agent"]: a for a in result["agents"]}
    assert list(rows) == ["wait", "heuristic:capacity", "heuristic:rent-aware", "bc"]
    assert rows["bc"]["train_runs"] == 2 and rows["wait"]["train_runs"] == 1
    assert rows["wait"]["vs_wait"]["mean"] == 0.0 and rows["bc"]["illegal_actions"] == 0
    episodes = [
        json.loads(x) for x in (tmp_path / "transfer_test_impaired.episodes.jsonl").read_text().splitlines()
    ]
    assert len(episodes) == 2 * (3 + 2)  # 2 seeds x (3 scripted agents + 2 runs of bc)
    assert {e["seed"] for e in episodes} == {1000, 1001} and "instance" not in episodes[0]
    assert sorted({e.get("run", e["agent"]) for e in episodes}) == sorted(
        ["wait", "heuristic:capacity", "heuristic:rent-aware", "bc", "bc-seed1"]
    )
    table = (tmp_path / "transfer_test_impaired.md").read_text()
    assert "| bc | offline | 2 |" in table and "Esper-SynthCIFAR-v2, preset `impaired`" in table
    transfer_tiny.main(argv)  # resumed: every episode cached, nothing re-run
    assert len((tmp_path / "transfer_test_impaired.episodes.jsonl").read_text().splitlines()) == len(episodes)


def test_the_distribution_target_pins_held_out_instances(micro_bench: Path, tmp_path: Path) -> None:
    import transfer_tiny

    transfer_tiny.main(["--bench", str(micro_bench), "--agents", "bc", "--fidelity", "test", "--max-epochs", "2",
                        "--episodes", "1", "--workers", "1", "--target", "bottlenecks", "--scripted", "wait",
                        "heuristic:capacity", "--out", str(tmp_path)])  # fmt: skip
    episodes = [
        json.loads(x)
        for x in (tmp_path / "transfer_test_bottlenecks.episodes.jsonl").read_text().splitlines()
    ]
    assert {e["instance"] for e in episodes} == {1_000_000} and len(episodes) == 4


def test_bad_input_is_refused(micro_bench: Path, tmp_path: Path) -> None:
    import transfer_tiny

    with pytest.raises(SystemExit, match="not an esper bench directory"):
        transfer_tiny.main(["--bench", str(tmp_path), "--agents", "bc", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="no finished training run for: cql, cql-seed1"):
        transfer_tiny.main(
            ["--bench", str(micro_bench), "--agents", "cql", "--fidelity", "test", "--out", str(tmp_path)]
        )
    with pytest.raises(SystemExit):
        transfer_tiny.main(
            ["--bench", str(micro_bench), "--agents", "bc", "--scripted", "heuristic:capacity"]
        )
