"""Behavior policies: observation decoding, the heuristic's rules, epsilon-greedy probabilities.

Most tests use synthetic observations built from the schema; a few run the real env at the tests'
NANO fidelity (about 75 env steps in the whole file): legality and the lifecycle do not depend on how
well the host trains.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import esper_env  # noqa: F401  (registers the env ids)
from esper_agents.policies import (
    CONTRASTIVE_POLICY_IDS,
    DEFAULT_BLUEPRINT_ORDER,
    MATRIX_EPSILONS,
    ORIGINAL_POLICY_IDS,
    POLICY_IDS,
    THRESHOLD_POLICY_IDS,
    ActionDecision,
    BehaviorPolicyConfig,
    EpsilonGreedy,
    PolicySpec,
    ThresholdPolicy,
    behavior_distribution,
    get_policy,
    masked_softmax,
    sample_decision,
)
from esper_env import ObservationView
from esper_env.blueprints import BLUEPRINTS
from esper_env.lifecycle import Op, Stage
from esper_env.wrappers import CompactActions
from tests.conftest import NANO

T = 30
SPEC = PolicySpec.from_args(max_epochs=T, num_slots=3)


def make_env(max_epochs: int = 6) -> CompactActions:
    env = gym.make("Esper-SynthCIFAR-v2", fidelity=NANO, max_epochs=max_epochs, device="cpu")
    return CompactActions(env)


# ------------------------------------------------------------------ synthetic observations


def synth_obs(
    *,
    epoch: int = 10,
    plateau: int = 0,
    val_accuracy: float = 0.5,
    train_accuracy: float = -1.0,
    fossil_params: float = 0.0,
    slots: tuple[dict[str, Any], ...] = (),
) -> np.ndarray:
    """An observation laid out by the schema; ``slots`` gives stage, epochs, contribution... per slot."""
    sc = SPEC.schema
    obs = np.zeros(SPEC.obs_size, dtype=np.float32)
    obs[sc["epoch"]] = epoch / T
    obs[sc["budget_remaining"]] = (T - epoch) / T
    obs[sc["val_accuracy"]] = val_accuracy
    obs[sc["best_val_accuracy"]] = val_accuracy
    obs[sc["train_accuracy"]] = train_accuracy
    obs[sc["fossil_params"]] = fossil_params
    obs[sc["plateau_epochs"]] = min(plateau / T, 1.0)
    obs[sc["accuracy_history_5"]] = -1.0
    obs[sc["last_action_success"]] = 1.0
    obs[sc["last_op"].start] = 1.0
    described = list(slots) + [{}] * (SPEC.num_slots - len(slots))
    for k, d in enumerate(described):
        p = f"slot{k}/"
        stage = d.get("stage", Stage.DORMANT)
        obs[sc[p + "stage"].start + int(stage)] = 1.0
        obs[sc[p + "alpha"]] = d.get("alpha", 0.0)
        obs[sc[p + "epochs_in_stage"]] = d.get("epochs", 0) / T
        if stage not in (Stage.DORMANT, Stage.EMBARGOED):
            obs[sc[p + "blueprint"].start + BLUEPRINTS.index(d.get("blueprint", "conv_light"))] = 1.0
            obs[sc[p + "style"].start] = 1.0
        contribution = d.get("contribution")
        obs[sc[p + "contribution"]] = -1.0 if contribution is None else contribution
        obs[sc[p + "contribution_measured"]] = float(contribution is not None)
    return obs


def synth_mask(slots: tuple[dict[str, Any], ...] = ()) -> np.ndarray:
    """The mask the engine would give: ``gate`` opens ADVANCE out of TRAINING/BLENDING and
    FOSSILIZE out of HOLDING (contribution measured in HOLDING)."""
    described = list(slots) + [{}] * (SPEC.num_slots - len(slots))
    mask = np.zeros(SPEC.num_actions, dtype=bool)
    for i, a in enumerate(SPEC.actions):
        if a.op == Op.WAIT:
            mask[i] = True
            continue
        d = described[a.slot]
        stage, gate = d.get("stage", Stage.DORMANT), d.get("gate", False)
        live = stage in (Stage.GERMINATED, Stage.TRAINING, Stage.BLENDING, Stage.HOLDING)
        mask[i] = {
            Op.GERMINATE: stage == Stage.DORMANT,
            Op.ADVANCE: stage == Stage.GERMINATED or (stage in (Stage.TRAINING, Stage.BLENDING) and gate),
            Op.SET_ALPHA_TARGET: stage in (Stage.BLENDING, Stage.HOLDING),
            Op.PRUNE: live,
            Op.FOSSILIZE: stage == Stage.HOLDING and gate,
        }[Op(a.op)]
    return mask


def greedy_choice(policy: str | ThresholdPolicy, slots: tuple[dict[str, Any], ...] = (), **kw: Any) -> str:
    """The greedy action's description for a synthetic observation."""
    policy = get_policy(policy) if isinstance(policy, str) else policy
    probs = policy.bind(SPEC).greedy_probs(synth_obs(slots=slots, **kw), synth_mask(slots))
    return SPEC.describe(int(np.argmax(probs)))


