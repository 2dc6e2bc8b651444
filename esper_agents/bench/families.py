"""The bench's agent families as one protocol: :class:`Family`, and :func:`family_of` an agent.

A family says how its agents are trained on a suite's budget (each training run of
:meth:`Suite.runs <esper_agents.bench.suites.Suite.runs>`, named ``<agent>`` or ``<agent>-seed<i>``
and seeded :meth:`Suite.run_seed <esper_agents.bench.suites.Suite.run_seed>`), how long that took, which env
stack they act in and how they act there (an :class:`~esper_agents.common.agents.Agent`), and
what an episode of theirs executed. The runner (:mod:`esper_agents.bench.runner`) chooses each
agent's family once and asks it; it never switches on family names.

* :class:`ScriptedFamily`: always-WAIT, random and the heuristic variants; no training.
* :class:`OfflineFamily`: d3rlpy learners trained ``offline_steps`` gradient steps on the pack.
* :class:`FittedQFamily`: fitted Q iteration over growth options
  (:mod:`esper_agents.offline.fitted_q`), fit on option episodes played on ``option_instances``
  training instances (collected once, before training, and shared by its training runs).
* :class:`OnlineFamily`: stable-baselines3 learners trained ``online_steps`` env steps on
  ``n_envs`` envs (``esper train-online``'s directories; a killed run resumes exactly, from
  checkpoints taken after the update with the whole resume state).

Loaded models are kept per process (the runner's workers evaluate many episodes each).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from esper_agents.bench.suites import Suite, agent_family, parse_run
from esper_agents.common.agents import Agent
from esper_agents.common.rollout import Episode
from esper_env.env import torch_threads

__all__ = [
    "FAMILY_IMPLEMENTATIONS", "Family", "FittedQFamily", "OfflineFamily", "OnlineFamily", "ScriptedFamily", "family_of",
]  # fmt: skip

_WAIT_INDEX = 0  # CompactActions index 0 is WAIT (checked in ScriptedFamily.make_agent)
_LOADED: dict[tuple[str, str], Any] = {}  # per process: models loaded once


class Family(Protocol):
    """What the runner asks of an agent family (see the module docstring)."""

    name: str
    #: The family trains on the suite's offline pack (the runner generates it first).
    needs_pack: bool

    def training_seeds(self, suite: Suite) -> dict[str, list[int]]:
        """Reset seeds its training uses besides the pack's, by source (none: ``{}``)."""

    def prepare(self, suite: Suite, out: Path, workers: int, log: Callable[[str], None]) -> None:
        """What its training runs share, made once before them in this process (or resumed)."""

    def train(self, suite: Suite, agent: str, out: Path, *, pack: Path | None, device: str, progress: bool,
              log: Callable[[str], None]) -> None:  # fmt: skip
        """Train ``agent`` into ``out`` (or resume it; a finished one returns at once)."""

    def training_seconds(self, agent: str, out: Path) -> float | None:
        """Wall seconds the agent's training took (None where unknown)."""

    def make_env(self, suite: Suite, agent: str, out: Path, device: str) -> Any:
        """The env stack ``agent`` is evaluated in (one torch thread; the suite's ``eval_settings``)."""

    def make_agent(self, agent: str, env: Any, out: Path, seed: int, device: str) -> Agent:
        """``agent`` acting greedily in ``env`` for the episode with reset seed ``seed``."""

    def executed(self, env: Any, episode: Episode) -> tuple[list[str], np.ndarray, int]:
        """The op name each step executed, the rewards and the number of illegal choices."""


