"""Masks in the offline algorithms, on crafted batches: illegal actions are never picked,
whatever their values; the expectile loss; effective-number class weights; the mask plumbing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from d3rlpy.algos import DiscreteCQLConfig
from d3rlpy.models.encoders import VectorEncoderFactory
from d3rlpy.torch_utility import TorchMiniBatch

from esper_agents.common.masks import strip_mask
from esper_agents.common.stats import t_quantile_975
from esper_agents.offline import (
    DiscreteIQLConfig,
    MaskedDiscreteBCConfig,
    MaskedDiscreteCQLConfig,
    MaskedStandardObservationScaler,
    MaskedVectorEncoderFactory,
    classification_report,
    effective_number_weights,
    expectile_loss,
    mean_ci,
    with_mask,
)
from esper_agents.offline.masks import legal_mask, masked_argmax

F, N = 6, 5  # features, actions

# Each row: legal actions. Illegal actions get the LARGEST crafted values below.
MASKS = np.array(
    [
        [1, 0, 1, 0, 0],
        [0, 0, 0, 1, 1],
        [1, 1, 1, 1, 1],
        [0, 1, 0, 0, 0],
    ],
    dtype=bool,
)
#: Crafted Q-values / logits: every illegal action above every legal one in each row.
VALUES = np.array([0.5, -1.0, 0.2, 3.0, 0.1], dtype=np.float32)


def crafted_values_for(mask: np.ndarray) -> np.ndarray:
    v = VALUES.copy()
    v[~mask] = 100.0 + np.arange((~mask).sum())
    return v


def observations(masks: np.ndarray, seed: int = 0) -> np.ndarray:
    feats = np.random.default_rng(seed).normal(size=(len(masks), F)).astype(np.float32)
    return with_mask(feats, masks)


def set_constant_output(linear: torch.nn.Linear, values: np.ndarray) -> None:
    """Make ``linear`` output ``values`` for every input (weights 0, bias = values)."""
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.copy_(torch.as_tensor(values))


def best_legal(mask: np.ndarray, values: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[np.argmax(values[mask])])


def make_batch(
    obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray, terminals: np.ndarray | None = None
) -> TorchMiniBatch:
    n = len(obs)
    t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32))
    return TorchMiniBatch(
        observations=t(obs),
        actions=t(actions).view(-1, 1),
        rewards=torch.zeros(n, 1),
        next_observations=t(next_obs),
        next_actions=torch.zeros(n, 1),
        returns_to_go=torch.zeros(n, 1),
        terminals=t(np.zeros(n) if terminals is None else terminals).view(-1, 1),
        intervals=torch.ones(n, 1),
        device="cpu:0",
    )


# --------------------------------------------------------------------------------------------- CQL


def build(config, n_obs: int = F + N, n_actions: int = N):
    algo = config.create(device="cpu:0")
    algo.create_impl((n_obs,), n_actions)
    return algo


@pytest.mark.parametrize("row", range(len(MASKS)))
def test_masked_cql_target_lse_and_greedy_never_pick_illegal(row: int) -> None:
    mask = MASKS[row]
    values = crafted_values_for(mask)
    algo = build(MaskedDiscreteCQLConfig())
    impl = algo.impl
    for q in list(impl.modules.q_funcs) + list(impl.modules.targ_q_funcs):
        set_constant_output(q._fc, values)

    obs = observations(MASKS)  # current states: all masks
    next_obs = observations(np.repeat(mask[None], len(MASKS), 0), seed=1)
    best = best_legal(mask, values)

    # (c) greedy
    assert algo.predict(next_obs).tolist() == [best] * len(MASKS)
    # (a) bootstrap target: the value of the best LEGAL next action under the next state's mask
    target = impl.compute_target(make_batch(obs, np.zeros(len(obs)), next_obs))
    np.testing.assert_allclose(target.numpy().ravel(), values[best])
    # (b) conservative term: log-sum-exp over the legal actions only
    same = observations(np.repeat(mask[None], 3, 0), seed=2)
    actions = np.flatnonzero(mask)[[0, -1, 0]]
    lse = float(impl._compute_conservative_loss(torch.as_tensor(same), torch.as_tensor(actions)).detach())
    legal_lse = np.log(np.exp(values[mask].astype(np.float64)).sum())
    assert lse == pytest.approx(np.mean(legal_lse - values[actions]), rel=1e-5)
    assert lse < 10  # with the illegal values (>= 100) inside it would be > 90


def test_unmasked_cql_would_pick_illegal_with_these_values() -> None:
    """The crafted values do bite: d3rlpy's own DiscreteCQL picks an illegal action."""
    mask = MASKS[0]
    algo = build(DiscreteCQLConfig(encoder_factory=VectorEncoderFactory()))
    set_constant_output(algo.impl.modules.q_funcs[0]._fc, crafted_values_for(mask))
    assert not mask[algo.predict(observations(mask[None]))[0]]