def threshold(**changes: Any) -> ThresholdPolicy:
    return ThresholdPolicy(replace(BehaviorPolicyConfig("t"), **changes))


# ------------------------------------------------------------------ observation view


def test_observation_view_decodes_a_real_observation_and_denormalises_epochs() -> None:
    env = make_env(max_epochs=7)
    spec = PolicySpec.from_env(env)
    assert spec == PolicySpec.from_args(max_epochs=7)
    obs, info = env.reset(seed=0)
    view = ObservationView.decode(obs, spec)
    assert view.epoch == 0 and view.val_accuracy is None and view.accuracy_delta is None
    assert all(s.stage == Stage.DORMANT and s.contribution is None for s in view.slots)
    assert view.available_slots == 3 and view.last_action_success
    action = spec.index_of(Op.GERMINATE, 1, blueprint="conv_small")
    obs, _, _, _, info = env.step(action)
    obs, _, _, _, info = env.step(spec.index_of(Op.ADVANCE, 1))
    view = ObservationView.decode(obs, spec)
    assert view.epoch == 2 and view.max_epochs == 7
    assert view.val_accuracy == pytest.approx(info["val_accuracy"], abs=1e-6)
    assert view.slots[1].stage == Stage.TRAINING and view.slots[1].blueprint == "conv_small"
    assert view.slots[1].epochs_in_stage == 1 and view.slots[1].contribution is None
    assert view.available_slots == 2 and view.has_active_seed and view.last_op == Op.ADVANCE
    assert view.plateau_epochs == env.unwrapped.engine.history.plateau_epochs


def test_synthetic_observation_round_trips() -> None:
    slots = ({"stage": Stage.HOLDING, "epochs": 3, "alpha": 1.0, "contribution": -0.25, "blueprint": "mlp"},)
    view = ObservationView.decode(synth_obs(epoch=13, plateau=4, slots=slots), SPEC)
    assert (view.epoch, view.plateau_epochs) == (13, 4)
    s = view.slots[0]
    assert (s.stage, s.epochs_in_stage, s.blueprint, s.contribution) == (Stage.HOLDING, 3, "mlp", -0.25)
    assert view.slots[1].blueprint is None and view.slots[1].stage == Stage.DORMANT


def test_spec_and_view_errors() -> None:
    with pytest.raises(ValueError, match="shape"):
        ObservationView.decode(np.zeros(5), SPEC)
    with pytest.raises(ValueError, match="max_epochs"):
        PolicySpec.from_args(max_epochs=0)
    with pytest.raises(RuntimeError, match="bind"):
        get_policy("baseline").greedy_probs(synth_obs(), synth_mask())
    with pytest.raises(ValueError, match=f"boolean vector of length {SPEC.num_actions}"):
        get_policy("baseline", env=SPEC).greedy_probs(synth_obs(), np.ones(4, dtype=bool))


# ------------------------------------------------------------------ heuristic rules


