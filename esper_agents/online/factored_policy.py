"""The factored recurrent actor-critic of the original factored-policy design, as an SB3 policy.

:class:`FactoredLstmPolicy` subclasses sb3-contrib's ``RecurrentActorCriticPolicy`` (its LSTM
sequence handling, state shapes, ``predict`` and save/load) and replaces the action distribution
and the critic:

* feature net ``Linear -> LayerNorm -> ReLU``, one LSTM shared by actor and critic, a LayerNorm
  after it;
* one head per action component, sampled in order: the **op** first, the **slot** given the op,
  the other six heads given op and slot (their inputs carry the one-hot op and slot). Masks are
  dependent and exact: the op is masked by "legal on some slot", the slot by the legality of
  *that* op on each slot, and GERMINATE never takes the ``noop`` blueprint. The legality comes
  from the observation (:class:`~esper_agents.online.envs.LegalityInObservation`), so the rollout
  buffer stores it with no extra machinery;
* heads the op does not use (:data:`esper_env.spaces.OP_HEADS`) add nothing to the log-probability
  or the entropy, and are returned at their default values (actions are canonical);
* the critic is op-conditioned: ``V(h, op)`` with the op's masked probabilities, detached, while
  collecting rollouts and bootstrapping, and the one-hot sampled op in the update; the value
  loss therefore never reaches the op head;
* the entropy bonus is a sum over heads, each with its own coefficient
  (:data:`DEFAULT_ENTROPY_COEFS`), times the algorithm's ``ent_coef``.
"""

from __future__ import annotations

import itertools
from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn
from torch.distributions import Categorical

from esper_env.lifecycle import Op
from esper_env.spaces import HEADS, OP_HEADS, WAIT_ACTION

__all__ = ["DEFAULT_ENTROPY_COEFS", "FactoredLstmPolicy", "FeatureNet", "HeadOutput"]

#: The logit a masked value gets (as in sb3-contrib's MaskableCategorical): probability exactly 0.
MASKED_LOGIT = -1e8

#: Per-head entropy coefficients of the design note: the heads only some ops use get a boost.
DEFAULT_ENTROPY_COEFS: dict[str, float] = {
    "op": 1.0,
    "slot": 1.0,
    "blueprint": 1.5,
    "style": 1.2,
    "tempo": 1.5,
    "alpha_target": 1.2,
    "alpha_speed": 1.3,
    "alpha_curve": 1.3,
}

N_OPS = len(Op)
#: ``USED[op, h]``: 1.0 if op ``op`` reads head ``h`` (the op head always).
USED = th.tensor([[1.0 if h == "op" or h in OP_HEADS[Op(op)] else 0.0 for h in HEADS] for op in range(N_OPS)])
DEFAULTS = th.tensor(list(WAIT_ACTION), dtype=th.long)


class FeatureNet(BaseFeaturesExtractor):
    """``Linear(obs, features_dim) -> LayerNorm -> ReLU`` over the whole observation (legality included)."""

    def __init__(self, observation_space: spaces.Box, features_dim: int = 128) -> None:
        super().__init__(observation_space, features_dim)
        self.net = nn.Sequential(
            nn.Linear(int(np.prod(observation_space.shape)), features_dim),
            nn.LayerNorm(features_dim),
            nn.ReLU(),
        )

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.net(observations.flatten(1))


class HeadOutput(NamedTuple):
    """What the factored heads give for a batch."""

    actions: th.Tensor  # (B, 8) long, canonical
    log_prob: th.Tensor  # (B,) sum over the heads the op uses
    entropy: th.Tensor  # (B,) per-head entropies of the used heads, weighted by their coefficients
    head_entropy: dict[str, th.Tensor]  # (B,) each, 0 where the op does not use the head
    op_probs: th.Tensor  # (B, 6) masked op probabilities (not detached)


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def factored_heads(latent: int, head_sizes: tuple[int, ...], hidden: int) -> nn.ModuleDict:
    """The eight heads: op from the LSTM state, slot given the op, the rest given op and slot."""
    n_ops, n_slots = head_sizes[0], head_sizes[1]
    both = latent + n_ops + n_slots
    return nn.ModuleDict(
        {
            "op": _mlp([latent, hidden, n_ops]),
            "slot": _mlp([latent + n_ops, hidden, n_slots]),
            # The design note's 3-layer blueprint head.
            "blueprint": _mlp([both, latent, hidden, head_sizes[2]]),
            **{h: _mlp([both, hidden, n]) for h, n in zip(HEADS[3:], head_sizes[3:])},
        }
    )