class _MaskedFamily:
    """Agents on masked observations (:func:`~esper_agents.common.evaluation.make_eval_env`)."""

    name = ""
    needs_pack = False

    def training_seeds(self, suite: Suite) -> dict[str, list[int]]:
        return {}

    def prepare(self, suite: Suite, out: Path, workers: int, log: Callable[[str], None]) -> None:
        pass

    def action_set(self, agent: str, out: Path, device: str) -> str:
        return "compact"

    def make_env(self, suite: Suite, agent: str, out: Path, device: str) -> Any:
        from esper_agents.common.evaluation import make_eval_env

        settings = suite.eval_settings.replace(device=device, num_threads=1)
        return make_eval_env(settings, self.action_set(agent, out, device))

    def executed(self, env: Any, episode: Episode) -> tuple[list[str], np.ndarray, int]:
        from esper_agents.common.evaluation import action_names
        from esper_agents.common.rollout import logged_episode

        record, illegal = logged_episode(episode, env.n_actions)
        names = action_names(env.n_actions)
        return [names[int(a)] for a in record.actions], record.rewards, illegal


class ScriptedFamily(_MaskedFamily):
    """``wait``, ``random`` and ``heuristic:<variant>``: nothing to train."""

    name = "scripted"

    def train(self, suite: Suite, agent: str, out: Path, *, pack: Path | None, device: str, progress: bool,
              log: Callable[[str], None]) -> None:  # fmt: skip
        pass

    def training_seconds(self, agent: str, out: Path) -> float | None:
        return 0.0

    def make_agent(self, agent: str, env: Any, out: Path, seed: int, device: str) -> Agent:
        from esper_agents.common.agents import RandomAgent, as_agent, behavior_agent

        if agent == "wait":
            from esper_env.lifecycle import Op

            assert env.get_wrapper_attr("actions")[_WAIT_INDEX].op == Op.WAIT
            return as_agent(lambda obs: np.zeros(len(np.atleast_2d(obs)), dtype=np.int64))
        if agent == "random":
            return RandomAgent()  # reseeded with each evaluation seed: resumable and reproducible
        if agent.startswith("heuristic:"):
            return behavior_agent(agent.split(":", 1)[1], env)
        raise ValueError(
            f"unknown scripted agent {agent!r}; valid are: 'wait', 'random', 'heuristic:<variant>'"
        )


def _quiet_d3rlpy() -> None:
    """d3rlpy logs every config and epoch through structlog: keep its warnings only."""
    import logging

    import d3rlpy  # noqa: F401  (its import configures structlog; reconfigure after it)
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


class OfflineFamily(_MaskedFamily):
    """d3rlpy learners (BC, RWBC, CQL, IQL): ``offline_steps`` gradient steps on the suite's pack."""

    name = "offline"
    needs_pack = True

    def train(self, suite: Suite, agent: str, out: Path, *, pack: Path | None, device: str, progress: bool,
              log: Callable[[str], None]) -> None:  # fmt: skip
        from esper_agents.offline.datasets import load_pack
        from esper_agents.offline.train import train_offline

        algo, index = parse_run(agent)
        log(f"[{suite.name}] offline agent {agent}: {suite.offline_steps} gradient steps on the pack")
        assert pack is not None
        _quiet_d3rlpy()
        summary = out / "offline" / agent / "summary.json"
        if summary.exists() and json.loads(summary.read_text()).get("steps") == suite.offline_steps:
            return
        records, source = load_pack(pack)
        d3rlpy_device = "cuda:0" if device == "cuda" else "cpu:0"
        # One torch thread, like the env's default: torch's default (a thread per core) runs 15-25x
        # slower as soon as anything else shares the cores (measured: IQL, 100 steps, 6 s against 104 s).
        with torch_threads(1):
            train_offline(algo, records, suite.offline_steps, out / "offline" / agent, seed=suite.run_seed(index),
                          show_progress=progress, source=source, device=d3rlpy_device)  # fmt: skip

    def training_seconds(self, agent: str, out: Path) -> float | None:
        path = out / "offline" / agent / "summary.json"
        return json.loads(path.read_text()).get("seconds") if path.exists() else None

    def learner(self, agent: str, out: Path, device: str) -> Any:
        key = (str(out), agent)
        if key not in _LOADED:
            from esper_agents.offline.saved import load_agent
            from esper_agents.offline.train import AGENT_DIR

            path = out / "offline" / agent / AGENT_DIR
            _LOADED[key] = load_agent(path, device="cuda:0" if device == "cuda" else "cpu:0")
        return _LOADED[key]

    def action_set(self, agent: str, out: Path, device: str) -> str:
        from esper_agents.offline.evaluate import agent_action_set

        return agent_action_set(self.learner(agent, out, device))

    def make_agent(self, agent: str, env: Any, out: Path, seed: int, device: str) -> Agent:
        from esper_agents.common.agents import PredictorAgent

        return PredictorAgent(self.learner(agent, out, device).predict)