def test_germinates_on_a_plateau_after_min_epochs_only() -> None:
    assert greedy_choice("baseline", epoch=5, plateau=3).startswith("GERMINATE(slot=0, blueprint=conv_light")
    assert greedy_choice("baseline", epoch=4, plateau=3) == "WAIT"  # too early
    assert greedy_choice("baseline", epoch=8, plateau=2) == "WAIT"  # still improving
    assert greedy_choice("early-intervener", epoch=3, plateau=2).startswith("GERMINATE")
    assert greedy_choice("late-intervener", epoch=7, plateau=9) == "WAIT"
    # Not when the episode is too short for a whole lifecycle, nor with a seed already alive.
    assert greedy_choice("baseline", epoch=T - 5, plateau=6) == "WAIT"
    training = ({"stage": Stage.TRAINING, "epochs": 1},)
    assert greedy_choice("baseline", epoch=6, plateau=4, slots=training) == "WAIT"
    # The first DORMANT slot: slot 0 fossilized, slot 1 embargoed -> slot 2.
    slots = ({"stage": Stage.FOSSILIZED}, {"stage": Stage.EMBARGOED})
    assert greedy_choice("baseline", epoch=9, plateau=3, slots=slots).startswith("GERMINATE(slot=2")


def test_advances_through_the_lifecycle_when_the_gates_allow() -> None:
    assert greedy_choice("baseline", slots=({"stage": Stage.GERMINATED, "epochs": 1},)) == "ADVANCE(slot=0)"
    assert greedy_choice("baseline", slots=({"stage": Stage.TRAINING, "epochs": 1},)) == "WAIT"
    gate_open = ({"stage": Stage.TRAINING, "epochs": 2, "gate": True},)
    assert greedy_choice("baseline", slots=gate_open) == "ADVANCE(slot=0)"
    blending = {"stage": Stage.BLENDING, "epochs": 2, "alpha": 0.6, "contribution": 0.01}
    assert greedy_choice("baseline", slots=(blending,)) == "WAIT"
    assert greedy_choice("baseline", slots=({**blending, "gate": True},)) == "ADVANCE(slot=0)"


@pytest.mark.parametrize("contribution, expected", [(0.03, "FOSSILIZE"), (0.001, "FOSSILIZE"), (0.0, "PRUNE"),
                                                    (-0.05, "PRUNE")])  # fmt: skip
def test_holding_fossilizes_helpful_seeds_and_prunes_the_others(contribution: float, expected: str) -> None:
    holding = {"stage": Stage.HOLDING, "epochs": 1, "alpha": 1.0, "contribution": contribution}
    assert greedy_choice("baseline", slots=({**holding, "gate": True},)).startswith(expected)
    # Before a contribution is measured in HOLDING (FOSSILIZE still masked) it waits.
    assert greedy_choice("baseline", slots=({**holding, "epochs": 0},)) == "WAIT"


def test_prunes_blending_seeds_that_clearly_hurt_or_stagnate() -> None:
    hurting = {"stage": Stage.BLENDING, "epochs": 1, "alpha": 0.4, "contribution": -0.05}
    assert greedy_choice("baseline", slots=(hurting,)).startswith("PRUNE(slot=0")
    within_margin = ({**hurting, "contribution": -0.01},)
    assert greedy_choice("baseline", slots=within_margin) == "WAIT"
    # Stale: no improvement since germination (plateau >= age >= cull_after) and no positive contribution.
    stale = {"stage": Stage.BLENDING, "epochs": 2, "alpha": 0.6, "contribution": 0.0}  # age >= 1 + 2 + 2
    assert greedy_choice("baseline", plateau=8, slots=(stale,)).startswith("PRUNE")
    assert greedy_choice("baseline", plateau=4, slots=(stale,)) == "WAIT"  # host improved since
    assert greedy_choice("patient-culler", plateau=8, slots=(stale,)) == "WAIT"
    assert greedy_choice("quick-culler", plateau=8, slots=({**stale, "epochs": 0},)).startswith("PRUNE")
    helping = ({**stale, "contribution": 0.02},)
    assert greedy_choice("baseline", plateau=8, slots=helping) == "WAIT"
    # A TRAINING seed cannot move the host's accuracy: never culled for a plateau.
    long_training = ({"stage": Stage.TRAINING, "epochs": 9},)
    assert greedy_choice("baseline", plateau=15, slots=long_training) == "WAIT"