def test_masked_cql_target_is_finite_after_terminal() -> None:
    """d3rlpy gives a terminal transition an all-zero next observation (no legal action)."""
    algo = build(MaskedDiscreteCQLConfig())
    obs = observations(MASKS[:1])
    batch = make_batch(obs, [0], np.zeros_like(obs), terminals=[1.0])
    assert torch.isfinite(algo.impl.compute_target(batch)).all()
    assert torch.isfinite(algo.impl.compute_loss(batch, algo.impl.compute_target(batch)).loss)


# --------------------------------------------------------------------------------------------- IQL, BC


def test_iql_greedy_and_sampled_actions_are_legal() -> None:
    algo = build(DiscreteIQLConfig())
    obs = observations(np.repeat(MASKS, 50, 0))
    for mask in MASKS:
        set_constant_output(algo.impl.modules.policy._fc, crafted_values_for(mask))
        assert algo.predict(observations(mask[None]))[0] == best_legal(mask, crafted_values_for(mask))
    sampled = algo.sample_action(obs)
    assert obs[np.arange(len(obs)), F + sampled].all()


def test_iql_losses_are_finite_with_masks_and_terminals() -> None:
    algo = build(DiscreteIQLConfig())
    obs = observations(MASKS)
    actions = np.array([np.flatnonzero(m)[-1] for m in MASKS])
    batch = make_batch(obs, actions, np.zeros_like(obs), terminals=np.ones(len(obs)))
    losses = algo.impl.inner_update(batch, 1)
    assert all(np.isfinite(v) for v in losses.values()), losses


def test_bc_greedy_and_sampled_actions_are_legal() -> None:
    algo = build(MaskedDiscreteBCConfig())
    for mask in MASKS:
        set_constant_output(algo.impl.modules.imitator._fc, crafted_values_for(mask))
        assert algo.predict(observations(mask[None]))[0] == best_legal(mask, crafted_values_for(mask))
    obs = observations(np.repeat(MASKS, 50, 0))
    assert obs[np.arange(len(obs)), F + algo.sample_action(obs)].all()


def test_expectile_loss_convention() -> None:
    """|tau - 1(u < 0)| * u^2 with u = target - prediction (IQL: Q(s,a) - V(s))."""
    u = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0])
    torch.testing.assert_close(expectile_loss(u, 0.5), 0.5 * u**2)
    # tau = 0.9: an under-estimate (u > 0) costs 0.9 u^2, an over-estimate (u < 0) 0.1 u^2.
    torch.testing.assert_close(expectile_loss(torch.tensor([1.0, -1.0]), 0.9), torch.tensor([0.9, 0.1]))
    torch.testing.assert_close(
        expectile_loss(torch.tensor([3.0, -3.0]), 0.7), torch.tensor([0.7 * 9, 0.3 * 9])
    )
    # Minimising it over a constant gives the tau-expectile: above the mean for tau > 0.5.
    x = torch.tensor([0.0, 0.0, 0.0, 1.0])
    v = torch.zeros((), requires_grad=True)
    opt = torch.optim.SGD([v], lr=0.5)
    for _ in range(500):
        opt.zero_grad()
        expectile_loss(x - v, 0.9).mean().backward()
        opt.step()
    # tau-expectile e solves 0.9 (1 - e) = 0.1 * 3 e  ->  e = 0.75
    assert float(v.detach()) == pytest.approx(0.75, abs=1e-4)
    with pytest.raises(ValueError, match="expectile"):
        expectile_loss(u, 1.0)


def test_effective_number_class_weights_formula() -> None:
    beta = 0.999
    counts = np.array([9400, 200, 300, 50, 0])
    w = effective_number_weights(counts, beta)
    raw = np.array([(1 - beta) / (1 - beta**n) for n in counts[:4]])
    expected = raw / raw.sum() * 4
    np.testing.assert_allclose(w[:4], expected, rtol=1e-12)
    assert w[4] == 0.0 and w.sum() == pytest.approx(4.0)
    assert w[3] > w[1] > w[2] > w[0]  # rarer class, larger weight
    # beta -> 0 gives equal weights; the config fills them from logged actions
    np.testing.assert_allclose(effective_number_weights([5, 50, 500], beta=0.0), [1.0, 1.0, 1.0])
    cfg = MaskedDiscreteBCConfig().with_class_weights(np.repeat(np.arange(4), counts[:4]), 5, beta)
    np.testing.assert_allclose(cfg.class_weights, w)
    assert cfg.class_weight_beta == beta


