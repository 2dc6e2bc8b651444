"""Dataset health checks on synthetic arrays: each check trips on data built to trip it, and only then."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import numpy as np
import pytest

from esper_agents.generation.health.checks import run_health_checks
from esper_agents.generation.health.clusters import (
    cluster_states,
    mean_cluster_entropy,
    single_action_fraction,
    summarize_clusters,
)
from esper_agents.generation.health.inputs import OPS, HealthInput, load_health_input
from esper_agents.generation.health.report import write_report
from esper_env.wrappers import compact_action_table

ACTION_NAMES = [a.describe() for a in compact_action_table(3)]
#: Compact indices of each op, to draw realistic action indices for a given op.
OP_INDICES = {op: [i for i, n in enumerate(ACTION_NAMES) if n.split("(")[0] == op] for op in OPS}
MAX_EPOCHS = 25
DIM = 12
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ALL_CHECKS = {
    ("single_action_clusters", "error"),
    ("min_op_share", "error"),
    ("cluster_op_entropy", "error"),
    ("state_cluster_coverage", "error"),
    ("cluster_op_entropy", "warning"),
    ("policy_diversity", "warning"),
    ("return_spread", "warning"),
    ("min_op_share", "warning"),
    ("late_state_coverage", "warning"),
    ("state_cluster_coverage", "warning"),
    ("reward_variance", "warning"),
    ("episode_length_variety", "warning"),
}


@dataclass
class Spec:
    """Knobs of the synthetic dataset; the defaults give a healthy one."""

    n_policies: int = 6
    n_configs: int = 2
    episodes_per_cell: int = 5
    fixed_length: bool = False
    n_blobs: int = 20
    #: Probability of each op (None: uniform); "state" = op determined by the state's blob.
    op_probs: list[float] | None = None
    state_determines_op: bool = False
    reward_mean: float = 1.0
    reward_std: float = 2.0
    #: Returns are reward sums unless set: then each return is this plus N(0, return_noise).
    return_level: float | None = None
    return_noise: float = 0.0
    late_collapse: bool = False
    distinct_states: int | None = None
    seed: int = 0


def make_data(spec: Spec) -> HealthInput:
    rng = np.random.default_rng(spec.seed)
    centers = np.random.default_rng(123).normal(scale=10.0, size=(max(spec.n_blobs, 1), DIM))
    distinct = rng.normal(size=(spec.distinct_states, DIM)) * 10 if spec.distinct_states else None
    obs, acts, rews, ep_idx, ts = [], [], [], [], []
    returns, lengths, policies, configs = [], [], [], []
    e = 0
    for p in range(spec.n_policies):
        for c in range(spec.n_configs):
            for _ in range(spec.episodes_per_cell):
                length = MAX_EPOCHS if spec.fixed_length else int(rng.integers(12, MAX_EPOCHS + 1))
                t = np.arange(length)
                blob = rng.integers(0, spec.n_blobs, size=length)
                if spec.late_collapse:
                    blob = np.where(t * 3 >= 2 * MAX_EPOCHS, 0, blob)
                if distinct is not None:
                    x = distinct[rng.integers(0, len(distinct), size=length)]
                else:
                    x = centers[blob] + rng.normal(size=(length, DIM))
                if spec.state_determines_op:
                    ops = blob % len(OPS)
                else:
                    ops = rng.choice(len(OPS), size=length, p=spec.op_probs)
                a = np.array([rng.choice(OP_INDICES[OPS[o]]) for o in ops])
                r = rng.normal(spec.reward_mean, spec.reward_std, size=length)
                obs.append(x)
                acts.append(a)
                rews.append(r)
                ep_idx.append(np.full(length, e))
                ts.append(t)
                ret = (
                    r.sum()
                    if spec.return_level is None
                    else spec.return_level + rng.normal(0, spec.return_noise)
                )
                returns.append(ret)
                lengths.append(length)
                policies.append(f"policy{p}")
                configs.append(f"config{c}")
                e += 1
    return HealthInput(
        observations=np.concatenate(obs).astype(np.float32),
        actions=np.concatenate(acts),
        rewards=np.concatenate(rews),
        action_names=ACTION_NAMES,
        episode_index=np.concatenate(ep_idx),
        timestep=np.concatenate(ts),
        episode_returns=np.array(returns),
        episode_lengths=np.array(lengths),
        episode_policy=np.array(policies),
        episode_config=np.array(configs),
        max_epochs=MAX_EPOCHS,
        expected_cells=spec.n_policies * spec.n_configs,
    )


def with_op_share(data: HealthInput, op: str, share: float, seed: int = 0) -> HealthInput:
    """A copy where exactly round(share * N) transitions have ``op`` (the rest keep a non-``op`` op)."""
    rng = np.random.default_rng(seed)
    n = data.n_transitions
    actions = data.actions.copy()
    others = [o for o in OPS if o != op]
    # Drop op everywhere, then put it back on exactly the wanted number of transitions.
    is_op = np.array([ACTION_NAMES[a].split("(")[0] == op for a in actions])
    actions[is_op] = [rng.choice(OP_INDICES[rng.choice(others)]) for _ in range(int(is_op.sum()))]
    chosen = rng.choice(n, size=round(share * n), replace=False)
    actions[chosen] = rng.choice(OP_INDICES[op], size=len(chosen))
    return replace(data, actions=actions)


@pytest.fixture(scope="module")
def healthy() -> HealthInput:
    return make_data(Spec())


@pytest.fixture(scope="module")
def healthy_report(healthy: HealthInput):
    return run_health_checks(healthy)


def test_healthy_dataset_passes_every_check(healthy_report) -> None:
    failed = [(c.name, c.tier, c.figure, c.detail) for c in healthy_report.checks if not c.passed]
    assert failed == []
    assert healthy_report.passed and healthy_report.errors == [] and healthy_report.warnings == []
    assert {(c.name, c.tier) for c in healthy_report.checks} == ALL_CHECKS
    assert healthy_report.get("single_action_clusters", "error").figure <= 0.05
    assert healthy_report.get("cluster_op_entropy", "error").figure > 0.7


def test_same_action_everywhere_fails_blocking_checks() -> None:
    data = make_data(Spec(n_policies=1, episodes_per_cell=40, op_probs=[1.0, 0, 0, 0, 0, 0]))
    report = run_health_checks(data)
    single = report.get("single_action_clusters", "error")
    assert single.figure == 1.0 and single.threshold == 0.5 and not single.passed
    assert set(single.cells) == {("policy0", "config0"), ("policy0", "config1")}
    entropy = report.get("cluster_op_entropy", "error")
    assert entropy.figure == 0.0 and not entropy.passed
    share = report.get("min_op_share", "error")
    assert share.figure == 0.0 and set(share.cells) == set(OPS) - {"WAIT"}
    assert not report.passed
    assert {c.name for c in report.errors} == {"single_action_clusters", "cluster_op_entropy", "min_op_share"}


def test_state_determined_ops_fail_cluster_checks_but_not_op_share() -> None:
    """A deterministic policy that uses every op, one per state region: the 87% problem."""
    data = make_data(Spec(n_policies=1, episodes_per_cell=40, state_determines_op=True))
    report = run_health_checks(data)
    assert report.get("single_action_clusters", "error").figure > 0.9
    assert report.get("cluster_op_entropy", "error").figure < 0.05
    share = report.get("min_op_share", "error")
    assert share.figure > 0.1 and share.passed
    assert not report.passed


@pytest.mark.parametrize(("share", "trips"), [(0.019, True), (0.021, False)])
def test_op_share_error_trips_exactly_below_two_percent(
    healthy: HealthInput, share: float, trips: bool
) -> None:
    report = run_health_checks(with_op_share(healthy, "FOSSILIZE", share))
    check = report.get("min_op_share", "error")
    assert check.figure == pytest.approx(round(share * healthy.n_transitions) / healthy.n_transitions)
    assert check.threshold == 0.02
    assert check.passed is (not trips)
    assert check.cells == (["FOSSILIZE"] if trips else [])
    assert report.get("min_op_share", "warning").cells == ["FOSSILIZE"]  # both below 5%


@pytest.mark.parametrize(("share", "trips"), [(0.045, True), (0.055, False)])
def test_op_share_warning_trips_below_five_percent(healthy: HealthInput, share: float, trips: bool) -> None:
    report = run_health_checks(with_op_share(healthy, "PRUNE", share))
    warning = report.get("min_op_share", "warning")
    assert warning.threshold == 0.05
    assert (warning.figure < 0.05) is trips and warning.passed is (not trips)
    assert report.get("min_op_share", "error").passed


# Each warning check and a dataset built to trip it (and no blocking error). Coverage: 40 distinct
# states in 100 clusters give 40%, between the error and warning bars.
WARNING_CASES = {
    # 80% WAIT: 0.46 in large clusters, lower in small ones (the plug-in entropy is biased low).
    "cluster_op_entropy": Spec(op_probs=[0.8, 0.04, 0.04, 0.04, 0.04, 0.04], episodes_per_cell=20),
    "policy_diversity": Spec(n_policies=4, episodes_per_cell=8),
    "return_spread": Spec(return_level=20.0, return_noise=1.0),
    "min_op_share": Spec(op_probs=[0.23, 0.23, 0.23, 0.23, 0.04, 0.04]),
    "late_state_coverage": Spec(late_collapse=True),
    "state_cluster_coverage": Spec(distinct_states=40),
    "reward_variance": Spec(reward_std=0.5),
    "episode_length_variety": Spec(fixed_length=True),
}


@pytest.mark.parametrize("name", sorted(WARNING_CASES))
def test_each_warning_trips_on_its_dataset(name: str, healthy_report) -> None:
    report = run_health_checks(make_data(WARNING_CASES[name]))
    warning = report.get(name, "warning")
    assert warning.figure < warning.threshold, warning
    assert not warning.passed
    assert warning in report.warnings
    baseline = healthy_report.get(name, "warning")
    assert baseline.figure >= baseline.threshold and baseline.passed
    # A warning alone does not block, and its error tier (where there is one) still passes.
    assert report.passed, [c.name for c in report.errors]


def test_warning_thresholds_are_seed_000s(healthy_report) -> None:
    thresholds = {c.name: c.threshold for c in healthy_report.checks if c.tier == "warning"}
    assert thresholds == {
        "cluster_op_entropy": 0.5,
        "policy_diversity": 5,
        "return_spread": 0.10,
        "min_op_share": 0.05,
        "late_state_coverage": 0.30,
        "state_cluster_coverage": 0.5,
        "reward_variance": 1.0,
        "episode_length_variety": 2,
    }
    errors = {c.name: c.threshold for c in healthy_report.checks if c.tier == "error"}
    assert errors == {
        "single_action_clusters": 0.5,
        "min_op_share": 0.02,
        "cluster_op_entropy": 0.3,
        "state_cluster_coverage": 0.3,
    }


def test_entropy_between_bars_warns_without_blocking() -> None:
    report = run_health_checks(make_data(WARNING_CASES["cluster_op_entropy"]))
    figure = report.get("cluster_op_entropy", "warning").figure
    assert 0.3 <= figure < 0.5
    assert report.get("cluster_op_entropy", "error").passed


def test_state_coverage_error_below_thirty_percent() -> None:
    report = run_health_checks(make_data(Spec(distinct_states=10)))
    error = report.get("state_cluster_coverage", "error")
    assert error.figure == pytest.approx(0.10) and not error.passed
    assert report.get("state_cluster_coverage", "warning").figure == error.figure
    assert "state_cluster_coverage" in {c.name for c in report.errors}


def test_coverage_counts_clusters_with_fewer_than_five_states_as_empty(healthy: HealthInput) -> None:
    report = run_health_checks(healthy, n_clusters=200)
    cl = report.clusters
    assert report.get("state_cluster_coverage", "error").figure == pytest.approx((cl.sizes >= 5).sum() / 200)
    assert (cl.sizes < 5).any()


def test_late_coverage_figure_is_cluster_ratio() -> None:
    data = make_data(Spec(late_collapse=True))
    report = run_health_checks(data)
    labels = report.clusters.labels
    early = np.unique(labels[data.timestep * 3 < MAX_EPOCHS]).size
    late = np.unique(labels[data.timestep * 3 >= 2 * MAX_EPOCHS]).size
    assert report.get("late_state_coverage", "warning").figure == pytest.approx(late / early)


def test_cells_name_the_culprits_for_allocation() -> None:
    """Mix a deterministic cell into healthy data: only it is implicated by the cluster checks."""
    healthy = make_data(Spec(n_policies=5, n_configs=1, episodes_per_cell=8))
    stuck = make_data(Spec(n_policies=1, n_configs=1, episodes_per_cell=40, state_determines_op=True, seed=1))
    # Its own policy name and states, far from the healthy blobs.
    stuck = replace(
        stuck, episode_policy=np.full(stuck.n_episodes, "heuristic"), observations=stuck.observations + 200
    )
    report = run_health_checks(HealthInput.concatenate([healthy, stuck]))
    assert report.get("single_action_clusters", "error").cells == [("heuristic", "config0")]
    assert report.get("cluster_op_entropy", "warning").cells == [("heuristic", "config0")]


def test_deterministic(healthy: HealthInput) -> None:
    a, b = run_health_checks(healthy), run_health_checks(healthy)
    assert [(c.name, c.tier, c.figure, c.passed, c.cells) for c in a.checks] == [
        (c.name, c.tier, c.figure, c.passed, c.cells) for c in b.checks
    ]
    assert np.array_equal(a.clusters.labels, b.clusters.labels)


def test_subsampled_fit_is_deterministic(healthy: HealthInput) -> None:
    from esper_agents.generation.health.config import HealthConfig

    cfg = HealthConfig(fit_sample=300)
    l1, k1 = cluster_states(healthy.observations, config=cfg)
    l2, k2 = cluster_states(healthy.observations, config=cfg)
    assert k1 == k2 == 100 and np.array_equal(l1, l2)


def test_markdown_and_dict(healthy_report) -> None:
    md = healthy_report.to_markdown()
    assert md.startswith("| check | tier | figure | threshold | verdict |")
    for name, _ in ALL_CHECKS:
        assert f"| {name} |" in md
    assert md.count("\n") == 2 + len(ALL_CHECKS)
    d = json.loads(json.dumps(healthy_report.to_dict()))
    assert d["passed"] is True and len(d["checks"]) == len(ALL_CHECKS)


def test_write_report(tmp_path, healthy: HealthInput) -> None:
    data = make_data(Spec(state_determines_op=True, n_policies=2))
    report = run_health_checks(data)
    paths = write_report(report, data, tmp_path / "health")
    names = {p.name for p in paths}
    assert names == {"health.md", "health.json", "op_mix.png", "state_clusters.png", "returns.png"}
    for p in paths:
        assert p.exists() and p.parent == tmp_path / "health"
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == PNG_MAGIC
    md = (tmp_path / "health" / "health.md").read_text()
    assert "FAILED" in md and "single_action_clusters" in md and "Implicated: policy" in md
    assert json.loads((tmp_path / "health" / "health.json").read_text())["passed"] is False


def test_bad_input_is_named() -> None:
    data = make_data(Spec(n_policies=1, episodes_per_cell=2))
    with pytest.raises(ValueError, match="actions must have shape"):
        replace(data, actions=data.actions[:-1])
    with pytest.raises(ValueError, match="action index 99"):
        replace(data, actions=np.full(data.n_transitions, 99))
    with pytest.raises(ValueError, match="valid ops"):
        replace(data, action_names=["JUMP"] + ACTION_NAMES[1:])


def test_format_table_lists_every_check(healthy_report) -> None:
    from esper_agents.generation.health.report import format_table

    text = format_table(healthy_report)
    for name, tier in ALL_CHECKS:
        assert any(line.startswith(name) and tier in line for line in text.splitlines())
    assert text.splitlines()[-1].startswith("PASSED: 0 blocking error(s), 0 warning(s)")


@pytest.mark.parametrize(("spec", "code"), [(Spec(), 0), (Spec(n_policies=1, state_determines_op=True), 1)])
def test_cli_health_exit_code_and_report(tmp_path, monkeypatch, capsys, spec: Spec, code: int) -> None:
    from esper_agents import cli
    from esper_agents.generation.health import report

    data = make_data(spec)
    monkeypatch.setattr(report, "load_health_input", lambda path, partial=False: data)
    assert cli.main(["health", "--pack", str(tmp_path)]) == code
    out = capsys.readouterr().out
    for name, _ in ALL_CHECKS:
        assert name in out
    assert (tmp_path / "health" / "health.md").exists() and (tmp_path / "health" / "op_mix.png").exists()


def _one_clustering(packs: dict[str, HealthInput]) -> dict:
    """Each pack's single-action figures on ONE k-means fit on the union of the packs (what the
    retired benchmarks/cluster_diversity.py measured: separate fits would not be comparable)."""
    parts = list(packs.values())
    union = HealthInput.concatenate(parts)
    labels, k = cluster_states(union.observations)
    bounds = np.cumsum([0] + [p.n_transitions for p in parts])
    result: dict = {"n_clusters": k, "n_transitions": union.n_transitions, "packs": {}}
    for name, lo, hi in zip(packs, bounds[:-1], bounds[1:]):
        cl = summarize_clusters(labels[lo:hi], union.ops[lo:hi], k, len(union.op_names))
        result["packs"][name] = {
            "occupied_clusters": int(cl.occupied.sum()),
            "single_action_clusters": int(cl.single_action.sum()),
            "single_action_fraction": single_action_fraction(cl),
            "op_entropy": mean_cluster_entropy(cl),
        }
    return result


def test_one_clustering_separates_a_heuristic_pack_from_a_matrix_pack() -> None:
    heuristic = make_data(Spec(n_policies=1, episodes_per_cell=20, state_determines_op=True, seed=1))
    full = HealthInput.concatenate([make_data(Spec()), heuristic])
    result = _one_clustering({"heuristic-only": heuristic, "full-matrix": full})
    h, f = result["packs"]["heuristic-only"], result["packs"]["full-matrix"]
    assert (
        result["n_clusters"] == 100
        and result["n_transitions"] == heuristic.n_transitions + full.n_transitions
    )
    assert h["single_action_fraction"] > 0.9 and f["single_action_fraction"] < 0.1
    assert h["op_entropy"] < 0.05 and f["op_entropy"] > 0.5
    assert h["single_action_clusters"] <= h["occupied_clusters"] <= 100
    assert _one_clustering({"heuristic-only": heuristic, "full-matrix": full}) == result


def write_synthetic_pack(path, data: HealthInput) -> None:
    """Write ``data`` as a pack through the pack API (arrays the checks do not read are zeros)."""
    from esper_agents.generation.collector import EpisodeRecord
    from esper_agents.generation.pack_writer import PackWriter
    from esper_agents.generation.schema import STEP_ARRAYS, EpisodeMetadata
    from esper_env import ENV_IDS, EnvSettings

    n, d = len(data.action_names), data.observations.shape[1]
    env_id = next(i for i in ENV_IDS if ENV_IDS[i]["dataset"] == "synthcifar")
    header = {
        "generation_spec": {"name": "synthetic", "matrix": {"policies": ["a", "b", "c"], "configs": ["x", "y"]},
                            "env": EnvSettings(env_id, fidelity="test", max_epochs=data.max_epochs).to_dict()},
        "environment": {
            "env_id": env_id, "dataset": "synthcifar", "fidelity": "test",
            "actions": [{"name": a} for a in data.action_names], "n_actions": n, "observation_dim": d,
            "num_slots": 3, "max_epochs": data.max_epochs, "reward": {"mode": "shaped", "intervention_costs": {}},
        },
    }  # fmt: skip
    with PackWriter.open(path, header) as writer:
        for e in range(data.n_episodes):
            rows = np.flatnonzero(data.episode_index == e)
            t = len(rows)
            sizes = {"T+1": t + 1, "T": t, "D": d, "n": n, "H": 8, "S": 3}
            arrays = {}
            for name, (dtype, shape) in STEP_ARRAYS.items():
                dims = shape.split("]")[0].strip("[").split(",")
                arrays[name] = np.zeros([sizes[x.strip().split()[0]] for x in dims], dtype=dtype)
            arrays["masks"][:] = True
            arrays["observations"][:t] = data.observations[rows]
            arrays["actions"][:] = data.actions[rows]
            arrays["rewards"][:] = data.rewards[rows]
            arrays["timestep"][:] = data.timestep[rows]
            meta = EpisodeMetadata(
                episode_id=f"ep{e:05d}", timestamp="2025-01-01T00:00:00+00:00", behavior_policy={}, environment={},
                random_seed=e, final_accuracy=0.5, best_accuracy=0.5, test_accuracy=0.5,
                total_return=float(data.episode_returns[e]), return_to_go_at_start=float(data.episode_returns[e]),
                episode_length=t, termination_reason="max_epochs", done=False, truncated=True, num_interventions=0,
                action_counts={}, seeds_created=0, seeds_fossilized=0, seeds_pruned=0, trajectory_quality="partial",
                trajectory_hash="0", policy_id=str(data.episode_policy[e]), config_id=str(data.episode_config[e]),
            )  # fmt: skip
            writer.write_episode(EpisodeRecord(meta, arrays))


@pytest.fixture(scope="module")
def small_pack(tmp_path_factory) -> tuple[HealthInput, object]:
    data = make_data(Spec(n_policies=3, episodes_per_cell=2))
    path = tmp_path_factory.mktemp("pack") / "pack"
    write_synthetic_pack(path, data)
    return data, path


def test_load_health_input_reads_the_transitions(small_pack) -> None:
    data, path = small_pack
    loaded = load_health_input(path)
    for name in ("observations", "actions", "rewards", "episode_index", "timestep", "episode_returns",
                 "episode_lengths", "episode_policy", "episode_config"):  # fmt: skip
        assert np.array_equal(getattr(loaded, name), getattr(data, name)), name
    assert loaded.action_names == data.action_names and loaded.max_epochs == MAX_EPOCHS
    assert loaded.expected_cells == 6
    a, b = run_health_checks(loaded), run_health_checks(data)
    assert [c.figure for c in a.checks] == [c.figure for c in b.checks]


def test_cli_health_on_a_pack(small_pack, capsys) -> None:
    from esper_agents import cli

    _data, path = small_pack
    code = cli.main(["health", "--pack", str(path)])
    out = capsys.readouterr().out
    # 3 policies: the diversity warning fails, nothing blocks.
    assert code == 0
    assert "policy_diversity" in out and "6 (policy, config) cells present of 6 expected" in out
    assert sorted(p.name for p in (path / "health").iterdir()) == [
        "health.json", "health.md", "op_mix.png", "returns.png", "state_clusters.png",
    ]  # fmt: skip


def test_cli_health_bad_pack_is_a_clear_error(tmp_path, capsys) -> None:
    from esper_agents import cli

    assert cli.main(["health", "--pack", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("esper: error:") and "missing" in err and len(err.strip().splitlines()) == 1