def test_capacity_variant_grows_early_when_the_host_underfits_and_stops_at_its_budget() -> None:
    # Epoch 1, still climbing (no plateau), training accuracy below validation: it underfits.
    assert greedy_choice("capacity", epoch=1, val_accuracy=0.3, train_accuracy=0.25).startswith(
        "GERMINATE(slot=0, blueprint=widen_4x"
    )
    # The original design's plateau rule waits there (too early, and no plateau).
    assert greedy_choice("baseline", epoch=1, val_accuracy=0.3, train_accuracy=0.25) == "WAIT"
    # An overfitting host (training accuracy well above validation) is not grown.
    assert greedy_choice("capacity", epoch=8, val_accuracy=0.6, train_accuracy=0.75) == "WAIT"
    # Once fossils make the network 1.5x the base host, the budget stops growth.
    over = ({"stage": Stage.FOSSILIZED, "blueprint": "widen_4x"},)
    assert (
        greedy_choice(
            "capacity", epoch=9, val_accuracy=0.6, train_accuracy=0.6, fossil_params=0.6, slots=over
        )
        == "WAIT"
    )
    assert greedy_choice(
        "capacity", epoch=9, val_accuracy=0.6, train_accuracy=0.6, fossil_params=0.3, slots=over
    ).startswith("GERMINATE(slot=1")
    with pytest.raises(ValueError, match="germinate_trigger 'loss'"):
        BehaviorPolicyConfig("x", germinate_trigger="loss")
    with pytest.raises(ValueError, match="max_size_ratio"):
        BehaviorPolicyConfig("x", max_size_ratio=0.5)


def test_blueprint_explorer_rotates_over_all_blueprints() -> None:
    def explorer(epoch: int, slots: tuple[dict[str, Any], ...] = ()) -> str:
        return greedy_choice("blueprint-explorer", epoch=epoch, plateau=3, slots=slots)

    epochs = range(5, 5 + len(DEFAULT_BLUEPRINT_ORDER))
    chosen = {explorer(e).split("blueprint=")[1].split(",")[0] for e in epochs}
    assert chosen == set(DEFAULT_BLUEPRINT_ORDER)
    # Blueprints already in use go to the back of the rotation.
    e = next(e for e in epochs if "=conv_light," in explorer(e))
    assert "conv_light" not in explorer(e, ({"stage": Stage.FOSSILIZED, "blueprint": "conv_light"},))
    explicit = threshold(blueprint_preference=["lora", "mlp"])
    assert "blueprint=lora" in greedy_choice(explicit, epoch=6, plateau=3)


def test_greedy_distribution_shape_and_temperature() -> None:
    slots = ({"stage": Stage.HOLDING, "epochs": 1, "alpha": 1.0, "contribution": 0.02, "gate": True},)
    obs, mask = synth_obs(slots=slots), synth_mask(slots)
    probs = {
        t: get_policy("baseline", temperature=t, env=SPEC).greedy_probs(obs, mask) for t in (0.5, 1.0, 3.0)
    }
    for p in probs.values():
        assert p.dtype == np.float64 and p.sum() == pytest.approx(1.0, abs=1e-12)
        assert np.all(p[~mask] == 0.0) and np.all(p[mask] > 0.0)
        assert SPEC.describe(int(np.argmax(p))) == "FOSSILIZE(slot=0)"
    top = [probs[t].max() for t in (0.5, 1.0, 3.0)]
    assert top[0] > top[1] > top[2] and top[1] > 0.9
    # The alternative the rules rank next (PRUNE is REVERSE, WAIT neutral) gets more than PRUNE.
    assert probs[1.0][0] > probs[1.0][SPEC.index_of(Op.PRUNE, 0)]


# ------------------------------------------------------------------ contrastive policies


def test_random_policy_is_uniform_over_legal_actions() -> None:
    slots = ({"stage": Stage.BLENDING, "epochs": 1, "alpha": 0.4},)
    mask = synth_mask(slots)
    probs = get_policy("random", env=SPEC).greedy_probs(synth_obs(slots=slots), mask)
    assert np.allclose(probs[mask], 1 / mask.sum()) and np.all(probs[~mask] == 0)
    assert get_policy("random").config.epsilon == 1.0


def test_anti_heuristic_inverts_the_baseline() -> None:
    holding = {"stage": Stage.HOLDING, "epochs": 1, "alpha": 1.0, "gate": True}
    assert greedy_choice("anti-heuristic", slots=({**holding, "contribution": 0.05},)).startswith("PRUNE")
    hurting = ({**holding, "contribution": -0.05},)
    assert greedy_choice("anti-heuristic", slots=hurting).startswith("FOSSILIZE")
    blending = {"stage": Stage.BLENDING, "epochs": 1, "alpha": 0.4, "contribution": 0.05}
    assert greedy_choice("anti-heuristic", slots=(blending,)).startswith("PRUNE")
    assert greedy_choice("anti-heuristic", epoch=6, plateau=3) == "WAIT"  # the baseline would germinate
    improving = greedy_choice("anti-heuristic", epoch=2, plateau=0)
    assert improving.startswith("GERMINATE") and f"blueprint={DEFAULT_BLUEPRINT_ORDER[-1]}," in improving
    germinated = ({"stage": Stage.GERMINATED, "epochs": 1},)
    assert greedy_choice("anti-heuristic", slots=germinated) == "ADVANCE(slot=0)"