class FactoredLstmPolicy(RecurrentActorCriticPolicy):
    """Recurrent actor-critic over Esper's factored action space with exact dependent masks.

    Needs a ``MultiDiscrete`` action space of Esper's eight heads and an observation whose last
    ``6 * num_slots + num_blueprints`` entries are the (op, slot) legality and the blueprint mask
    (``LegalityInObservation``).

    :param lstm_hidden_size: LSTM and feature width (the design note matches the two).
    :param head_hidden: hidden width of each head (default: half the LSTM width).
    :param entropy_coef_per_head: overrides of :data:`DEFAULT_ENTROPY_COEFS`.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Any,
        lstm_hidden_size: int = 128,
        head_hidden: int | None = None,
        entropy_coef_per_head: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(action_space, spaces.MultiDiscrete) or len(action_space.nvec) != len(HEADS):
            raise ValueError(
                f"FactoredLstmPolicy needs Esper's MultiDiscrete space of {len(HEADS)} heads, got {action_space}"
            )
        unknown = sorted(set(entropy_coef_per_head or {}) - set(HEADS))
        if unknown:
            raise ValueError(f"unknown heads {unknown} in entropy_coef_per_head; heads are: {list(HEADS)}")
        self.head_sizes = tuple(int(n) for n in action_space.nvec)
        self.num_slots = self.head_sizes[1]
        #: The tail ``LegalityInObservation`` appends: (op, slot) legality, then the blueprint mask.
        self.n_legal = N_OPS * self.num_slots + self.head_sizes[2]
        assert isinstance(observation_space, spaces.Box)
        if observation_space.shape[0] <= self.n_legal:
            raise ValueError(
                f"observations of size {observation_space.shape[0]} cannot end with the {self.n_legal} legality "
                "entries; wrap the env in LegalityInObservation"
            )
        self.head_hidden = int(head_hidden or lstm_hidden_size // 2)
        self.entropy_coef_per_head = {**DEFAULT_ENTROPY_COEFS, **(entropy_coef_per_head or {})}
        kwargs.update(net_arch=[], shared_lstm=True, enable_critic_lstm=False)
        kwargs.setdefault("features_extractor_class", FeatureNet)
        kwargs.setdefault("features_extractor_kwargs", {"features_dim": lstm_hidden_size})
        super().__init__(
            observation_space, action_space, lr_schedule, lstm_hidden_size=lstm_hidden_size, **kwargs
        )
        self.register_buffer("_used", USED.clone(), persistent=False)
        self.register_buffer("_defaults", DEFAULTS.clone(), persistent=False)
        coefs = [self.entropy_coef_per_head[h] for h in HEADS]
        self.register_buffer("_entropy_coefs", th.tensor(coefs), persistent=False)
        #: Mean per-head entropy of each update minibatch since the algorithm last logged it.
        self.entropy_log: list[dict[str, float]] = []

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            lstm_hidden_size=self.lstm_output_dim,
            head_hidden=self.head_hidden,
            entropy_coef_per_head=self.entropy_coef_per_head,
        )
        for key in ("net_arch", "shared_lstm", "enable_critic_lstm"):
            data.pop(key, None)
        return data

    def _build(self, lr_schedule: Any) -> None:
        self._build_mlp_extractor()
        latent = self.lstm_output_dim
        self.lstm_norm = nn.LayerNorm(latent)
        self.action_net = factored_heads(latent, self.head_sizes, self.head_hidden)
        self.value_net = _mlp([latent + N_OPS, self.head_hidden, 1])
        if self.ortho_init:
            for module, gain in ((self.features_extractor, np.sqrt(2)), (self.value_net, np.sqrt(2))):
                module.apply(lambda m, g=gain: self.init_weights(m, gain=g))
            for head in self.action_net.values():
                head.apply(lambda m: self.init_weights(m, gain=np.sqrt(2)))
                self.init_weights(head[-1], gain=0.01)
            self.init_weights(self.value_net[-1], gain=1.0)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    # ------------------------------------------------------------------ pieces

    def legality(self, obs: th.Tensor) -> th.Tensor:
        """The ``(B, 6, num_slots)`` boolean (op, slot) legality carried near the end of each observation."""
        tail = obs[..., -self.n_legal :][..., : N_OPS * self.num_slots]
        return tail.reshape(-1, N_OPS, self.num_slots) > 0.5

    def blueprint_legality(self, obs: th.Tensor) -> th.Tensor:
        """The ``(B, num_blueprints)`` blueprint mask at the end of each observation (``noop`` masked)."""
        return obs[..., -self.head_sizes[2] :].reshape(-1, self.head_sizes[2]) > 0.5

    def _latent(
        self, obs: th.Tensor, lstm_states: tuple[th.Tensor, th.Tensor], episode_starts: th.Tensor
    ) -> tuple[th.Tensor, tuple[th.Tensor, th.Tensor]]:
        features = self.extract_features(obs)
        latent, states = self._process_sequence(features, lstm_states, episode_starts, self.lstm_actor)
        return self.lstm_norm(latent), states

    def heads(
        self,
        latent: th.Tensor,
        legal: th.Tensor,
        blueprints: th.Tensor,
        actions: th.Tensor | None = None,
        deterministic: bool = False,
    ) -> HeadOutput:
        """Sample (or, given ``actions``, score) the factored action head by head."""
        batch = latent.shape[0]
        rows = th.arange(batch, device=latent.device)
        net = self.action_net

        def choose(dist: Categorical, index: int) -> th.Tensor:
            if actions is not None:
                return actions[:, index].long()
            return dist.probs.argmax(-1) if deterministic else dist.sample()

        op_mask = legal.any(-1)
        op_mask[:, int(Op.WAIT)] = True
        op_dist = Categorical(logits=net["op"](latent).masked_fill(~op_mask, MASKED_LOGIT))
        op = choose(op_dist, 0)
        used = self._used[op]  # (B, 8)
        op_hot = nn.functional.one_hot(op, N_OPS).float()

        slot_mask = legal[rows, op]
        slot_mask = slot_mask | ~slot_mask.any(-1, keepdim=True)  # WAIT is legal everywhere; never all-masked
        slot_dist = Categorical(
            logits=net["slot"](th.cat([latent, op_hot], -1)).masked_fill(~slot_mask, MASKED_LOGIT)
        )
        slot = choose(slot_dist, 1)
        if actions is None:
            slot = th.where(used[:, 1] > 0, slot, self._defaults[1])
        context = th.cat([latent, op_hot, nn.functional.one_hot(slot, self.num_slots).float()], -1)

        dists, chosen = [op_dist, slot_dist], [op, slot]
        for index, head in enumerate(HEADS[2:], start=2):
            logits = net[head](context)
            if head == "blueprint":  # the host's blueprints (noop is never among them)
                logits = logits.masked_fill(~blueprints, MASKED_LOGIT)
            dist = Categorical(logits=logits)
            value = choose(dist, index)
            if actions is None:
                value = th.where(used[:, index] > 0, value, self._defaults[index])
            dists.append(dist)
            chosen.append(value)
        taken = th.stack(chosen, -1)
        log_prob = th.stack([d.log_prob(a) for d, a in zip(dists, chosen)], -1)
        entropy = th.stack([d.entropy() for d in dists], -1) * used
        return HeadOutput(
            actions=taken,
            log_prob=(log_prob * used).sum(-1),
            entropy=(entropy * self._entropy_coefs).sum(-1),
            head_entropy={h: entropy[:, i] for i, h in enumerate(HEADS)},
            op_probs=op_dist.probs,
        )

    def _value(self, latent: th.Tensor, op_input: th.Tensor) -> th.Tensor:
        return self.value_net(th.cat([latent, op_input], -1))

    # ------------------------------------------------------------------ the SB3 interface

    def forward(
        self, obs: th.Tensor, lstm_states: RNNStates, episode_starts: th.Tensor, deterministic: bool = False
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor, RNNStates]:
        latent, states = self._latent(obs, lstm_states.pi, episode_starts)
        out = self.heads(
            latent, self.legality(obs), self.blueprint_legality(obs), deterministic=deterministic
        )
        values = self._value(latent, out.op_probs.detach())
        detached = (states[0].detach(), states[1].detach())
        return out.actions, values, out.log_prob, RNNStates(states, detached)

    def evaluate_actions(
        self, obs: th.Tensor, actions: th.Tensor, lstm_states: RNNStates, episode_starts: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        latent, _ = self._latent(obs, lstm_states.pi, episode_starts)
        actions = actions.long()
        out = self.heads(latent, self.legality(obs), self.blueprint_legality(obs), actions=actions)
        values = self._value(latent, nn.functional.one_hot(actions[:, 0], N_OPS).float())
        if self.training:
            self.entropy_log.append({h: float(e.detach().mean()) for h, e in out.head_entropy.items()})
        return values, out.log_prob, out.entropy

    def predict_values(
        self, obs: th.Tensor, lstm_states: tuple[th.Tensor, th.Tensor], episode_starts: th.Tensor
    ) -> th.Tensor:
        latent, _ = self._latent(obs, lstm_states, episode_starts)
        op_logits = self.action_net["op"](latent)
        op_mask = self.legality(obs).any(-1)
        op_mask[:, int(Op.WAIT)] = True
        probs = th.softmax(op_logits.masked_fill(~op_mask, MASKED_LOGIT), -1)
        return self._value(latent, probs.detach())

    def _predict(
        self,
        observation: th.Tensor,
        lstm_states: tuple[th.Tensor, th.Tensor],
        episode_starts: th.Tensor,
        deterministic: bool = False,
    ) -> tuple[th.Tensor, tuple[th.Tensor, ...]]:
        latent, states = self._latent(observation, lstm_states, episode_starts)
        return self.heads(
            latent,
            self.legality(observation),
            self.blueprint_legality(observation),
            deterministic=deterministic,
        ).actions, states