def _tensorboard_seconds(tb: Path) -> float | None:
    """Training time from TensorBoard event files: the sum of each file's first-to-last event
    span (one file per ``learn`` call, so a resumed run's pauses are not counted)."""
    try:
        from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    except ImportError:
        return None
    total, found = 0.0, False
    for path in sorted(tb.rglob("events.out.tfevents.*")):
        times = [e.wall_time for e in EventFileLoader(str(path)).Load()]
        if len(times) > 1:
            total, found = total + max(times) - min(times), True
    return total if found else None


def _raw_env(suite: Suite, device: str) -> Any:
    """The evaluation env with its own spaces (one torch thread): full factored actions."""
    return suite.eval_settings.replace(device=device, num_threads=1).make()


def _executed_ops(episode: Episode) -> tuple[list[str], np.ndarray, int]:
    from esper_env.lifecycle import Op

    return [Op(int(o)).name for o in episode.ops], episode.rewards, episode.illegal


class FittedQFamily:
    """Fitted Q iteration over growth options (:mod:`esper_agents.offline.fitted_q`)."""

    name = "fitted-q"
    needs_pack = False

    @staticmethod
    def _instances(suite: Suite) -> list[int]:
        start = suite.settings.start_level
        return [start + j for j in range(suite.option_instances)]

    @staticmethod
    def _data(out: Path) -> Path:
        return out / "fitted_q" / "options.jsonl"

    def training_seeds(self, suite: Suite) -> dict[str, list[int]]:
        return {"fitted-q": [suite.train_seed + j for j in range(suite.option_instances)]}

    def prepare(self, suite: Suite, out: Path, workers: int, log: Callable[[str], None]) -> None:
        import time

        from esper_agents.offline.fitted_q import collect

        started = time.perf_counter()
        settings = suite.settings.replace(device="cpu", num_threads=1)
        records = collect(settings, self._instances(suite), self._data(out), seed=suite.train_seed,
                          workers=workers, log=log)  # fmt: skip
        stamp = out / "fitted_q" / "collection.json"
        if not stamp.exists() or json.loads(stamp.read_text()).get("episodes") != len(records):
            seconds = time.perf_counter() - started
            if stamp.exists():  # a resumed or extended collection: add this part's time
                seconds += json.loads(stamp.read_text()).get("seconds", 0.0)
            stamp.write_text(json.dumps({"episodes": len(records), "seconds": seconds}) + "\n")

    def train(self, suite: Suite, agent: str, out: Path, *, pack: Path | None, device: str, progress: bool,
              log: Callable[[str], None]) -> None:  # fmt: skip
        from esper_agents.offline.fitted_q import OptionMenu, train_fitted_q

        _, index = parse_run(agent)
        summary = out / "fitted_q" / agent / "fitted_q.json"
        expected = suite.option_instances
        if summary.exists() and json.loads(summary.read_text()).get("instances") == expected:
            return
        wanted = set(self._instances(suite))
        names = {s.name for s in OptionMenu().schedules()}
        records = [
            r
            for r in map(json.loads, self._data(out).read_text().splitlines())
            if r["instance"] in wanted and r["option"] in names
        ]
        log(f"[{suite.name}] fitted-q agent {agent}: {len(records)} option episodes on {expected} instances")
        train_fitted_q(records, out / "fitted_q" / agent, seed=suite.run_seed(index), instances=expected)

    def training_seconds(self, agent: str, out: Path) -> float | None:
        # The fit only: the shared option data is like the offline pack, made once for every run
        # (its wall time is in OUT/fitted_q/collection.json).
        path = out / "fitted_q" / agent / "fitted_q.json"
        return json.loads(path.read_text()).get("seconds") if path.exists() else None

    def make_env(self, suite: Suite, agent: str, out: Path, device: str) -> Any:
        return _raw_env(suite, device)

    def make_agent(self, agent: str, env: Any, out: Path, seed: int, device: str) -> Agent:
        from esper_agents.offline.fitted_q import FittedQAgent, load_fitted_q

        key = (str(out), agent)
        if key not in _LOADED:
            _LOADED[key] = load_fitted_q(out / "fitted_q" / agent)
        return FittedQAgent(_LOADED[key], env)

    def executed(self, env: Any, episode: Episode) -> tuple[list[str], np.ndarray, int]:
        return _executed_ops(episode)