def test_periodic_germinates_on_schedule_and_fossilizes_blindly() -> None:
    n = get_policy("periodic").config.germinate_every
    assert greedy_choice("periodic", epoch=n, plateau=0).startswith("GERMINATE(slot=0")
    assert greedy_choice("periodic", epoch=n + 1, plateau=9) == "WAIT"
    busy = ({"stage": Stage.TRAINING, "epochs": 2, "gate": True},)
    assert greedy_choice("periodic", epoch=2 * n, slots=busy).startswith("GERMINATE(slot=1")
    assert greedy_choice("periodic", epoch=2 * n + 1, slots=busy) == "ADVANCE(slot=0)"
    hurting = ({"stage": Stage.HOLDING, "epochs": 1, "alpha": 1.0, "contribution": -0.2, "gate": True},)
    assert greedy_choice("periodic", epoch=2 * n + 1, slots=hurting) == "FOSSILIZE(slot=0)"


# ------------------------------------------------------------------ registry and configs


def test_registry_has_the_eleven_policies_of_seed_000() -> None:
    assert len(ORIGINAL_POLICY_IDS) == 11 and len(THRESHOLD_POLICY_IDS) == 8
    assert POLICY_IDS == (*ORIGINAL_POLICY_IDS, "capacity", "rent-aware", "lr-aware", "curve-aware")
    assert set(CONTRASTIVE_POLICY_IDS) == {"random", "anti-heuristic", "periodic"}
    table = {p: get_policy(p).config for p in THRESHOLD_POLICY_IDS}
    got = {
        p: (
            c.min_epochs_before_germinate,
            c.plateau_epochs_to_germinate,
            c.cull_after_epochs_without_improvement,
        )
        for p, c in table.items()
    }
    assert got == {
        "baseline": (5, 3, 5), "early-intervener": (3, 2, 5), "late-intervener": (8, 5, 5),
        "quick-culler": (5, 3, 3), "patient-culler": (5, 3, 8), "blueprint-explorer": (5, 3, 5),
        "aggressive": (3, 2, 3), "conservative": (8, 5, 8),
    }  # fmt: skip
    assert table["blueprint-explorer"].blueprint_preference == "rotate"
    assert get_policy("quick-culler", epsilon=0.2).config.epsilon == 0.2
    json.dumps(table["baseline"].to_dict())
    assert BehaviorPolicyConfig.from_dict(table["baseline"].to_dict()) == table["baseline"]


def test_unknown_policy_and_bad_configs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown policy 'kasmina'.*baseline.*anti-heuristic.*periodic"):
        get_policy("kasmina")
    with pytest.raises(ValueError, match="epsilon"):
        get_policy("baseline", epsilon=1.5)
    with pytest.raises(ValueError, match="temperature"):
        get_policy("baseline", temperature=0.0)
    with pytest.raises(ValueError, match="'noop'.*valid blueprints"):
        BehaviorPolicyConfig("x", blueprint_preference=["noop"])
    with pytest.raises(ValueError, match="rotate"):
        BehaviorPolicyConfig("x", blueprint_preference="roundrobin")
    with pytest.raises(ValueError, match="epsilon"):
        EpsilonGreedy(get_policy("baseline"), epsilon=-0.1)


# ------------------------------------------------------------------ epsilon-greedy


@st.composite
def decision_inputs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, float, float, int]:
    n = draw(st.integers(1, 60))
    mask = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    mask[draw(st.integers(0, n - 1))] = True
    scores = np.array(draw(st.lists(st.floats(-50, 50), min_size=n, max_size=n)))
    eps = draw(st.one_of(st.sampled_from(MATRIX_EPSILONS + (1.0,)), st.floats(0.0, 1.0)))
    temperature = draw(st.floats(0.05, 10.0))
    return scores, mask, eps, temperature, draw(st.integers(0, 2**32 - 1))


