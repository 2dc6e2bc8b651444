"""Warm start an options policy from a behavior policy's decisions: behavior cloning before PPO.

The original design's online phase "needs a stable Phase 3 policy as initialization"; the online
algorithms that start from scratch settle on never growing (docs/LEARNING.md). An algorithm with
``OnlineAlgorithm.warm_start`` set begins instead from a clone of that behavior policy:

1. :func:`teacher_decisions` plays the policy greedily for ``episodes`` episodes of the run's
   training env, inside the algorithm's own stack (:class:`~esper_agents.common.options.GrowOptions`
   + ``MaskInObservation``). At each decision the policy's compact action is read at the base env's
   state and mapped to an option: a GERMINATE becomes GROW of its blueprint in its slot, anything
   else WAIT (the option itself then advances and fossilizes, as the policies do). It records the
   observation, the option, the per-head masks and the discounted return from there.
2. :func:`clone_into` fits the new model's policy to them: the masked log-likelihood of the
   teacher's options and the critic's squared error to the returns (a critic left at random would
   tear the clone apart in PPO's first updates), full-batch Adam, seeded.

PPO then trains from the clone as from any start. Plain supervised steps before ``learn``: a
resumed run never repeats them (it loads its checkpoint), so resume stays exact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from esper_env.settings import EnvSettings


def initialize_policy(
    model: Any, algo: str, settings: EnvSettings, steps: int, seed: int, gamma: float, out: Path
) -> None:
    """Start a new model of ``algo`` as its record asks: cloned from its ``warm_start`` policy (one
    teacher episode per 50 of the run's ``steps``, at most ``warm_start_episodes``; the fit goes to
    ``out/warm_start.json``), or with its ``wait_prior`` on the WAIT logit, or as SB3 made it."""
    from esper_agents.common.options import set_wait_prior
    from esper_agents.online.algorithms import get_online_algorithm
    from esper_agents.online.envs import make_online_env

    record = get_online_algorithm(algo)
    if record.warm_start:
        teacher = resolve_teacher(record.warm_start, settings)
        episodes = min(record.warm_start_episodes, max(1, steps // 50))
        data = teacher_decisions(algo, settings, teacher, episodes, seed=seed * 1000, gamma=gamma)
        fit = clone_into(model, data, seed=seed)
        record_fit = {
            "teacher": teacher,
            "episodes": episodes,
            "decisions": len(data["actions"]),
            **fit,
        }
        (out / "warm_start.json").write_text(json.dumps(record_fit) + "\n")
    elif record.wait_prior:
        probe = make_online_env(algo, settings)  # the blueprints the host supports, read at a reset
        try:
            probe.reset(seed=seed)
            slots = int(model.action_space.nvec[0])
            grows = int(probe.get_wrapper_attr("action_masks")()[slots:].sum()) - 1
        finally:
            probe.close()
        set_wait_prior(model.policy.action_net, model.action_space, record.wait_prior, grows)


__all__ = ["clone_into", "initialize_policy", "resolve_teacher", "teacher_decisions"]


def resolve_teacher(warm_start: str, settings: EnvSettings) -> str:
    """The behavior policy ``warm_start`` names: itself, or for
    :data:`~esper_agents.online.algorithms.BEST_HEURISTIC` the heuristic of the reference registry's
    entry for ``settings`` (its env, preset, fidelity, episode length and distribution), else
    :data:`~esper_agents.online.algorithms.FALLBACK_TEACHER`."""
    from esper_agents.online.algorithms import BEST_HEURISTIC, FALLBACK_TEACHER

    if warm_start != BEST_HEURISTIC:
        return warm_start
    try:
        return settings.reference_scores().heuristic_policy
    except LookupError:
        return FALLBACK_TEACHER


def teacher_decisions(
    algo: str, settings: EnvSettings, policy_id: str, episodes: int, seed: int, gamma: float
) -> dict[str, np.ndarray]:
    """``obs``, ``actions``, ``masks`` and ``returns`` of ``episodes`` greedy episodes of ``policy_id``
    in ``algo``'s env stack (reset seeds ``seed, seed + 1, ...``)."""
    from esper_agents.online.envs import make_online_env
    from esper_agents.policies.registry import get_policy
    from esper_env.lifecycle import Op
    from esper_env.wrappers import CompactActions

    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"warm-start episodes must be a positive integer, got {episodes!r}")
    env = make_online_env(algo, settings)
    options = env.get_wrapper_attr("grow")
    wait = env.get_wrapper_attr("wait")
    base = env.unwrapped
    compact = CompactActions(base)
    teacher = get_policy(policy_id, env=base)
    n_masks = int(env.get_wrapper_attr("n_actions"))
    obs_out, act_out, mask_out, ret_out = [], [], [], []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            rewards, done = [], False
            while not done:
                features = obs[:-n_masks]
                choice = compact.actions[
                    int(np.argmax(teacher.greedy_probs(features, compact.action_masks())))
                ]
                mask = env.get_wrapper_attr("action_masks")()
                if choice.op == Op.GERMINATE:
                    action = options(choice.slot, base.blueprints[choice.blueprint])
                else:  # WAIT ignores the slot: label it with an allowed one, which the masks keep likely
                    action = np.array([int(np.argmax(mask[: base.num_slots])), wait[1]])
                obs_out.append(obs)
                act_out.append(action)
                mask_out.append(mask)
                obs, reward, terminated, truncated, _ = env.step(action)
                rewards.append(float(reward))
                done = terminated or truncated
            returns, g = [], 0.0
            for r in reversed(rewards):
                g = r + gamma * g
                returns.append(g)
            ret_out += returns[::-1]
    finally:
        env.close()
    return {
        "obs": np.asarray(obs_out, dtype=np.float32),
        "actions": np.asarray(act_out, dtype=np.int64),
        "masks": np.asarray(mask_out, dtype=bool),
        "returns": np.asarray(ret_out, dtype=np.float32),
    }


def clone_into(
    model: Any, data: dict[str, np.ndarray], steps: int = 300, lr: float = 1e-3, seed: int = 0
) -> dict[str, float]:
    """Fit ``model``'s policy (a MaskablePPO policy) to ``data`` from :func:`teacher_decisions`:
    ``steps`` full-batch Adam steps on the negative masked log-likelihood plus the value error.
    Returns the final losses and the clone's greedy agreement with the teacher."""
    import torch

    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"warm-start steps must be a positive integer, got {steps!r}")
    policy = model.policy
    device = policy.device
    obs = torch.as_tensor(data["obs"], device=device)
    actions = torch.as_tensor(data["actions"], device=device)
    masks = torch.as_tensor(data["masks"], device=device)
    returns = torch.as_tensor(data["returns"], device=device)
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
    policy.set_training_mode(True)
    for _ in range(steps):
        values, log_prob, _ = policy.evaluate_actions(obs, actions, action_masks=masks)
        nll = -log_prob.mean()
        value_loss = torch.nn.functional.mse_loss(values.flatten(), returns)
        optimizer.zero_grad()
        (nll + 0.5 * value_loss).backward()
        optimizer.step()
    policy.set_training_mode(False)
    with torch.no_grad():
        greedy, _ = model.predict(data["obs"], deterministic=True, action_masks=data["masks"])
    agree = float(np.mean(np.all(greedy == data["actions"], axis=1)))
    return {"nll": float(nll.detach()), "value_loss": float(value_loss.detach()), "agreement": agree}
