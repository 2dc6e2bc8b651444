"""benchmarks/micro_tier.py: the throughput and fidelity subcommands (baseline and tiny sides at "test")."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

RECORDED = Path(__file__).parents[2] / "benchmarks" / "results" / "growth_headroom.episodes.jsonl"


def test_micro_throughput_reports_positive_ratios(tmp_path: Path) -> None:
    import micro_tier

    micro_tier.main(["throughput", "--baseline-fidelity", "test", "--max-epochs", "2", "--rounds", "2",
                     "--fast-steps", "2", "--envs", "2", "--vector-rounds", "2", "--out", str(tmp_path)])  # fmt: skip
    result = json.loads((tmp_path / "micro_throughput.json").read_text())
    assert result["provenance"]["env_id"] == "Esper-Micro-v3"
    assert result["native"] == "not built" and result["baseline_fidelity"] == "test"
    for kind in ("wait", "grown"):
        row = result["single"][kind]
        assert row["ratio"] > 0 and row["baseline"]["ms_per_step"] > 0 and row["fast"]["ms_per_step"] > 0
        assert row["baseline"]["steps"] == 2 and row["fast"]["steps"] == 4
        assert row["baseline"]["episodes"] == 1 and row["fast"]["episodes"] == 2
    vector = result["vector"]
    assert vector["envs"] == 2 and vector["actions"] == "WAIT only" and vector["ratio"] > 0
    assert vector["baseline"]["steps"] == 4 and vector["fast"]["steps_per_s"] > 0
    assert isinstance(result["must_show_1"], bool)
    table = (tmp_path / "micro_throughput.md").read_text()
    assert "grown (`now:widen_4x@0`)" in table and "2 async" in table and "not built" in table


def _fast_episodes(path: Path) -> list[str]:
    """A synthetic fast side: the recorded impaired means plus noise, on one training and two held-out instances."""
    import micro_tier

    recorded: dict[str, list[float]] = {}
    accuracy: dict[str, list[float]] = {}
    for line in RECORDED.read_text().splitlines():
        e = json.loads(line)
        if e["config"] == "impaired":
            recorded.setdefault(e["schedule"], []).append(e["score"])
            accuracy.setdefault(e["schedule"], []).append(e["final_val_accuracy"])
    rng, lines = random.Random(0), []
    names = [s.name for s in micro_tier.library()] + list(micro_tier.HEURISTICS)
    start = micro_tier.HELDOUT_SPLIT.start_level
    for name in names:
        mean = sum(recorded[name]) / len(recorded[name]) if name in recorded else 0.5
        # The fast side's accuracies rank in reverse of the recorded ones: only the score agrees.
        acc = -sum(accuracy[name]) / len(accuracy[name]) if name in accuracy else 0.5
        for k in (3, start, start + 1):
            score = mean + rng.uniform(-0.005, 0.005) + (0.5 if k == 3 else 0.0)  # training instance: off
            lines.append(json.dumps({"schedule": name, "instance": k, "seed": 0, "score": score,
                                     "final_val_accuracy": acc + rng.uniform(-0.001, 0.001)}))  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return names


def test_micro_fidelity_correlates_and_lists_pairs(tmp_path: Path) -> None:
    import micro_tier

    _fast_episodes(tmp_path / "micro_headroom.episodes.jsonl")
    argv = ["fidelity", "--out", str(tmp_path), "--tiny-instances", "1", "--seeds", "1", "--workers", "1",
            "--tiny-fidelity", "test", "--max-epochs", "2"]  # fmt: skip
    micro_tier.main(argv)
    result = json.loads((tmp_path / "micro_fidelity.json").read_text())
    assert result["fast_heldout_instances"] == 2
    side = result["tiny_impaired"]
    assert side["n"] >= 10 and len(result["pairs"]) == side["n"]
    assert side["rho"] > 0.8 and side["p"] < 0.01 and side["must_show_4"]
    assert side["rho_accuracy"] < -0.8  # the accuracies were written in reverse order
    lo, hi = side["rho_ci"]
    assert -1 <= lo <= hi <= 1 and side["units"] == [2, 5]  # 2 fast instances, 5 recorded seeds
    assert {"wait", "now:widen_2x", "heuristic:capacity"} <= {r["schedule"] for r in result["pairs"]}
    for row in result["pairs"]:
        assert (
            row["fast"] is not None
            and row["tiny_impaired"] is not None
            and row["tiny_distribution"] is not None
        )
    assert result["tiny_distribution"]["n"] == side["n"]
    episodes = (tmp_path / "micro_fidelity_tiny.episodes.jsonl").read_text().splitlines()
    assert len(episodes) == side["n"]
    assert all(json.loads(e)["instance"] == micro_tier.HELDOUT_SPLIT.start_level for e in episodes)
    table = (tmp_path / "micro_fidelity.md").read_text()
    assert "| now:widen_4x@0 |" in table and "Spearman rho" in table
    assert "of the final accuracies (no rent): -1.000" in table
    # A second run finds every tiny episode cached; skipping schedules at tiny drops them from its side.
    micro_tier.main([*argv, "--skip-at-tiny", "now:widen_4x,now:widen_2x"])
    assert len((tmp_path / "micro_fidelity_tiny.episodes.jsonl").read_text().splitlines()) == len(episodes)
    skipped = json.loads((tmp_path / "micro_fidelity.json").read_text())
    assert skipped["tiny_distribution"]["n"] == side["n"] - 2
    assert "now:widen_4x" not in skipped["tiny_distribution"]["schedules"]
    assert skipped["tiny_impaired"]["n"] == side["n"]


def test_micro_fidelity_rejects_an_unknown_skipped_schedule(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import micro_tier

    _fast_episodes(tmp_path / "micro_headroom.episodes.jsonl")
    with pytest.raises(SystemExit):
        micro_tier.main(
            ["fidelity", "--out", str(tmp_path), "--tiny-instances", "1", "--skip-at-tiny", "now:bogus"]
        )
    assert "now:bogus" in capsys.readouterr().err


def test_micro_spearman_average_ties_by_hand() -> None:
    import micro_tier

    assert micro_tier.average_ranks([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]
    # x ranks 1, 2.5, 2.5, 4; y ranks 1, 3, 2, 4: sum dx dy = 4.5, sum dx^2 = 4.5, sum dy^2 = 5.
    rho, p = micro_tier.spearman([1, 2, 2, 3], [1, 3, 2, 4])
    assert rho == pytest.approx(4.5 / (4.5 * 5) ** 0.5) == pytest.approx(0.9**0.5)
    scipy_stats = pytest.importorskip("scipy.stats")
    assert rho == pytest.approx(scipy_stats.spearmanr([1, 2, 2, 3], [1, 3, 2, 4]).statistic)
    assert p == pytest.approx(scipy_stats.spearmanr([1, 2, 2, 3], [1, 3, 2, 4]).pvalue)
    assert micro_tier.spearman([3, 2, 1], [1, 2, 3])[0] == pytest.approx(-1.0)
    rho, p = micro_tier.spearman([1, 1, 1], [1, 2, 3])
    assert math.isnan(rho) and p is None  # a constant side has no ranking
    with pytest.raises(ValueError, match="equally long"):
        micro_tier.spearman([1, 2, 3], [1, 2])


def test_rent_sweep_rescores_recorded_episodes_by_hand(tmp_path: Path) -> None:
    """Two schedules on 2 training and 2 held-out instances x 2 seeds: every figure re-derived by hand."""
    import micro_tier

    from esper_env.instances import DISTRIBUTIONS, HELDOUT_SPLIT

    dist = DISTRIBUTIONS["bottlenecks"]
    ks = [0, 1, HELDOUT_SPLIT.start_level, HELDOUT_SPLIT.start_level + 1]
    acc = {("wait", k): 0.5 for k in ks} | {
        ("now:widen_4x@0", k): 0.5 + 0.1 * (i % 2) for i, k in enumerate(ks)
    }
    episodes = [{"schedule": n, "instance": k, "seed": s, "final_val_accuracy": a,
                 "size_ratio": 1.0 if n == "wait" else 4.0} for (n, k), a in acc.items() for s in (0, 1)]  # fmt: skip
    result = micro_tier.rent_sweep(episodes, dist, np.array([0.0, 0.01, 0.02]))
    assert result["triples"] == 1
    row = result["rows"][0]
    rents = dict(zip(dist.rent, (0.0, 0.01, 0.02)))
    grown = [100 * (acc["now:widen_4x@0", k] - 2 * rents[dist.draw(k).rent]) for k in ks]
    assert row["wait"] == pytest.approx(50.0)
    assert row["single_best"] == ("now:widen_4x@0" if np.mean(grown[:2]) > 50 else "wait")
    vb = np.mean([max(g, 50.0) for g in grown[2:]])
    assert row["virtual_best"] == pytest.approx(vb)
    assert row["vb_minus_sb"] == pytest.approx(
        vb - (np.mean(grown[2:]) if row["single_best"] != "wait" else 50.0)
    )
    with pytest.raises(SystemExit, match="2 reset seeds"):
        micro_tier.rent_sweep([e for e in episodes if e["seed"] == 0], dist, np.array([0.0, 0.01, 0.02]))
    # A heuristic 20 points above WAIT everywhere: the rent rule picks it at every rent, never for the
    # single or virtual best, and only while every rent stays below the heuristics' own threshold.
    heuristic = [{**e, "schedule": "heuristic:curve-aware", "final_val_accuracy": 0.7, "size_ratio": 1.0}
                 for e in episodes if e["schedule"] == "wait"]  # fmt: skip
    with_rule = micro_tier.rent_sweep(
        episodes + heuristic, dist, np.array([0.0, 0.01, 0.02]), heuristics=True
    )
    seen = {dist.draw(k).rent for k in ks[:2]}  # a rent no training instance has: the rule waits
    expected = np.mean([70.0 if dist.draw(k).rent in seen else 50.0 for k in ks[2:]])
    assert expected > 50.0  # the heuristic is picked somewhere
    assert with_rule["rows"][0]["rent_rule"] == pytest.approx(expected)
    assert {k: with_rule["rows"][0][k] for k in ("single_best", "virtual_best")} == {
        k: row[k] for k in ("single_best", "virtual_best")
    }
    with pytest.raises(SystemExit, match="below 0.1"):
        micro_tier.rent_sweep(episodes + heuristic, dist, np.array([0.0, 0.05, 0.1]), heuristics=True)
    path = tmp_path / "episodes.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in episodes))
    micro_tier.main(["rent-sweep", "--episodes", str(path), "--max-rent", "0.02", "--out", str(tmp_path)])
    written = json.loads((tmp_path / "micro_rent_sweep.json").read_text())
    assert written["triples"] == 1 and written["provenance"]["command"].startswith(
        "python benchmarks/micro_tier.py"
    )


def test_custom_distribution_replaces_drawn_fields_and_names_bad_ones() -> None:
    import micro_tier

    from esper_env.instances import DISTRIBUTIONS

    base = DISTRIBUTIONS["bottlenecks"]
    dist = micro_tier.custom_distribution("bottlenecks", ["widths=8,16,64", "rent=0"])
    assert dist.widths == (8, 16, 64) and dist.rent == (0.0,) and dist.blobs == base.blobs
    assert dist.name == "bottlenecks[widths=8,16,64;rent=0.0]"
    assert set(dist.draw(3).widths) <= {8, 16, 64} and dist.draw(3).rent == 0.0
    assert micro_tier.custom_distribution("bottlenecks", []) is base
    assert micro_tier.custom_distribution("bottlenecks", ["optimizer=SGD,Adam"]).optimizer == ("SGD", "Adam")
    with pytest.raises(ValueError, match="FIELD one of .*'widths'.*got 'depth=3'"):
        micro_tier.custom_distribution("bottlenecks", ["depth=3"])
    with pytest.raises(ValueError, match="widths takes int"):
        micro_tier.custom_distribution("bottlenecks", ["widths=8,wide"])


def test_context_rule_is_fit_on_training_instances_and_scored_on_held_out_ones() -> None:
    """Growing pays 10 points where the rent is 0 and costs 10 elsewhere: the fitted rule reads the rent."""
    import micro_tier

    from esper_env.instances import DISTRIBUTIONS

    dist = DISTRIBUTIONS["bottlenecks"]
    train, heldout = list(range(30)), list(range(100, 130))
    score: dict[str, dict[int, list[float]]] = {
        n: {} for n in ("wait", micro_tier.RULE_NOW, micro_tier.RULE_LATER)
    }
    for k in train + heldout:
        free = dist.draw(k).rent == 0
        score["wait"][k] = [50.0, 50.0]
        score[micro_tier.RULE_NOW][k] = [60.0 if free else 40.0] * 2
        score[micro_tier.RULE_LATER][k] = [55.0 if free else 45.0] * 2
    curves = {(k, s): [0.5] * 25 for k in train + heldout for s in (0, 1)}
    name, held = micro_tier.context_rule(score, curves, dist, train, heldout, 2)
    assert name.startswith(micro_tier.RULE_NOW) and "rent < 0.05" in name
    expected = [60.0 if dist.draw(k).rent == 0 else 50.0 for k in heldout]
    assert held.tolist() == expected


def test_optimizer_rule_picks_per_optimizer_and_learning_rate_on_training_instances() -> None:
    """Widening pays 10 points on SGD hosts and costs 10 on Adam ones: the rule that sees the
    optimizer widens exactly the SGD instances, which no observed field tells apart."""
    import micro_tier

    from esper_env.instances import DISTRIBUTIONS

    dist = DISTRIBUTIONS["optimizers"]
    train, heldout = list(range(60)), list(range(1000, 1040))
    names = ["wait", micro_tier.RULE_NOW]
    score: dict[str, dict[int, list[float]]] = {n: {} for n in names}
    for k in train + heldout:
        sgd = dist.draw(k).optimizer == "SGD"
        score["wait"][k] = [50.0, 50.0]
        score[micro_tier.RULE_NOW][k] = [60.0 if sgd else 40.0] * 2
    choice, held = micro_tier.cell_rule(score, dist, "optimizer", names, train, heldout)
    assert choice and all(
        (pick == micro_tier.RULE_NOW) == cell.startswith("SGD") for cell, pick in choice.items()
    )
    assert held.tolist() == [60.0 if dist.draw(k).optimizer == "SGD" else 50.0 for k in heldout]


def test_rent_rule_picks_per_observed_rent_on_training_instances() -> None:
    """Widening every block pays 10 points where growth is free and costs 10 elsewhere, where the
    heuristic gains 5: the rule widens at rent 0 and plays the heuristic at the other rents."""
    import micro_tier

    from esper_env.instances import DISTRIBUTIONS

    dist = DISTRIBUTIONS["difficulty"]
    train, heldout = list(range(60)), list(range(1000, 1040))
    names = ["wait", "now:widen_4x", "heuristic:curve-aware"]
    score: dict[str, dict[int, list[float]]] = {n: {} for n in names}
    for k in train + heldout:
        free = dist.draw(k).rent == 0
        score["wait"][k] = [50.0, 50.0]
        score["now:widen_4x"][k] = [60.0 if free else 40.0] * 2
        score["heuristic:curve-aware"][k] = [55.0, 55.0]
    choice, held = micro_tier.cell_rule(score, dist, "rent", names, train, heldout)
    assert choice == {
        "rent=0": "now:widen_4x",
        "rent=0.03": "heuristic:curve-aware",
        "rent=0.06": "heuristic:curve-aware",
    }
    assert held.tolist() == [60.0 if dist.draw(k).rent == 0 else 55.0 for k in heldout]


def test_curve_rule_adds_a_later_growth_where_the_heuristic_waited_and_the_curve_is_low() -> None:
    """A late widening pays 10 points where WAIT's epoch-5 accuracy is low (0.2) and costs 10 where
    it is high: the fitted rule reads the curve, and keeps the heuristic's own episodes wherever the
    heuristic grew."""
    import micro_tier

    from esper_env.instances import DISTRIBUTIONS

    dist = DISTRIBUTIONS["optimizers"]
    train, heldout = list(range(40)), list(range(1000, 1040))
    later = "from5:widen_4x@0"
    score: dict[str, dict[int, list[float]]] = {
        n: {} for n in ("wait", "heuristic:h", *micro_tier.LATER_GROWTHS)
    }
    curves, waited = {}, {}
    for k in train + heldout:
        slow, grew = k % 2 == 0, k % 3 == 0
        for s in (0, 1):
            curves[k, s] = [0.2 if slow else 0.8] * 25
            waited[k, s] = not grew
        score["heuristic:h"][k] = [70.0 if grew else 50.0] * 2
        score["wait"][k] = [50.0, 50.0]
        for n in micro_tier.LATER_GROWTHS:
            score[n][k] = [60.0 if slow and n == later else 40.0] * 2
    name, held = micro_tier.curve_rule(score, curves, waited, "heuristic:h", dist, train, heldout, 2)
    assert name.startswith(f"{later} where WAIT's epoch-5 accuracy < ")
    assert name.endswith("else heuristic:h where it never grew")
    expected = [70.0 if k % 3 == 0 else 60.0 if k % 2 == 0 else 50.0 for k in heldout]
    assert held.tolist() == expected


def test_curve_rule_may_wait_to_read_the_curve_before_the_heuristics_growth() -> None:
    """Widening every block after 2 epochs pays 30 points on slow learners, where the heuristic's
    widening at once pays 10: the rule waits 2 epochs everywhere, widens every block where the curve
    is low and plays the heuristic's growth 2 epochs late where it would have grown."""
    import micro_tier

    from esper_env.instances import DISTRIBUTIONS

    dist = DISTRIBUTIONS["optimizers"]
    train, heldout = list(range(40)), list(range(1000, 1040))
    score: dict[str, dict[int, list[float]]] = {
        n: {} for n in ("wait", "heuristic:h", *micro_tier.LATER_GROWTHS)
    }
    curves, waited = {}, {}
    for k in train + heldout:
        slow, grew = k % 2 == 0, k % 3 != 0
        for s in (0, 1):
            curves[k, s] = [0.2 if slow else 0.8] * 25
            waited[k, s] = not grew
        score["wait"][k] = [50.0, 50.0]
        score["heuristic:h"][k] = [60.0 if grew else 50.0] * 2
        for n in micro_tier.LATER_GROWTHS:
            score[n][k] = [40.0, 40.0]
        score["from2:widen_4x"][k] = [80.0 if slow else 40.0] * 2
        score["from2:widen_4x@0"][k] = [59.0 if grew else 45.0] * 2
    name, held = micro_tier.curve_rule(score, curves, waited, "heuristic:h", dist, train, heldout, 2)
    assert name.startswith("from2:widen_4x where WAIT's epoch-2 accuracy < ")
    assert name.endswith("heuristic:h's growth delayed to epoch 2 elsewhere")
    expected = [80.0 if k % 2 == 0 else 59.0 if k % 3 != 0 else 50.0 for k in heldout]
    assert held.tolist() == expected