@settings(max_examples=300, deadline=None)
@given(decision_inputs())
def test_logged_behavior_probabilities_are_exact(inputs: tuple) -> None:
    scores, mask, eps, temperature, seed = inputs
    greedy = masked_softmax(scores, mask, temperature)
    d = sample_decision(greedy, mask, eps, np.random.default_rng(seed))
    n_legal = mask.sum()
    assert np.all(d.greedy_probs[~mask] == 0.0) and np.all(d.behavior_probs[~mask] == 0.0)
    assert d.greedy_probs.sum() == pytest.approx(1.0, abs=1e-12)
    assert d.behavior_probs[mask].sum() == pytest.approx(1.0, abs=1e-12)
    expected = (1 - eps) * greedy[mask] + eps / n_legal
    assert np.allclose(d.behavior_probs[mask], expected, rtol=0, atol=1e-15)
    a = d.sampled_action
    assert mask[a] and d.behavior_prob == pytest.approx((1 - eps) * greedy[a] + eps / n_legal, abs=1e-15)
    assert d.behavior_prob > 0 and mask[d.greedy_action] and d.greedy_action == int(np.argmax(greedy))
    assert d.epsilon == eps and (not d.was_exploratory or eps > 0)
    if eps == 0.0:
        assert greedy[a] > 0
    json.dumps(d.to_dict())


def test_sampled_frequencies_match_behavior_probabilities() -> None:
    # A BLENDING seed near its gate at temperature 3: several actions carry real greedy mass.
    slots = ({"stage": Stage.BLENDING, "epochs": 4, "alpha": 1.0, "contribution": 0.01, "gate": True},)
    obs, mask = synth_obs(epoch=6, plateau=3, slots=slots), synth_mask(slots)
    behavior = EpsilonGreedy(get_policy("baseline", temperature=3.0), epsilon=0.2).bind(SPEC)
    rng = np.random.default_rng(20251126)
    n = 20_000
    decisions = [behavior.decide(obs, mask, rng) for _ in range(n)]
    mu = decisions[0].behavior_probs
    assert all(np.array_equal(d.behavior_probs, mu) for d in decisions[:50])
    counts = np.bincount([d.sampled_action for d in decisions], minlength=SPEC.num_actions)
    assert counts[~mask].sum() == 0
    # Per action, within 4.5 binomial standard deviations (family-wise false alarm < 1e-3).
    sd = np.sqrt(n * mu * (1 - mu))
    assert np.all(np.abs(counts - n * mu) <= 4.5 * sd + 1), (counts, n * mu)
    # Pearson chi-square over the actions with expected count >= 5, against a loose bound.
    big = n * mu >= 5
    chi2 = float(((counts[big] - n * mu[big]) ** 2 / (n * mu[big])).sum())
    dof = int(big.sum()) - 1
    assert chi2 < dof + 6 * np.sqrt(2 * dof)
    explored = np.mean([d.was_exploratory for d in decisions])
    assert abs(explored - 0.2) < 4.5 * np.sqrt(0.2 * 0.8 / n)
    assert all(d.behavior_prob == mu[d.sampled_action] for d in decisions)
    # Same generator seed, same decisions.
    again = [behavior.decide(obs, mask, np.random.default_rng(7)).sampled_action for _ in range(3)]
    assert again == [behavior.decide(obs, mask, np.random.default_rng(7)).sampled_action for _ in range(3)]


def test_every_decision_draws_the_same_random_numbers_whatever_epsilon() -> None:
    mask = np.array([True, False, True, True])
    greedy = masked_softmax(np.array([1.0, 0.0, -1.0, 2.0]), mask)
    states = []
    for eps in (0.0, 0.2, 1.0):
        rng = np.random.default_rng(5)
        taken = [sample_decision(greedy, mask, eps, rng).sampled_action for _ in range(50)]
        assert all(mask[taken])
        states.append(rng.bit_generator.state["state"]["state"])
    assert states[0] == states[1] == states[2]


def test_behavior_distribution_rejects_mass_on_illegal_actions() -> None:
    with pytest.raises(ValueError, match="illegal"):
        behavior_distribution(np.array([0.5, 0.5]), np.array([True, False]), 0.1)
    with pytest.raises(ValueError, match="no legal"):
        behavior_distribution(np.array([0.0, 0.0]), np.array([False, False]), 0.1)
    with pytest.raises(TypeError, match="Generator"):
        legacy = np.random.RandomState(0)
        sample_decision(np.array([1.0]), np.array([True]), 0.1, legacy)  # type: ignore[arg-type]


