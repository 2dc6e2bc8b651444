"""Steps per second of the online RL training loop against the env alone, measured in the same run.

    python benchmarks/online_throughput.py [--fidelity tiny] [--config impaired] [--steps 300]
        [--n-envs 2] [--algos ...] [--seed 0] [--device auto] [--out DIR]

For each online algorithm (``--algos``, default all of ``ONLINE_ALGORITHMS``), on two copies of
the VecEnv ``make_vec_env`` builds for it (``--n-envs`` subprocess envs, the same env kwargs and
seed), prints (and writes to OUT/online_throughput_FIDELITY_CONFIG.json):

* env alone: env steps/s (all envs together) of one copy stepped with random legal actions, read
  from the legality each observation carries and drawn by one seeded NumPy generator: a uniform
  choice among the legal ``CompactActions`` indices (for the factored algorithm the same canonical
  table, each entry legal when its (op, slot) pair is in the appended legality, sent as a factored
  array). Every algorithm's env thus gets the same actions and, with the same seed, the same
  episodes; seeds do germinate, blend, train and get pruned, unlike an always-WAIT loop;
* online loop: env steps/s of ``model.learn`` on the other copy, the model built as
  ``train_online`` builds it (``model_class``, the algorithm's policy and policy kwargs,
  ``PPO_DEFAULTS``; no callbacks, TensorBoard or checkpoints);
* the ratio online / env alone, and the difference in time per env step (policy inference,
  rollout buffer and PPO updates, plus whatever the policy's actions cost the env more or less
  than random legal ones);
* the env's own steps/s inside the loop (the policy's actions, timed around the VecEnv's step) and
  how the loop's time splits: env steps / policy inference + rollout buffer / PPO updates.

``--steps`` is rounded up to whole rollouts (``n_steps * n_envs``), since ``learn`` runs whole
rollouts. Both measures exclude process start-up and model construction, and each first runs one
rollout untimed (the env: random legal steps after a seeded reset; the loop: one ``learn`` of one
rollout and its update), so both time the same env-step indices. The two then alternate one
rollout at a time (random steps, then ``learn`` of one rollout), so background load slows both
alike. Envs train on one torch thread each (the env's ``num_threads=1``); the model runs in this
process with torch's default threads.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

import numpy as np
import torch
from _common import ENV_ID, add_preset_arguments, add_results_argument, provenance

from esper_agents.cli_options import DEVICES, positive_int
from esper_agents.online.algorithms import ONLINE_ALGORITHMS, PPO_DEFAULTS, get_online_algorithm, model_class
from esper_agents.online.envs import make_vec_env
from esper_env.configs import get_fidelity
from esper_env.settings import EnvSettings
from esper_env.wrappers import compact_action_table


class RandomLegalActions:
    """Uniform random legal actions for a VecEnv of ``algo``, from the legality in its observations."""

    def __init__(self, algo: str, venv: Any, seed: int) -> None:
        self.factored = get_online_algorithm(algo).action_set == "factored"
        self.rng = np.random.default_rng(seed)
        if self.factored:
            self.legal_shape = tuple(venv.get_attr("legal_shape")[0])
            table = compact_action_table(self.legal_shape[1])
            self.op_slot = np.array([(a.op, a.slot) for a in table])
            self.arrays = np.stack([a.to_array() for a in table])
            self.n_tail = self.legal_shape[0] * self.legal_shape[1]
        else:
            self.n_tail = int(venv.action_space.n)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        tail = np.asarray(obs)[:, -self.n_tail :] > 0.5
        if self.factored:  # legality of each canonical action: its (op, slot) pair's
            legal = tail.reshape(len(tail), *self.legal_shape)
            masks = legal[:, self.op_slot[:, 0], self.op_slot[:, 1]]
        else:
            masks = tail
        chosen = np.array([self.rng.choice(np.flatnonzero(m)) for m in masks])
        return self.arrays[chosen] if self.factored else chosen


class EnvAlone:
    """The VecEnv of ``algo`` stepped with random legal actions, after a seeded reset and ``warmup``
    untimed env steps; :meth:`run` returns the seconds of ``steps`` more."""

    def __init__(self, algo: str, n_envs: int, seed: int, env_kwargs: dict[str, Any], warmup: int) -> None:
        self.venv = make_vec_env(algo, EnvSettings(ENV_ID, **env_kwargs), n_envs=n_envs, seed=seed)
        self.policy = RandomLegalActions(algo, self.venv, seed)
        self.venv.seed(seed)  # env i resets with seed + i, as the model's seed makes it in the online loop
        self.obs = self.venv.reset()
        self.run(warmup)

    def run(self, steps: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps // self.venv.num_envs):
            self.obs = self.venv.step(self.policy(self.obs))[0]
        return time.perf_counter() - t0

    def close(self) -> None:
        self.venv.close()


class OnlineLoop:
    """The model of ``algo`` (built as ``train_online`` builds it) on its VecEnv, after one untimed
    ``learn`` of ``warmup`` env steps; :meth:`run` times ``learn(steps)`` and its parts."""

    def __init__(self, algo: str, n_envs: int, seed: int, env_kwargs: dict[str, Any], device: str,
                 warmup: int) -> None:  # fmt: skip
        from stable_baselines3.common.callbacks import BaseCallback
        from stable_baselines3.common.vec_env import VecEnvWrapper

        class StepTimer(VecEnvWrapper):
            """The seconds spent in the envs' ``step`` (the policy's actions), transparently."""

            seconds = 0.0

            def reset(self) -> Any:
                return self.venv.reset()

            def step_async(self, actions: np.ndarray) -> None:
                self.t0 = time.perf_counter()
                self.venv.step_async(actions)

            def step_wait(self) -> Any:
                out = self.venv.step_wait()
                self.seconds += time.perf_counter() - self.t0
                return out

        class RolloutTimer(BaseCallback):
            """The seconds spent collecting rollouts (the rest of ``learn`` is PPO updates)."""

            seconds = 0.0

            def _on_rollout_start(self) -> None:
                self.t0 = time.perf_counter()

            def _on_rollout_end(self) -> None:
                self.seconds += time.perf_counter() - self.t0

            def _on_step(self) -> bool:
                return True

        record = get_online_algorithm(algo)
        self.venv = StepTimer(make_vec_env(algo, EnvSettings(ENV_ID, **env_kwargs), n_envs=n_envs, seed=seed))
        self.model = model_class(algo)(record.policy, self.venv, seed=seed, device=device, verbose=0,
                                       policy_kwargs=dict(record.policy_kwargs), **PPO_DEFAULTS)  # fmt: skip
        self.timer = RolloutTimer()
        self.model.learn(warmup)

    def run(self, steps: int) -> dict[str, float]:
        before, env_before, rollout_before = self.model.num_timesteps, self.venv.seconds, self.timer.seconds
        t0 = time.perf_counter()
        self.model.learn(steps, callback=self.timer, reset_num_timesteps=False)
        return {
            "steps": self.model.num_timesteps - before,
            "seconds": time.perf_counter() - t0,
            "env_seconds": self.venv.seconds - env_before,
            "rollout_seconds": self.timer.seconds - rollout_before,
        }

    def close(self) -> None:
        self.venv.close()


def measure(algo: str, args: argparse.Namespace, env_kwargs: dict[str, Any], rollout: int,
            rounds: int) -> dict[str, float]:  # fmt: skip
    """Env alone and online loop of ``algo``, interleaved one rollout at a time so that background
    load slows both alike."""
    env = EnvAlone(algo, args.n_envs, args.seed, env_kwargs, rollout)
    try:
        loop = OnlineLoop(algo, args.n_envs, args.seed, env_kwargs, args.device, rollout)
        try:
            env_seconds, parts = 0.0, []
            for _ in range(rounds):
                env_seconds += env.run(rollout)
                parts.append(loop.run(rollout))
        finally:
            loop.close()
    finally:
        env.close()
    steps = rounds * rollout
    total = {k: sum(p[k] for p in parts) for k in parts[0]}
    assert total["steps"] == steps, (algo, total["steps"], steps)
    online, seconds = steps / total["seconds"], total["seconds"]
    return {
        "env_steps_per_s": steps / env_seconds,
        "online_steps_per_s": online,
        "online_over_env": env_seconds / seconds,
        "overhead_ms_per_step": (seconds - env_seconds) / steps * 1000,
        "env_in_loop_steps_per_s": steps / total["env_seconds"],
        "env_share": total["env_seconds"] / seconds,
        "inference_buffer_share": (total["rollout_seconds"] - total["env_seconds"]) / seconds,
        "update_share": 1 - total["rollout_seconds"] / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    add_preset_arguments(parser, fidelity="tiny")
    parser.set_defaults(config="impaired")
    parser.add_argument("--algos", nargs="+", default=list(ONLINE_ALGORITHMS), choices=list(ONLINE_ALGORITHMS),
                        metavar="ALGO", help="online algorithms, of: %(choices)s")  # fmt: skip
    parser.add_argument("--steps", type=positive_int, default=300,
                        help="measured env steps per algorithm and measure, all envs together (whole rollouts)")  # fmt: skip
    parser.add_argument(
        "--n-envs", type=positive_int, default=2, help="envs of the VecEnv (subprocesses when > 1)"
    )
    parser.add_argument("--seed", type=int, default=0, help="RNG seed (envs, actions, model)")
    parser.add_argument("--device", default="auto", choices=DEVICES, help="the model's torch device")
    add_results_argument(parser)
    args = parser.parse_args()
    fidelity = get_fidelity(args.fidelity).name
    env_kwargs = {"config": args.config, "fidelity": fidelity}
    rollout = PPO_DEFAULTS["n_steps"] * args.n_envs
    steps = math.ceil(args.steps / rollout) * rollout

    rows: dict[str, dict[str, float]] = {}
    for algo in args.algos:
        rows[algo] = r = measure(algo, args, env_kwargs, rollout, steps // rollout)
        print(f"{algo}: env alone {r['env_steps_per_s']:.2f} steps/s, online {r['online_steps_per_s']:.2f} "
              "steps/s", flush=True)  # fmt: skip

    result = {
        "provenance": provenance(__file__, None, ENV_ID, torch.get_num_threads()),
        "env_id": ENV_ID,
        "fidelity": fidelity,
        "config": args.config,
        "env_kwargs": env_kwargs,
        "n_envs": args.n_envs,
        "seed": args.seed,
        "steps": steps,
        "warmup_steps": rollout,
        "rounds": steps // rollout,
        "ppo": PPO_DEFAULTS,
        "threads_in_process": torch.get_num_threads(),
        "algorithms": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"online_throughput_{fidelity}_{args.config}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n# Online loop throughput ({args.config}, {fidelity} fidelity, {args.n_envs} envs, "
          f"{steps} env steps after {rollout} warm-up, seed {args.seed})\n")  # fmt: skip
    print("| algorithm | env alone (random legal) | online loop | online / env | overhead per step | "
          "env inside the loop (its actions) | time in env / inference + buffer / update |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for algo, r in rows.items():
        print(f"| {algo} | {r['env_steps_per_s']:.2f} steps/s | {r['online_steps_per_s']:.2f} steps/s | "
              f"{r['online_over_env']:.3f}x | {r['overhead_ms_per_step']:+.0f} ms | "
              f"{r['env_in_loop_steps_per_s']:.2f} steps/s | {r['env_share']:.0%} / "
              f"{r['inference_buffer_share']:.0%} / {r['update_share']:.0%} |")  # fmt: skip
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