class OnlineFamily:
    """stable-baselines3 learners (MaskablePPO, RecurrentPPO, the masked recurrent PPO)."""

    name = "online"
    needs_pack = False

    def training_seeds(self, suite: Suite) -> dict[str, list[int]]:
        # The online envs' first resets (later episodes continue each env's RNG, with no reset seed).
        first = [suite.run_seed(i) for i in range(suite.train_seeds)]
        return {"online": sorted({s + e for s in first for e in range(suite.n_envs)})}

    def prepare(self, suite: Suite, out: Path, workers: int, log: Callable[[str], None]) -> None:
        pass

    def train(self, suite: Suite, agent: str, out: Path, *, pack: Path | None, device: str, progress: bool,
              log: Callable[[str], None]) -> None:  # fmt: skip
        from esper_agents.online.train import train_online

        algo, index = parse_run(agent)
        log(f"[{suite.name}] online agent {agent}: {suite.online_steps} env steps on {suite.n_envs} env(s)")
        train_online(
            algo, suite.online_steps, out / "online" / agent, suite.settings, n_envs=suite.n_envs,
            seed=suite.run_seed(index),
            checkpoint_every=suite.checkpoint_every, device=device, progress=progress,
        )  # fmt: skip

    def training_seconds(self, agent: str, out: Path) -> float | None:
        # A finished run (an earlier bench, or esper train-online) returns at once: TensorBoard's span.
        return _tensorboard_seconds(out / "online" / agent / "tb")

    def make_env(self, suite: Suite, agent: str, out: Path, device: str) -> Any:
        from esper_agents.online.envs import make_online_env

        return make_online_env(parse_run(agent)[0], suite.eval_settings.replace(device=device, num_threads=1))

    def make_agent(self, agent: str, env: Any, out: Path, seed: int, device: str) -> Agent:
        from esper_agents.online.evaluate import OnlineModelAgent
        from esper_agents.online.saved import load_online_model

        key = (str(out), agent)
        if key not in _LOADED:
            _LOADED[key] = load_online_model(out / "online" / agent / "model.zip", env, device=device)[1]
        return OnlineModelAgent(_LOADED[key], parse_run(agent)[0], env)

    def executed(self, env: Any, episode: Episode) -> tuple[list[str], np.ndarray, int]:
        return _executed_ops(episode)


#: One implementation per family name of :data:`esper_agents.bench.suites.FAMILIES`.
FAMILY_IMPLEMENTATIONS: dict[str, Family] = {
    f.name: f for f in (ScriptedFamily(), OfflineFamily(), FittedQFamily(), OnlineFamily())
}


def family_of(agent: str) -> Family:
    """The family of a bench agent or training run; an unknown name is a ``ValueError`` listing the valid ones."""
    return FAMILY_IMPLEMENTATIONS[agent_family(parse_run(agent)[0])]