def test_cross_seed_best_chooses_on_the_other_seeds_by_hand() -> None:
    import micro_tier

    # Two seeds: choose on one, score on the other. Seed 0 prefers A (scores 9 on seed 1), seed 1
    # prefers B (scores 1 on seed 0): (9 + 1) / 2.
    assert micro_tier.cross_seed_best([[10, 9], [1, 12]]) == pytest.approx(5.0)
    # Three seeds: for seed b, the best on the mean of the other two. A = (6, 0, 6), B = (5, 5, 5):
    # held 0 -> others A 3, B 5 -> B scores 5; held 1 -> A 6, B 5 -> A scores 0; held 2 -> B 5.
    assert micro_tier.cross_seed_best([[6, 0, 6], [5, 5, 5]]) == pytest.approx(10 / 3)
    # A tie goes to the first schedule.
    assert micro_tier.cross_seed_best([[1, 1], [1, 1]]) == 1.0
    with pytest.raises(ValueError, match=">= 2 seeds"):
        micro_tier.cross_seed_best([[1], [2]])


def test_micro_split_half_reliability_and_rho_interval() -> None:
    """A ranking with no noise is perfectly reliable and correlates at 1 in every resample; one of
    pure noise is unreliable; too few units give no reliability."""
    import micro_tier

    rng = np.random.default_rng(0)
    signal = np.arange(10, dtype=float)[:, None]  # 10 schedules, clearly ordered
    clean = signal + np.zeros((10, 8))
    assert micro_tier.split_half_reliability(clean, rng) == pytest.approx(1.0)
    assert micro_tier.bootstrap_rho(clean, clean + 5, rng, n=50) == pytest.approx((1.0, 1.0))
    noise = rng.normal(size=(10, 40))
    assert abs(micro_tier.split_half_reliability(noise, rng)) < 0.5
    noisy = signal + rng.normal(scale=3.0, size=(10, 8))  # reliable, but not perfectly
    assert 0.5 < micro_tier.split_half_reliability(noisy, rng) < 1.0
    lo, hi = micro_tier.bootstrap_rho(clean, noisy, rng, n=200)
    assert lo < hi <= 1.0 and hi > 0.8
    # Resampling both noisy sides pulls rho down; the bias-corrected interval still holds the point.
    rng = np.random.default_rng(2)
    one, other = (signal + rng.normal(scale=8.0, size=(10, 8)) for _ in range(2))
    point = micro_tier.spearman(one.mean(axis=1), other.mean(axis=1))[0]
    lo, hi = micro_tier.bootstrap_rho(one, other, rng, n=400)
    assert lo < point < hi and hi - lo > 0.1
    assert micro_tier.split_half_reliability(clean[:, :3], rng) is None


