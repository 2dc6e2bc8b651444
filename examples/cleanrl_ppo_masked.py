"""PPO with action masks on the fast tier's vector envs, in one CleanRL-style file (after cleanrl/ppo.py).

    python examples/cleanrl_ppo_masked.py --total-timesteps 20000 --num-envs 4 --num-steps 64
    tensorboard --logdir runs/cleanrl_ppo_masked

It trains on ``Esper-Micro-v3``'s training instances (``TRAIN_SPLIT``: a task instance drawn at every
reset) and scores the greedy masked policy on held-out instances (``HELDOUT_SPLIT.start_level + i``,
reset seed ``1000 + i``, as ``esper bench --suite micro`` does) before training, every
``--eval-every`` updates and at the end. ``CompactActions`` makes the action space ``Discrete(64)``
with an exact boolean mask in ``info["action_mask"]``; masked logits are ``-1e8``, so an illegal
action is never sampled.

Gymnasium 1.0's vector envs reset an env on the step *after* it ends ("next-step" autoreset): that
step ignores the action, returns the reset observation, reward 0 and the reset info (with the new
episode's mask). Those transitions are not the agent's, so they are kept out of the loss
(``valid = 1 - dones``), and GAE does not bootstrap across them.

Writes, under ``--out`` (default ``runs/cleanrl_ppo_masked/<exp-name>__<seed>``): TensorBoard
scalars (charts/episodic_return, charts/episodic_score, charts/episodic_length, charts/SPS,
charts/learning_rate, charts/illegal_actions (illegal actions executed so far: always 0),
losses/value_loss, losses/policy_loss, losses/entropy, losses/approx_kl, losses/old_approx_kl,
losses/clipfrac, losses/explained_variance, eval/score) and ``eval.csv``
(global_step, eval mean score, its standard deviation). Prints a JSON line per evaluation, then the
mean final accuracies of the last one. The score is the env's benchmark score (``info["score"]``:
final validation accuracy less the rent paid for growth; a fraction, 1 = 100 points).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions.categorical import Categorical
from torch.utils.tensorboard import SummaryWriter

import esper_env  # noqa: F401  (registers the Esper ids)
from esper_env.instances import HELDOUT_SPLIT, TRAIN_SPLIT
from esper_env.wrappers import CompactActions


def arg(default: Any, help_: str) -> Any:
    """A field of Args with its --help text."""
    return field(default=default, metadata={"help": help_})


@dataclass
class Args:
    exp_name: str = arg("ppo_masked", "the name of this experiment")
    seed: int = arg(1, "seed of the experiment (python, numpy, torch, env resets)")
    torch_deterministic: bool = arg(True, "sets torch.backends.cudnn.deterministic")
    threads: int = arg(1, "torch CPU threads (1: fastest for these small networks on a shared machine)")
    cuda: bool = arg(False, "train the agent on CUDA if available (the small MLP is fastest on the CPU)")
    out: str = arg("", "run directory (default: runs/cleanrl_ppo_masked/<exp-name>__<seed>)")
    env_id: str = arg("Esper-Micro-v3", "the environment id (one with an instance distribution)")
    total_timesteps: int = arg(20000, "env steps of all envs together")
    learning_rate: float = arg(1e-3, "Adam's learning rate (2.5e-4 barely moves the policy in 20,000 steps)")
    num_envs: int = arg(4, "parallel envs")
    async_envs: bool = arg(False, "one process per env (AsyncVectorEnv) instead of SyncVectorEnv")
    num_steps: int = arg(64, "steps per env per rollout")
    anneal_lr: bool = arg(True, "anneal the learning rate linearly to 0")
    gamma: float = arg(0.99, "the discount factor")
    gae_lambda: float = arg(0.95, "the lambda of generalized advantage estimation")
    num_minibatches: int = arg(4, "minibatches per epoch")
    update_epochs: int = arg(4, "epochs per update")
    norm_adv: bool = arg(True, "normalize the advantages per minibatch")
    clip_coef: float = arg(0.2, "the surrogate clipping coefficient")
    clip_vloss: bool = arg(True, "clip the value loss as in the PPO paper")
    ent_coef: float = arg(0.01, "the entropy coefficient")
    vf_coef: float = arg(0.5, "the value function coefficient")
    max_grad_norm: float = arg(0.5, "the maximum gradient norm")
    target_kl: float | None = arg(None, "stop the epochs of an update past this approximate KL")
    eval_episodes: int = arg(20, "held-out instances scored per evaluation (one greedy episode each)")
    eval_every: int = arg(10, "evaluate every this many updates (0: only before and after training)")


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for f in dataclasses.fields(Args):
        flag, help_ = "--" + f.name.replace("_", "-"), f.metadata["help"]
        if isinstance(f.default, bool):
            parser.add_argument(flag, default=f.default, action=argparse.BooleanOptionalAction, help=help_)
        else:
            kind = float if f.name == "target_kl" else type(f.default)
            parser.add_argument(flag, type=kind, default=f.default, help=f"{help_} (default {f.default})")
    return Args(**vars(parser.parse_args()))


def make_env(env_id: str, start_level: int, num_levels: int) -> Any:
    def thunk() -> gym.Env:
        env = gym.make(env_id, start_level=start_level, num_levels=num_levels)
        return CompactActions(env)  # Discrete(64), info["action_mask"] exact

    return thunk


def layer_init(layer: nn.Linear, std: float = np.sqrt(2), bias_const: float = 0.0) -> nn.Linear:
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


class Agent(nn.Module):
    def __init__(self, obs_dim: int, n_actions: int) -> None:
        super().__init__()
        self.critic = nn.Sequential(
            layer_init(nn.Linear(obs_dim, 64)), nn.Tanh(),
            layer_init(nn.Linear(64, 64)), nn.Tanh(),
            layer_init(nn.Linear(64, 1), std=1.0),
        )  # fmt: skip
        self.actor = nn.Sequential(
            layer_init(nn.Linear(obs_dim, 64)), nn.Tanh(),
            layer_init(nn.Linear(64, 64)), nn.Tanh(),
            layer_init(nn.Linear(64, n_actions), std=0.01),
        )  # fmt: skip

    def get_value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x)

    def get_action_and_value(
        self, x: torch.Tensor, mask: torch.Tensor, action: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        # Illegal actions get a logit of -1e8: probability 0, and no NaN in the entropy.
        logits = torch.where(mask, self.actor(x), torch.tensor(-1e8, device=x.device))
        probs = Categorical(logits=logits)
        if action is None:
            action = probs.sample()
        return action, probs.log_prob(action), probs.entropy(), self.critic(x)


def evaluate(agent: Agent, args: Args, device: torch.device) -> tuple[list[float], list[dict[str, Any]]]:
    """Greedy masked episodes on held-out instances ``HELDOUT_SPLIT.start_level + i``, seeds ``1000 + i``."""
    env = make_env(args.env_id, HELDOUT_SPLIT.start_level, HELDOUT_SPLIT.num_levels)()
    scores, finals = [], []
    for i in range(args.eval_episodes):
        obs, info = env.reset(seed=1000 + i, options={"instance": HELDOUT_SPLIT.start_level + i})
        done = False
        while not done:
            with torch.no_grad():
                x = torch.as_tensor(obs, dtype=torch.float32, device=device)[None]
                mask = torch.as_tensor(info["action_mask"], device=device)[None]
                logits = torch.where(mask, agent.actor(x), torch.tensor(-1e8, device=device))
            obs, _, terminated, truncated, info = env.step(int(logits.argmax(1).item()))
            done = terminated or truncated
        scores.append(float(info["score"]))
        finals.append(info)
    env.close()
    return scores, finals


def main() -> None:
    args = parse_args()
    batch_size = args.num_envs * args.num_steps
    minibatch_size = batch_size // args.num_minibatches
    num_iterations = max(1, args.total_timesteps // batch_size)
    run_name = f"{args.exp_name}__{args.seed}"
    out = Path(args.out or f"runs/cleanrl_ppo_masked/{run_name}")
    writer = SummaryWriter(str(out))
    writer.add_text(
        "hyperparameters",
        "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in vars(args).items()),
    )

    # Seeding: python, numpy, torch; the envs are seeded by their first reset (seed + i for env i)
    # and draw each later episode's instance from their own generators.
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    thunks = [make_env(args.env_id, TRAIN_SPLIT.start_level, TRAIN_SPLIT.num_levels)] * args.num_envs
    envs = gym.vector.AsyncVectorEnv(thunks) if args.async_envs else gym.vector.SyncVectorEnv(thunks)
    assert isinstance(envs.single_action_space, gym.spaces.Discrete), "only discrete actions are supported"
    n_actions = int(envs.single_action_space.n)
    obs_dim = int(np.prod(envs.single_observation_space.shape))

    agent = Agent(obs_dim, n_actions).to(device)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)

    # Rollout storage.
    obs = torch.zeros((args.num_steps, args.num_envs, obs_dim), device=device)
    masks = torch.zeros((args.num_steps, args.num_envs, n_actions), dtype=torch.bool, device=device)
    actions = torch.zeros((args.num_steps, args.num_envs), dtype=torch.long, device=device)
    logprobs = torch.zeros((args.num_steps, args.num_envs), device=device)
    rewards = torch.zeros((args.num_steps, args.num_envs), device=device)
    dones = torch.zeros((args.num_steps, args.num_envs), device=device)
    values = torch.zeros((args.num_steps, args.num_envs), device=device)

    csv_path = out / "eval.csv"
    with csv_path.open("w", newline="") as f:
        csv.writer(f).writerow(["global_step", "eval_score_mean", "eval_score_std"])

    def run_eval(global_step: int) -> tuple[float, list[dict[str, Any]]]:
        scores, finals = evaluate(agent, args, device)
        mean = float(np.mean(scores))
        writer.add_scalar("eval/score", mean, global_step)
        with csv_path.open("a", newline="") as f:
            csv.writer(f).writerow([global_step, f"{mean:.6f}", f"{float(np.std(scores)):.6f}"])
        print(json.dumps({"global_step": global_step, "eval_score_mean": mean, "eval_episodes": len(scores)}))
        return mean, finals

    run_eval(0)
    global_step = 0
    start_time = time.time()
    next_obs_np, infos = envs.reset(seed=args.seed)
    next_obs = torch.as_tensor(next_obs_np, dtype=torch.float32, device=device)
    next_mask = torch.as_tensor(infos["action_mask"], device=device)
    next_done = torch.zeros(args.num_envs, device=device)
    illegal_actions = 0

    for iteration in range(1, num_iterations + 1):
        if args.anneal_lr:
            frac = 1.0 - (iteration - 1.0) / num_iterations
            optimizer.param_groups[0]["lr"] = frac * args.learning_rate

        for step in range(args.num_steps):
            global_step += args.num_envs
            obs[step], masks[step], dones[step] = next_obs, next_mask, next_done

            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs, next_mask)
                values[step] = value.flatten()
            actions[step], logprobs[step] = action, logprob

            next_obs_np, reward, terminations, truncations, infos = envs.step(action.cpu().numpy())
            next_done_np = np.logical_or(terminations, truncations)
            rewards[step] = torch.as_tensor(reward, dtype=torch.float32, device=device)
            next_obs = torch.as_tensor(next_obs_np, dtype=torch.float32, device=device)
            # After an episode's last step this is the (unused) mask of its final state; on the
            # autoreset step that follows, the reset info's mask of the new episode.
            next_mask = torch.as_tensor(infos["action_mask"], device=device)
            next_done = torch.as_tensor(next_done_np, dtype=torch.float32, device=device)

            # A wrong mask would show here (the autoreset steps carry no "action_valid").
            if "action_valid" in infos:
                illegal_actions += int(np.sum(infos["_action_valid"] & ~infos["action_valid"]))

            # With next-step autoreset, the step that ends an episode returns its final info.
            for i in np.flatnonzero(next_done_np):
                writer.add_scalar("charts/episodic_return", infos["episode_return"][i], global_step)
                writer.add_scalar("charts/episodic_length", infos["episode_length"][i], global_step)
                writer.add_scalar("charts/episodic_score", infos["score"][i], global_step)

        # Generalized advantage estimation; an episode's last transition does not bootstrap.
        with torch.no_grad():
            next_value = agent.get_value(next_obs).reshape(1, -1)
            advantages = torch.zeros_like(rewards)
            lastgaelam = 0
            for t in reversed(range(args.num_steps)):
                if t == args.num_steps - 1:
                    nextnonterminal, nextvalues = 1.0 - next_done, next_value
                else:
                    nextnonterminal, nextvalues = 1.0 - dones[t + 1], values[t + 1]
                delta = rewards[t] + args.gamma * nextvalues * nextnonterminal - values[t]
                advantages[t] = lastgaelam = (
                    delta + args.gamma * args.gae_lambda * nextnonterminal * lastgaelam
                )
            returns = advantages + values

        # Flatten the batch. `valid` drops the autoreset steps (their observation is a final one).
        b_obs = obs.reshape((-1, obs_dim))
        b_masks = masks.reshape((-1, n_actions))
        b_logprobs, b_actions = logprobs.reshape(-1), actions.reshape(-1)
        b_advantages, b_returns, b_values = advantages.reshape(-1), returns.reshape(-1), values.reshape(-1)
        b_valid = 1.0 - dones.reshape(-1)

        def masked_mean(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
            return (x * valid).sum() / valid.sum().clamp(min=1.0)

        # Optimize the policy and value network.
        b_inds = np.arange(batch_size)
        clipfracs = []
        for _epoch in range(args.update_epochs):
            np.random.shuffle(b_inds)
            for start in range(0, batch_size, minibatch_size):
                mb = b_inds[start : start + minibatch_size]
                valid = b_valid[mb]
                _, newlogprob, entropy, newvalue = agent.get_action_and_value(
                    b_obs[mb], b_masks[mb], b_actions[mb]
                )
                logratio = newlogprob - b_logprobs[mb]
                ratio = logratio.exp()

                with torch.no_grad():
                    # http://joschu.net/blog/kl-approx.html
                    old_approx_kl = masked_mean(-logratio, valid)
                    approx_kl = masked_mean((ratio - 1) - logratio, valid)
                    clipfracs.append(
                        masked_mean(((ratio - 1.0).abs() > args.clip_coef).float(), valid).item()
                    )

                mb_advantages = b_advantages[mb]
                if args.norm_adv:
                    mean = masked_mean(mb_advantages, valid)
                    std = masked_mean((mb_advantages - mean) ** 2, valid).sqrt()
                    mb_advantages = (mb_advantages - mean) / (std + 1e-8)

                # Policy loss
                pg_loss1 = -mb_advantages * ratio
                pg_loss2 = -mb_advantages * torch.clamp(ratio, 1 - args.clip_coef, 1 + args.clip_coef)
                pg_loss = masked_mean(torch.max(pg_loss1, pg_loss2), valid)

                # Value loss
                newvalue = newvalue.view(-1)
                if args.clip_vloss:
                    v_loss_unclipped = (newvalue - b_returns[mb]) ** 2
                    v_clipped = b_values[mb] + torch.clamp(
                        newvalue - b_values[mb], -args.clip_coef, args.clip_coef
                    )
                    v_loss_clipped = (v_clipped - b_returns[mb]) ** 2
                    v_loss = 0.5 * masked_mean(torch.max(v_loss_unclipped, v_loss_clipped), valid)
                else:
                    v_loss = 0.5 * masked_mean((newvalue - b_returns[mb]) ** 2, valid)

                entropy_loss = masked_mean(entropy, valid)
                loss = pg_loss - args.ent_coef * entropy_loss + v_loss * args.vf_coef

                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()

            if args.target_kl is not None and approx_kl > args.target_kl:
                break

        keep = b_valid.bool()
        y_pred, y_true = b_values[keep].cpu().numpy(), b_returns[keep].cpu().numpy()
        var_y = np.var(y_true)
        explained_var = np.nan if var_y == 0 else 1 - np.var(y_true - y_pred) / var_y

        writer.add_scalar("charts/learning_rate", optimizer.param_groups[0]["lr"], global_step)
        writer.add_scalar("losses/value_loss", v_loss.item(), global_step)
        writer.add_scalar("losses/policy_loss", pg_loss.item(), global_step)
        writer.add_scalar("losses/entropy", entropy_loss.item(), global_step)
        writer.add_scalar("losses/old_approx_kl", old_approx_kl.item(), global_step)
        writer.add_scalar("losses/approx_kl", approx_kl.item(), global_step)
        writer.add_scalar("losses/clipfrac", np.mean(clipfracs), global_step)
        writer.add_scalar("losses/explained_variance", explained_var, global_step)
        writer.add_scalar("charts/illegal_actions", illegal_actions, global_step)
        writer.add_scalar("charts/SPS", int(global_step / (time.time() - start_time)), global_step)

        if args.eval_every and iteration % args.eval_every == 0 and iteration != num_iterations:
            run_eval(global_step)

    envs.close()
    print(json.dumps({"global_step": global_step, "illegal_actions": illegal_actions}))
    _, finals = run_eval(global_step)
    writer.close()
    val = float(np.mean([info["final_val_accuracy"] for info in finals]))
    test = float(np.mean([info["test_accuracy"] for info in finals]))
    print(f"final_val_accuracy={val:.4f} test_accuracy={test:.4f}")


if __name__ == "__main__":
    main()
