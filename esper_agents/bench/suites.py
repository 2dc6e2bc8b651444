"""The benchmark's suites and its agents: :data:`SUITES`, :data:`BENCH_AGENTS`, :func:`agent_family`.

A suite fixes everything the agents are compared on: the env (an
:class:`~esper_env.settings.EnvSettings`: id, preset, fidelity, episode length, reward); the evaluation seeds (apart from every training seed); and an equal budget per family:

* ``scripted`` agents (always-WAIT, random, the heuristic variants) need no training;
* ``offline`` agents (BC, RWBC, CQL, IQL) all train ``offline_steps`` gradient steps on the same
  pack, generated from the suite's ``pack`` matrix with reset seeds from ``train_seed``;
* ``online`` agents (MaskablePPO, RecurrentPPO, the masked recurrent PPO) all train
  ``online_steps`` env steps on ``n_envs`` envs seeded ``train_seed ..``.

On an id with a distribution of task instances (``Esper-Micro``) a suite may hold out instances:
``settings`` carries the training split (its ``start_level``/``num_levels``: the pack and the
online envs draw only those instances) and ``eval_split`` the held-out one. Evaluation episode
``i`` then runs in :attr:`Suite.eval_settings` (the suite's env on the held-out split) from reset
seed ``eval_seed + i`` with instance ``eval_split.start_level + i`` pinned
(``reset(options={"instance": ...})``): every agent meets the same held-out instances, each once,
and a suite whose two splits overlap is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from esper_agents.generation.spec import GenerationSpec, PolicyPlan
from esper_agents.offline.algorithms import ALGORITHMS as OFFLINE_ALGORITHMS
from esper_agents.offline.fitted_q import FITTED_Q_AGENTS
from esper_agents.online.algorithms import ONLINE_ALGORITHMS
from esper_agents.policies import DEFAULT_HEURISTIC, POLICIES
from esper_env.datasets import dataset_record
from esper_env.instances import HELDOUT_SPLIT, TRAIN_SPLIT, Split
from esper_env.settings import EnvSettings

__all__ = [
    "AGENT_NAMES", "BENCH_AGENTS", "FAMILIES", "SUITES", "SUITE_NAMES", "PackMatrix", "Suite", "agent_family", "get_suite",
    "parse_run", "run_name",
]  # fmt: skip

#: The heuristic variants the benchmark runs: the default, the original design's, and two tempos.
HEURISTIC_VARIANTS: tuple[str, ...] = (DEFAULT_HEURISTIC, "baseline", "aggressive", "conservative")
SCRIPTED_AGENTS: tuple[str, ...] = ("wait", "random", *(f"heuristic:{h}" for h in HEURISTIC_VARIANTS))
#: Every agent of the benchmark, in table order.
BENCH_AGENTS: tuple[str, ...] = (*SCRIPTED_AGENTS, *OFFLINE_ALGORITHMS, *ONLINE_ALGORITHMS)
#: Every agent a suite may hold: the bench's, and ``heuristic:<policy>`` for every behavior policy
#: (a suite may compare its agents with its pack's policies).
AGENT_NAMES: tuple[str, ...] = tuple(
    dict.fromkeys(
        (
            *SCRIPTED_AGENTS,
            *(f"heuristic:{p}" for p in POLICIES),
            *OFFLINE_ALGORITHMS,
            *FITTED_Q_AGENTS,
            *ONLINE_ALGORITHMS,
        )
    )
)
#: The agent families, in the order the runner trains them.
FAMILIES: tuple[str, ...] = ("scripted", "offline", "fitted-q", "online")
#: The agents a normalised score is anchored on (0 and 1).
WAIT_AGENT, HEURISTIC_AGENT = "wait", f"heuristic:{DEFAULT_HEURISTIC}"


def agent_family(agent: str) -> str:
    """The family of :data:`FAMILIES` of ``agent`` (any name of :data:`AGENT_NAMES`); an unknown
    name is a ``ValueError`` listing the valid ones."""
    if agent in OFFLINE_ALGORITHMS:
        return "offline"
    if agent in ONLINE_ALGORITHMS:
        return "online"
    if agent in FITTED_Q_AGENTS:
        return "fitted-q"
    if agent in AGENT_NAMES:
        return "scripted"
    raise ValueError(f"unknown agent {agent!r}; valid agents are: {', '.join(AGENT_NAMES)}")


_RUN_SUFFIX = "-seed"


def run_name(agent: str, train_index: int) -> str:
    """The name of training run ``train_index`` of ``agent``: the agent's own for the first (so a
    one-seed suite's directories are as they always were), ``<agent>-seed<i>`` for the others."""
    return agent if train_index == 0 else f"{agent}{_RUN_SUFFIX}{train_index}"