def test_micro_unit_table_means_seeds_per_instance_and_marks_gaps() -> None:
    import micro_tier

    episodes = [
        {"schedule": "wait", "instance": 7, "seed": 0, "score": 0.5},
        {"schedule": "wait", "instance": 7, "seed": 1, "score": 0.7},
        {"schedule": "wait", "instance": 8, "seed": 0, "score": 0.2},
        {"schedule": "grow", "instance": 8, "seed": 0, "score": 0.9},
    ]
    table = micro_tier._unit_table(episodes, ["wait", "grow"])
    assert table[0].tolist() == pytest.approx([60.0, 20.0])
    assert np.isnan(table[1, 0]) and table[1, 1] == pytest.approx(90.0)
    assert micro_tier._means(episodes) == pytest.approx({"wait": 40.0, "grow": 90.0})
    one_task = [{"schedule": "wait", "seed": s, "score": 0.1 * s} for s in range(3)]  # no instance: per seed
    assert micro_tier._unit_table(one_task, ["wait"]).shape == (1, 3)


def test_micro_split_half_reliability_uses_the_schedules_played_everywhere() -> None:
    import micro_tier

    rng = np.random.default_rng(0)
    table = np.arange(12, dtype=float)[:, None] + np.zeros((12, 5))
    table[3, 1:] = np.nan  # played on one seed only: left out, not a reason to give up
    assert micro_tier.split_half_reliability(table, rng) == pytest.approx(1.0)
    table[:10, 1:] = np.nan
    assert micro_tier.split_half_reliability(table, rng) is None  # 2 complete schedules: no ranking


def test_micro_headroom_instances_take_a_fresh_held_out_block(capsys: pytest.CaptureFixture) -> None:
    import micro_tier

    start = micro_tier.HELDOUT_SPLIT.start_level
    assert micro_tier.headroom_instances(2, 3) == ([0, 1], [start, start + 1, start + 2])
    assert micro_tier.headroom_instances(1, 2, heldout_start=50)[1] == [start + 50, start + 51]
    with pytest.raises(SystemExit):
        micro_tier.main(
            ["headroom", "--heldout", "10", "--heldout-start", str(micro_tier.HELDOUT_SPLIT.num_levels)]
        )
    assert "not all in the held-out split" in capsys.readouterr().err


def test_micro_bootstrap_rho_of_a_constant_side_is_none() -> None:
    import micro_tier

    rng = np.random.default_rng(0)
    constant = np.ones((5, 6))
    assert micro_tier.bootstrap_rho(np.arange(5.0)[:, None] + np.zeros((5, 6)), constant, rng, n=20) is None