def test_decide_batch_matches_row_by_row() -> None:
    slots = ({"stage": Stage.GERMINATED, "epochs": 1},)
    obs = np.stack([synth_obs(epoch=6, plateau=3), synth_obs(slots=slots)])
    masks = np.stack([synth_mask(), synth_mask(slots)])
    behavior = EpsilonGreedy(get_policy("baseline"), 0.1).bind(SPEC)
    batch = behavior.decide_batch(obs, masks, np.random.default_rng(3))
    rng = np.random.default_rng(3)
    assert [d.to_dict() for d in batch] == [behavior.decide(o, m, rng).to_dict() for o, m in zip(obs, masks)]
    assert isinstance(batch[0], ActionDecision) and behavior.config.epsilon == 0.1


# ------------------------------------------------------------------ real env


def test_baseline_heuristic_completes_a_lifecycle_on_the_env() -> None:
    env = make_env(max_epochs=11)
    # Small thresholds so that it germinates at once; a long cull clock so that the seed reaches
    # HOLDING, where the measured contribution decides (the test fidelity's host barely learns).
    config = replace(
        get_policy("baseline").config,
        min_epochs_before_germinate=0,
        plateau_epochs_to_germinate=0,
        cull_after_epochs_without_improvement=50,
    )
    behavior = EpsilonGreedy(ThresholdPolicy(config), epsilon=0.0).bind(env)
    obs, info = env.reset(seed=0)
    rng = np.random.default_rng(0)
    ops, stages, verdict = [], [], None
    done = False
    while not done:
        d = behavior.decide(obs, info["action_mask"], rng)
        action = env.actions[d.greedy_action]
        if action.op in (Op.FOSSILIZE, Op.PRUNE):
            verdict = (Op(action.op), behavior.policy.view(obs).slots[action.slot].contribution)
        ops.append(Op(action.op))
        obs, _, terminated, truncated, info = env.step(d.greedy_action)
        assert info["action_valid"], env.describe(d.greedy_action)
        stages.append(info["slot_stages"][0])
        done = terminated or truncated
    assert ops[:2] == [Op.GERMINATE, Op.ADVANCE]
    assert ops.count(Op.ADVANCE) == 3  # GERMINATED -> TRAINING -> BLENDING -> HOLDING
    for stage in ("GERMINATED", "TRAINING", "BLENDING", "HOLDING"):
        assert stage in stages
    assert verdict is not None, f"no FOSSILIZE/PRUNE; stages {stages}"
    op, contribution = verdict
    assert op == (Op.FOSSILIZE if contribution > 0 else Op.PRUNE)
    assert info["seeds_fossilized"] + info["seeds_pruned"] == 1 and info["seeds_created"] == 1


@pytest.mark.parametrize("name", POLICY_IDS)
def test_every_policy_takes_only_legal_actions(name: str) -> None:
    env = make_env(max_epochs=6)
    behavior = EpsilonGreedy(get_policy(name), epsilon=None if name == "random" else 0.2).bind(env)
    obs, info = env.reset(seed=1)
    rng = np.random.default_rng(1)
    done = False
    while not done:
        d = behavior.decide(obs, info["action_mask"], rng)
        assert info["action_mask"][d.sampled_action] and d.behavior_prob > 0
        obs, _, terminated, truncated, info = env.step(d.sampled_action)
        assert info["action_valid"]
        done = terminated or truncated


def test_one_bound_policy_drives_a_vector_env() -> None:
    envs = gym.make_vec(
        "Esper-SynthCIFAR-v2", num_envs=2, vectorization_mode="sync", wrappers=[CompactActions],
        fidelity="test", max_epochs=3, device="cpu",
    )  # fmt: skip
    behavior = EpsilonGreedy(get_policy("random"), 1.0).bind(PolicySpec.from_args(max_epochs=3))
    obs, info = envs.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(2):
        decisions = behavior.decide_batch(obs, info["action_mask"], rng)
        obs, _, _, _, info = envs.step(np.array([d.sampled_action for d in decisions]))
        assert info["action_valid"].all()
    envs.close()
