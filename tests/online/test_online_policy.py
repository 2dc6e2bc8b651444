"""The factored recurrent policy: exact dependent masks, unused heads, the detached op-conditioned critic."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from hypothesis import given, settings
from hypothesis import strategies as st
from sb3_contrib.common.recurrent.type_aliases import RNNStates

import esper_env  # noqa: F401
from esper_agents.online.envs import LegalityInObservation
from esper_agents.online.factored_policy import FactoredLstmPolicy
from esper_env.lifecycle import Op
from esper_env.spaces import HEADS, NOOP_INDEX, OP_HEADS, head_sizes

N_FEATURES, N_SLOTS = 12, 3
N_OPS = len(Op)
HEAD_SIZES = tuple(int(n) for n in head_sizes(N_SLOTS))
N_BLUEPRINTS = HEAD_SIZES[2]
#: Every blueprint but noop: the image hosts' mask.
ALL_BLUEPRINTS = np.arange(N_BLUEPRINTS) != NOOP_INDEX


def make_policy(seed: int = 0) -> FactoredLstmPolicy:
    th.manual_seed(seed)
    n = N_FEATURES + N_OPS * N_SLOTS + N_BLUEPRINTS
    obs_space = spaces.Box(-np.inf, np.inf, (n,), np.float32)
    return FactoredLstmPolicy(
        obs_space, spaces.MultiDiscrete(HEAD_SIZES), lambda _: 3e-4, lstm_hidden_size=32
    )


def make_obs(
    legal: np.ndarray, batch: int, seed: int = 0, blueprints: np.ndarray = ALL_BLUEPRINTS
) -> th.Tensor:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(batch, N_FEATURES)).astype(np.float32)
    tail = np.concatenate([legal.reshape(-1), blueprints]).astype(np.float32)
    legality = np.broadcast_to(tail, (batch, len(tail)))
    return th.as_tensor(np.concatenate([features, legality], 1))


def zero_states(policy: FactoredLstmPolicy, batch: int) -> RNNStates:
    shape = (policy.lstm_actor.num_layers, batch, policy.lstm_actor.hidden_size)
    pair = (th.zeros(shape), th.zeros(shape))
    return RNNStates(pair, pair)


def latent_of(policy: FactoredLstmPolicy, obs: th.Tensor) -> th.Tensor:
    states = zero_states(policy, obs.shape[0])
    return policy._latent(obs, states.pi, th.ones(obs.shape[0]))[0]


legalities = st.lists(st.booleans(), min_size=N_OPS * N_SLOTS, max_size=N_OPS * N_SLOTS).map(
    lambda bits: np.array(bits).reshape(N_OPS, N_SLOTS)
)


@settings(max_examples=25, deadline=None)
@given(legal=legalities, seed=st.integers(0, 2**16))
def test_masked_choices_have_probability_zero_and_are_never_sampled(legal: np.ndarray, seed: int) -> None:
    policy = make_policy(seed % 7)
    obs = make_obs(legal, 512, seed)
    with th.no_grad():
        out = policy.heads(latent_of(policy, obs), policy.legality(obs), policy.blueprint_legality(obs))
    op_legal = legal.any(1)
    op_legal[Op.WAIT] = True
    assert th.all(out.op_probs[:, th.as_tensor(~op_legal)] == 0)
    actions = out.actions.numpy()
    assert op_legal[actions[:, 0]].all(), "an op legal on no slot was sampled"
    for op, slot, blueprint in actions[:, :3]:
        if "slot" in OP_HEADS[Op(op)]:
            assert legal[op, slot], f"{Op(op).name} sampled on illegal slot {slot}"
        if "blueprint" in OP_HEADS[Op(op)]:
            assert blueprint != NOOP_INDEX, "GERMINATE sampled the noop blueprint"


def test_every_legal_op_is_reachable() -> None:
    """The masks do not over-mask: with everything legal, every op and slot is sampled."""
    policy = make_policy()
    obs = make_obs(np.ones((N_OPS, N_SLOTS), dtype=bool), 4096)
    with th.no_grad():
        actions = policy.heads(
            latent_of(policy, obs), policy.legality(obs), policy.blueprint_legality(obs)
        ).actions.numpy()
    assert set(actions[:, 0]) == set(range(N_OPS))
    assert set(actions[actions[:, 0] == Op.GERMINATE, 1]) == set(range(N_SLOTS))


@pytest.mark.parametrize("op", list(Op), ids=lambda op: op.name)
def test_a_head_the_op_does_not_use_adds_nothing(op: Op) -> None:
    """Log-probability and entropy ignore the values of unused heads, and give them no gradient."""
    policy = make_policy()
    legal = np.ones((N_OPS, N_SLOTS), dtype=bool)
    obs = make_obs(legal, 64)
    rng = np.random.default_rng(int(op))
    unused = [i for i, h in enumerate(HEADS) if h != "op" and h not in OP_HEADS[op]]
    base = np.stack([rng.integers(0, n, 64) for n in HEAD_SIZES], 1)
    base[:, 0] = int(op)
    base[:, 2] = np.where(base[:, 2] == NOOP_INDEX, (NOOP_INDEX + 1) % HEAD_SIZES[2], base[:, 2])
    other = base.copy()
    for i in unused:
        other[:, i] = rng.integers(0, HEAD_SIZES[i], 64)
    latent = latent_of(policy, obs)
    a = policy.heads(latent, policy.legality(obs), policy.blueprint_legality(obs), actions=th.as_tensor(base))
    b = policy.heads(
        latent, policy.legality(obs), policy.blueprint_legality(obs), actions=th.as_tensor(other)
    )
    assert th.equal(a.log_prob, b.log_prob)
    assert th.equal(a.entropy, b.entropy)
    for i in unused:
        assert th.all(a.head_entropy[HEADS[i]] == 0)
    policy.zero_grad()
    (a.log_prob.sum() + a.entropy.sum()).backward()
    for i in unused:
        for p in policy.action_net[HEADS[i]].parameters():
            assert p.grad is None or th.all(p.grad == 0), (
                f"{op.name} gave the unused {HEADS[i]} head a gradient"
            )


def op_head_grads_after(
    loss_of: Callable[[FactoredLstmPolicy, th.Tensor], th.Tensor],
) -> list[th.Tensor | None]:
    policy = make_policy()
    obs = make_obs(np.ones((N_OPS, N_SLOTS), dtype=bool), 32)
    policy.zero_grad()
    loss_of(policy, obs).backward()
    feature_grads = [p.grad for p in policy.features_extractor.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in feature_grads), "the value reached no parameter"
    return [p.grad for p in policy.action_net["op"].parameters()]


def _forward_values(policy: FactoredLstmPolicy, obs: th.Tensor) -> th.Tensor:
    return policy.forward(obs, zero_states(policy, len(obs)), th.ones(len(obs)))[1].sum()


def _update_values(policy: FactoredLstmPolicy, obs: th.Tensor) -> th.Tensor:
    with th.no_grad():
        actions = policy.forward(obs, zero_states(policy, len(obs)), th.ones(len(obs)))[0]
    return policy.evaluate_actions(obs, actions, zero_states(policy, len(obs)), th.ones(len(obs)))[0].sum()


def _bootstrap_values(policy: FactoredLstmPolicy, obs: th.Tensor) -> th.Tensor:
    return policy.predict_values(obs, zero_states(policy, len(obs)).vf, th.ones(len(obs))).sum()


@pytest.mark.parametrize("loss_of", [_forward_values, _update_values, _bootstrap_values])
def test_the_value_never_reaches_the_op_head(
    loss_of: Callable[[FactoredLstmPolicy, th.Tensor], th.Tensor],
) -> None:
    """The critic reads the op (soft probabilities or the taken one) detached: the op head gets no gradient."""
    for grad in op_head_grads_after(loss_of):
        assert grad is None or th.all(grad == 0)


def test_the_critic_is_op_conditioned() -> None:
    policy = make_policy()
    obs = make_obs(np.ones((N_OPS, N_SLOTS), dtype=bool), 1).repeat(N_OPS, 1)
    actions = th.zeros(N_OPS, len(HEADS), dtype=th.long)
    actions[:, 0] = th.arange(N_OPS)
    actions[:, 2] = (NOOP_INDEX + 1) % HEAD_SIZES[2]
    with th.no_grad():
        values = policy.evaluate_actions(obs, actions, zero_states(policy, N_OPS), th.ones(N_OPS))[0]
    assert len(set(values.flatten().tolist())) == N_OPS


def test_bad_spaces_and_coefficients_are_refused() -> None:
    box = spaces.Box(-1, 1, (N_FEATURES + N_OPS * N_SLOTS + N_BLUEPRINTS,), np.float32)
    with pytest.raises(ValueError, match="MultiDiscrete"):
        FactoredLstmPolicy(box, spaces.Discrete(4), lambda _: 1e-3)
    with pytest.raises(ValueError, match="legality"):
        FactoredLstmPolicy(
            spaces.Box(-1, 1, (5,), np.float32), spaces.MultiDiscrete(HEAD_SIZES), lambda _: 1e-3
        )
    with pytest.raises(ValueError, match="colour"):
        FactoredLstmPolicy(
            box, spaces.MultiDiscrete(HEAD_SIZES), lambda _: 1e-3, entropy_coef_per_head={"colour": 1}
        )


def test_legality_in_observation_is_the_envs_legality() -> None:
    env = LegalityInObservation(gym.make("Esper-SynthCIFAR-v2", fidelity="test", max_epochs=6))
    obs, _ = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    base = env.unwrapped
    for step in range(6):
        legal = base.legal_actions()
        tail = np.concatenate([legal.reshape(-1), base.blueprint_mask()])
        assert np.array_equal(obs[env.n_features :], tail.astype(np.float32))
        assert np.array_equal(env.action_masks(), tail)
        germinate = np.flatnonzero(legal[Op.GERMINATE])
        action = np.zeros(len(HEADS), dtype=np.int64)
        if step == 0 and len(germinate):
            action[:3] = [int(Op.GERMINATE), germinate[0], (NOOP_INDEX + 1) % env.action_space.nvec[2]]
        obs, *_ = env.step(action)
    env.close()


def test_legality_wrapper_needs_the_factored_env() -> None:
    with pytest.raises(TypeError, match="factored MultiDiscrete"):
        LegalityInObservation(gym.make("CartPole-v1"))


def test_the_blueprint_head_samples_only_the_hosts_blueprints() -> None:
    """On an MLP host (the fast tier) the spatial blueprints are masked in the blueprint head too."""
    env = LegalityInObservation(gym.make("Esper-Micro-v3", max_epochs=2, device="cpu"))
    obs, _ = env.reset(seed=0)
    supported = env.unwrapped.blueprint_mask()
    assert not supported.all() and supported.any()
    policy = make_policy()
    full = np.concatenate([np.random.default_rng(0).normal(size=N_FEATURES), obs[env.n_features :]])
    batch = th.as_tensor(np.repeat(full[None].astype(np.float32), 256, 0))
    legal = policy.legality(batch)
    assert legal[:, Op.GERMINATE].any()
    out = policy.heads(latent_of(policy, batch), legal, policy.blueprint_legality(batch))
    germinated = out.actions[out.actions[:, 0] == int(Op.GERMINATE)]
    assert len(germinated) > 0 and supported[germinated[:, 2].numpy()].all()
    env.close()