def parse_run(run: str) -> tuple[str, int]:
    """``(agent, train_index)`` of a run name of :func:`run_name`."""
    agent, sep, index = run.rpartition(_RUN_SUFFIX)
    if sep and index.isdigit() and int(index) > 0 and str(int(index)) == index:
        return agent, int(index)
    return run, 0


@dataclass(frozen=True)
class PackMatrix:
    """The generation matrix of a suite's offline pack (its one preset is the suite's)."""

    policies: tuple[str, ...]
    epsilons: tuple[float, ...]
    episodes_per_cell: int
    #: Per-policy epsilons and episode counts (``esper_agents.generation.spec.PolicyPlan``).
    overrides: tuple[tuple[str, PolicyPlan], ...] = ()


@dataclass(frozen=True)
class Suite:
    """One benchmark configuration (see the module docstring)."""

    name: str
    description: str
    #: Every env of the suite: the pack's, the online agents' and (without ``eval_split``) the evaluation's.
    settings: EnvSettings
    eval_episodes: int
    online_steps: int
    n_envs: int
    offline_steps: int
    pack: PackMatrix
    eval_seed: int = 1000
    train_seed: int = 0
    agents: tuple[str, ...] = BENCH_AGENTS
    #: Held-out instances the evaluation pins, one per episode (``None``: evaluate in ``settings``).
    eval_split: Split | None = None
    #: Training runs per trained agent, each with its own seed (:meth:`run_seed`); the report gives
    #: the spread across them. Scripted agents run once.
    train_seeds: int = 1
    #: The fitted-Q agents' data: training instances each played with every option of the menu
    #: (:func:`esper_agents.offline.fitted_q.collect`; 13 episodes per instance by default).
    option_instances: int = 0

    def __post_init__(self) -> None:
        if (
            isinstance(self.train_seeds, bool)
            or not isinstance(self.train_seeds, int)
            or self.train_seeds < 1
        ):
            raise ValueError(
                f"suite {self.name!r}: train_seeds must be a positive integer, got {self.train_seeds!r}"
            )
        for agent in self.agents:
            if agent_family(agent) == "fitted-q" and (
                isinstance(self.option_instances, bool)
                or not isinstance(self.option_instances, int)
                or self.option_instances < 1
            ):
                raise ValueError(
                    f"suite {self.name!r}: agent {agent!r} needs option_instances >= 1 (its training "
                    f"instances), got {self.option_instances!r}"
                )
        if self.eval_split is None:
            return
        env = self.settings
        if env.resolved_instances is None:
            raise ValueError(
                f"suite {self.name!r}: eval_split needs an env with an instance distribution, and "
                f"{env.env_id} has none (set settings.instances)"
            )
        training = Split(start_level=env.start_level, num_levels=env.num_levels)
        if training.overlaps(self.eval_split):
            raise ValueError(
                f"suite {self.name!r}: the training split {training} overlaps the held-out split "
                f"{self.eval_split}: set settings' start_level/num_levels apart from it"
            )
        if self.eval_split.start_level + self.eval_episodes > self.eval_split.stop:
            raise ValueError(
                f"suite {self.name!r}: {self.eval_episodes} evaluation episodes need as many held-out "
                f"instances, and {self.eval_split} holds fewer"
            )

    @property
    def checkpoint_every(self) -> int:
        """Env steps between an online run's checkpoints (five per run, at least 50 steps apart)."""
        return max(self.online_steps // 5, 50)

    def run_seed(self, train_index: int) -> int:
        """The seed of training run ``train_index``: the learner's seed, and the first online env's
        reset seed (the others follow it)."""
        return self.train_seed + train_index * self.n_envs

    def runs(self, agent: str) -> list[str]:
        """The training runs of ``agent`` (:func:`run_name`): one for a scripted agent, else ``train_seeds``."""
        if agent_family(agent) == "scripted":
            return [agent]
        return [run_name(agent, i) for i in range(self.train_seeds)]

    @property
    def eval_seeds(self) -> list[int]:
        return list(range(self.eval_seed, self.eval_seed + self.eval_episodes))

    @property
    def eval_settings(self) -> EnvSettings:
        """The evaluation episodes' env: ``settings`` on the held-out split, if the suite has one."""
        if self.eval_split is None:
            return self.settings
        return self.settings.replace(
            start_level=self.eval_split.start_level, num_levels=self.eval_split.num_levels
        )

    @property
    def eval_instances(self) -> list[int] | None:
        """The instance each evaluation episode pins, in seed order (``None``: no held-out split)."""
        if self.eval_split is None:
            return None
        return [self.eval_split.start_level + i for i in range(self.eval_episodes)]

    def eval_instance(self, seed: int) -> int | None:
        """The instance the evaluation episode with reset seed ``seed`` pins (``None``: none)."""
        instances = self.eval_instances
        return None if instances is None else instances[self.eval_seeds.index(seed)]

    def split_description(self) -> str | None:
        """The splits in words, for the report (``None``: no held-out split)."""
        if self.eval_split is None:
            return None
        env, held = self.settings, self.eval_split
        training = Split(start_level=env.start_level, num_levels=env.num_levels)
        return (
            f"held-out instances {held.start_level}-{held.start_level + self.eval_episodes - 1} of "
            f"distribution {env.resolved_instances!r} (split start_level={held.start_level}, "
            f"num_levels={held.num_levels}); training on instances [{training.start_level}, {training.stop})"
        )

    def pack_spec(self) -> GenerationSpec:
        """The generation spec of the suite's pack: its matrix in the suite's env and preset, no adaptive rounds."""
        return GenerationSpec(
            name=f"bench-{self.name}",
            description=f"the offline pack of the {self.name!r} benchmark suite",
            env=self.settings,
            policies=self.pack.policies,
            configs=(self.settings.config,),
            epsilons=self.pack.epsilons,
            episodes_per_cell=self.pack.episodes_per_cell,
            base_seed=self.train_seed,
            policy_overrides=self.pack.overrides,
        )

    def to_json(self) -> dict[str, Any]:
        data = {
            "name": self.name, "settings": self.settings.to_dict(), "eval_seeds": self.eval_seeds,
            "train_seed": self.train_seed, "online_steps": self.online_steps, "n_envs": self.n_envs,
            "offline_steps": self.offline_steps, "pack": self.pack_spec().to_dict(), "agents": list(self.agents),
        }  # fmt: skip
        if self.train_seeds != 1:  # absent otherwise: one-seed suites' records stay as they were
            data["train_seeds"] = self.train_seeds
        if self.option_instances:  # likewise: only a suite with fitted-Q agents has it
            data["option_instances"] = self.option_instances
        if self.eval_split is not None:  # absent otherwise: the other suites' records stay as they were
            data["eval_split"] = {
                "start_level": self.eval_split.start_level,
                "num_levels": self.eval_split.num_levels,
            }
            data["eval_instances"] = self.eval_instances
        return data


_PACK_POLICIES = ("capacity", "baseline", "aggressive", "conservative", "random")
#: The micro-offline-optimizers pack's policies: every behavior policy registered when it was run
#: (curve-aware came later), so the suite keeps regenerating that pack.
_OPTIMIZERS_PACK_POLICIES = tuple(p for p in POLICIES if p != "curve-aware")
#: The micro-offline pack's policies: those registered when it was run (lr-aware, written for the
#: optimizers distribution, came later).
_BOTTLENECKS_PACK_POLICIES = tuple(p for p in _OPTIMIZERS_PACK_POLICIES if p != "lr-aware")


def _pack(policies: tuple[str, ...], epsilons: tuple[float, ...], per_cell: int) -> PackMatrix:
    """A pack matrix; ``random`` always explores fully (epsilon 1)."""
    return PackMatrix(policies, epsilons, per_cell, overrides=(("random", PolicyPlan((1.0,), per_cell)),))


def _settings(fidelity: str, max_epochs: int) -> EnvSettings:
    """The suites' env: SynthCIFAR v2's impaired host, shaped reward."""
    return EnvSettings("Esper-SynthCIFAR-v2", config="impaired", fidelity=fidelity, max_epochs=max_epochs)


#: The micro suite's training env: the fast tier's ``bottlenecks`` instances of ``TRAIN_SPLIT``.
_MICRO = EnvSettings(
    dataset_record("clusters").env_id, config="baseline", fidelity="micro", max_epochs=25, instances="bottlenecks",
    start_level=TRAIN_SPLIT.start_level, num_levels=TRAIN_SPLIT.num_levels,
)  # fmt: skip


def _distribution_suite(name: str, description: str, instances: str, option_instances: int) -> Suite:
    """The micro suite's budgets and training seeds on another distribution, every agent family, with
    the best rules, on 200 held-out instances."""
    return Suite(
        name, description, settings=_MICRO.replace(instances=instances), eval_episodes=200, online_steps=10_000,
        n_envs=2, offline_steps=5000, pack=_pack(_PACK_POLICIES, (0.0, 0.2), 30), eval_split=HELDOUT_SPLIT,
        train_seeds=3, option_instances=option_instances,
        agents=(*SCRIPTED_AGENTS, "heuristic:curve-aware", "heuristic:lr-aware", "heuristic:rent-aware",
                *OFFLINE_ALGORITHMS, *FITTED_Q_AGENTS, *ONLINE_ALGORITHMS),
    )  # fmt: skip


SUITES: Mapping[str, Suite] = MappingProxyType(
    {
        "smoke": Suite(
            "smoke",
            "a plumbing check of every agent (\"test\" fidelity: near chance accuracy, minutes on 2 cores)",
            settings=_settings("test", 8), eval_episodes=3, online_steps=100, n_envs=1, offline_steps=200,
            pack=_pack(("capacity", "aggressive", "random"), (0.2,), 2),
        ),
        "tiny": Suite(
            "tiny",
            "the reference CPU comparison (impaired host, \"tiny\" fidelity, about 2 h on 2 cores)",
            settings=_settings("tiny", 25), eval_episodes=5, online_steps=5000, n_envs=2, offline_steps=3000,
            pack=_pack(_PACK_POLICIES, (0.0, 0.2), 4),
        ),
        "full": Suite(
            "full",
            "the CIFAR-shaped comparison (\"full\" fidelity; a GPU machine, about a day)",
            settings=_settings("full", 25), eval_episodes=10, online_steps=50_000, n_envs=4, offline_steps=10_000,
            pack=_pack(_PACK_POLICIES, (0.0, 0.2), 5),
        ),
        "micro": Suite(
            "micro",
            "the fast tier: agents train on the bottlenecks instances of TRAIN_SPLIT and are scored on 50 "
            f"held-out instances of HELDOUT_SPLIT (one each; {_MICRO.env_id}, \"micro\" fidelity, 25 epochs), "
            "every trained agent 3 times with 3 training seeds. Budgets (an env step takes about 7 ms on one "
            "core, a PPO step with its updates 40-95 ms): 10,000 online env steps on 2 envs (400 episodes, 2x "
            "the tiny suite's; the options algorithms count decisions, 10,000 of them about 10,500-12,500 env "
            "steps) and 5,000 gradient steps on a pack of 270 episodes; training runs 2 at a time. 47 min on 2 "
            "cores on v3 (v2: about 1 h 40 min, measured in three parts)",
            settings=_MICRO, eval_episodes=50, online_steps=10_000, n_envs=2, offline_steps=5000,
            pack=_pack(_PACK_POLICIES, (0.0, 0.2), 30), eval_split=HELDOUT_SPLIT, train_seeds=3,
            agents=(*SCRIPTED_AGENTS, "heuristic:rent-aware", *OFFLINE_ALGORITHMS, *ONLINE_ALGORITHMS),
        ),
        "micro-optimizers": _distribution_suite(
            "micro-optimizers",
            "the fast tier on its optimizers distribution (SGD or Adam, not observed, at overlapping learning "
            "rates; a fixed rent of 6 points per doubling; docs/FAST_TIER.md), where the per-instance best "
            "schedule beats the single best by 5.6 points and the best rule (curve-aware, which reads the "
            "learning curve) by 3.6 (v3): the micro suite's budgets and training seeds, on 200 held-out instances "
            "(curve-aware wins +1.5 over lr-aware there; a paired difference of one episode per instance has a "
            "spread of 7.7 points: about 100 instances are needed to tell a win that size from 0); fitted-q's "
            "data: every growth option played on 1,000 training instances (13,000 episodes, about 80 min on 2 "
            "cores; fitted-q's win over curve-aware: on v3 +0.7, CI +0.1 to +1.3, on 600 instances (29 min of data); "
            "on v2 +0.6, CI -0.0 to +1.2, on 600, +1.0, CI +0.4 to +1.5, on 1,000)",
            "optimizers", option_instances=1000,
        ),
        "micro-difficulty": _distribution_suite(
            "micro-difficulty",
            "the fast tier on its difficulty distribution (optimizers' fields with a hidden task difficulty, 2, 8 "
            "or 32 blobs per class, and an observed rent of 0, 3 or 6 points per doubling; docs/FAST_TIER.md), "
            "where the per-instance best schedule beats the single best by 3.1 points and the best rule "
            "(curve-aware) by 2.9 (v3): micro-optimizers' budgets, training seeds and 200 held-out instances; "
            "fitted-q's data: every growth option played on 600 training instances (7,800 episodes, 33-36 min on 2 "
            "cores; fitted-q beats curve-aware there by +2.1, CI +1.1 to +3.1, on v3, +2.2 on v2)",
            "difficulty", option_instances=600,
        ),
        "micro-slow": _distribution_suite(
            "micro-slow",
            "the fast tier on its slow distribution (optimizers at its slow learning rates, 0.003 and 0.01: "
            "growth pays on every instance, widening the first block by 9.0 points, but which growth pays most "
            "depends on the optimizer, which the observation does not show; docs/FAST_TIER.md), where the "
            "per-instance best schedule beats the single best by 5.4 points and curve-aware by 3.1 (v3) "
            "(its registry entry: a fresh held-out block, instances 50-99): micro-optimizers' budgets, training "
            "seeds and 200 held-out instances; fitted-q's data: every growth option played on 600 training "
            "instances",
            "slow", option_instances=600,
        ),
        "micro-slow-paced": _distribution_suite(
            "micro-slow-paced",
            "the fast tier on slow-paced (slow's instances, the fast tier training at 3x their learning rate, "
            "where never growing learns about as fast per epoch as at \"tiny\"; docs/FAST_TIER.md): "
            "micro-slow's budgets, training seeds, 200 held-out instances and fitted-q data (600 training "
            "instances)",
            "slow-paced", option_instances=600,
        ),
        "micro-offline": Suite(
            "micro-offline",
            "offline RL on the fast tier at scale: a pack of 10,010 episodes (every behavior policy with "
            "epsilon 0, 0.1 and 0.3, 770 episodes each; random at epsilon 1) on the bottlenecks instances "
            "of TRAIN_SPLIT; BC, RWBC, CQL and IQL, 3 training seeds each, 5,000 gradient steps (the micro "
            "suite's budget); scored beside every behavior policy on the micro suite's 50 held-out instances. "
            "About 1.5 h on 2 cores: the pack's generation about 45 min, training about 30 min (a d3rlpy "
            "step takes 30-100 ms on one core, sampling mostly)",
            settings=_MICRO, eval_episodes=50, online_steps=0, n_envs=1, offline_steps=5000,
            pack=_pack(_BOTTLENECKS_PACK_POLICIES, (0.0, 0.1, 0.3), 770), eval_split=HELDOUT_SPLIT,
            train_seeds=3, agents=("wait", *(f"heuristic:{p}" for p in _BOTTLENECKS_PACK_POLICIES), *OFFLINE_ALGORITHMS),
        ),
        "micro-offline-optimizers": Suite(
            "micro-offline-optimizers",
            "micro-offline on the optimizers distribution: a pack of 10,780 episodes (every behavior policy, "
            "lr-aware included, with epsilon 0, 0.1 and 0.3, 770 episodes each; random at epsilon 1) on the "
            "optimizers instances of TRAIN_SPLIT; BC, RWBC, CQL and IQL, 3 training seeds each, 5,000 gradient "
            "steps; scored beside every behavior policy on the 200 held-out instances of micro-optimizers",
            settings=_MICRO.replace(instances="optimizers"), eval_episodes=200, online_steps=0, n_envs=1,
            offline_steps=5000, pack=_pack(_OPTIMIZERS_PACK_POLICIES, (0.0, 0.1, 0.3), 770), eval_split=HELDOUT_SPLIT,
            train_seeds=3, agents=("wait", *(f"heuristic:{p}" for p in POLICIES), *OFFLINE_ALGORITHMS),
        ),
    }
)  # fmt: skip
SUITE_NAMES: tuple[str, ...] = tuple(SUITES)


def get_suite(name: str) -> Suite:
    try:
        return SUITES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown suite {name!r}; valid suites are: {', '.join(SUITE_NAMES)}") from None