def test_class_weighted_loss_matches_pytorch_weighted_cross_entropy() -> None:
    cfg = MaskedDiscreteBCConfig(class_weights=[0.5, 2.0, 1.0, 1.5, 1.0])
    algo = build(cfg)
    obs = observations(MASKS)
    actions = np.array([2, 4, 1, 1])
    batch = make_batch(obs, actions, obs)
    logits = algo.impl.modules.imitator(batch.observations).logits
    masked = logits.masked_fill(~legal_mask(batch.observations, N), -1e9)
    expected = torch.nn.functional.cross_entropy(
        masked, torch.as_tensor(actions), weight=torch.tensor(cfg.class_weights)
    )
    torch.testing.assert_close(algo.impl.compute_loss(batch)["loss"], expected)


def test_classification_report() -> None:
    rep = classification_report(np.array([0, 0, 1, 1, 2, 0]), np.array([0, 0, 0, 1, 2, 2]), 4)
    assert rep["per_class_accuracy"] == {0: 2 / 3, 1: 1.0, 2: 0.5}
    assert rep["balanced_accuracy"] == pytest.approx((2 / 3 + 1 + 0.5) / 3)
    assert rep["accuracy"] == pytest.approx(4 / 6)
    assert rep["confusion"][2] == [1, 0, 1, 0]


# --------------------------------------------------------------------------------------------- plumbing


def test_q_network_sees_only_the_features() -> None:
    algo = build(MaskedDiscreteCQLConfig())
    feats = np.random.default_rng(0).normal(size=(4, F)).astype(np.float32)
    q = lambda m: algo.impl._q_func_forwarder.compute_expected_q(torch.as_tensor(with_mask(feats, m)))
    torch.testing.assert_close(q(MASKS), q(~MASKS | MASKS[2]))


def test_mask_size_must_match_action_size() -> None:
    with pytest.raises(ValueError, match="mask_size 3 does not match the action size 5"):
        build(MaskedDiscreteCQLConfig(encoder_factory=MaskedVectorEncoderFactory(mask_size=3)))
    from d3rlpy.preprocessing import StandardObservationScaler

    with pytest.raises(ValueError, match="rescale the action mask"):
        build(
            MaskedDiscreteBCConfig(
                observation_scaler=StandardObservationScaler(mean=np.zeros(11), std=np.ones(11))
            )
        )


def test_masked_scaler_passes_the_mask_through() -> None:
    from d3rlpy.dataset import BasicTransitionPicker, Episode

    obs = observations(np.repeat(MASKS, 3, 0))
    obs[:, 1] = 7.0  # a constant feature
    ep = Episode(obs, np.zeros((len(obs), 1), dtype=np.int64), np.zeros((len(obs), 1), np.float32), True)
    scaler = MaskedStandardObservationScaler(mask_size=N)
    scaler.fit_with_transition_picker([ep], BasicTransitionPicker())
    out = scaler.transform(torch.as_tensor(obs)).numpy()
    np.testing.assert_array_equal(out[:, F:], obs[:, F:])
    np.testing.assert_allclose(out[:, 1], 0.0, atol=1e-6)  # centred, not divided by ~0
    np.testing.assert_allclose(out[:, 0].std(), 1.0, rtol=2e-3)
    np.testing.assert_allclose(scaler.transform_numpy(obs)[:, F:], obs[:, F:])
    np.testing.assert_allclose(
        scaler.reverse_transform(scaler.transform(torch.as_tensor(obs))).numpy(), obs, atol=1e-5
    )


def test_with_mask_and_legal_mask() -> None:
    obs = with_mask(np.ones((2, 3)), np.array([[1, 0], [0, 0]]))
    assert obs.dtype == np.float32 and obs.tolist() == [[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]]
    feats, masks = strip_mask(obs, 2)
    assert feats.shape == (2, 3) and masks.tolist() == [[True, False], [False, False]]
    # a row with no legal action counts as all-legal
    assert legal_mask(torch.as_tensor(obs), 2).tolist() == [[True, False], [True, True]]
    v = torch.tensor([[1.0, 9.0], [1.0, 9.0]])
    assert masked_argmax(v, legal_mask(torch.as_tensor(obs), 2)).tolist() == [0, 1]
    with pytest.raises(ValueError, match="leading shape"):
        with_mask(np.ones((2, 3)), np.ones((3, 2), dtype=bool))


def test_mean_ci_is_a_t_interval() -> None:
    x = [0.61, 0.64, 0.58, 0.66, 0.60]
    ci = mean_ci(x)
    half = 2.7764 * np.std(x, ddof=1) / np.sqrt(5)
    assert ci["mean"] == pytest.approx(np.mean(x)) and ci["half_width"] == pytest.approx(half, rel=1e-4)
    assert mean_ci([0.5])["ci95"] == [0.5, 0.5]
    scipy_stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 5, 19, 30, 31, 40, 100, 1000):
        assert t_quantile_975(df) == pytest.approx(scipy_stats.t.ppf(0.975, df), abs=1e-4)
