"""The benchmark's suites and its agents: :data:`SUITES`, :data:`BENCH_AGENTS`, :func:`agent_family`.

A suite fixes everything the agents are compared on: the env (an
:class:`~esper_env.settings.EnvSettings`: id, preset, fidelity, episode length, reward); the evaluation seeds (apart from every training seed); and an equal budget per family:

* ``scripted`` agents (always-WAIT, random, the heuristic variants) need no training;
* ``offline`` agents (BC, RWBC, CQL, IQL) all train ``offline_steps`` gradient steps on the same
  pack, generated from the suite's ``pack`` matrix with reset seeds from ``train_seed``;
* ``online`` agents (MaskablePPO, RecurrentPPO, the masked recurrent PPO) all train
  ``online_steps`` env steps on ``n_envs`` envs seeded ``train_seed ..``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from esper_agents.generation.spec import GenerationSpec, PolicyPlan
from esper_agents.offline.algorithms import ALGORITHMS as OFFLINE_ALGORITHMS
from esper_agents.online.algorithms import ONLINE_ALGORITHMS
from esper_agents.policies import DEFAULT_HEURISTIC
from esper_env.settings import EnvSettings

__all__ = [
    "BENCH_AGENTS", "FAMILIES", "SUITES", "SUITE_NAMES", "PackMatrix", "Suite", "agent_family", "get_suite",
]  # fmt: skip

#: The heuristic variants the benchmark runs: the default, the original design's, and two tempos.
HEURISTIC_VARIANTS: tuple[str, ...] = (DEFAULT_HEURISTIC, "baseline", "aggressive", "conservative")
SCRIPTED_AGENTS: tuple[str, ...] = ("wait", "random", *(f"heuristic:{h}" for h in HEURISTIC_VARIANTS))
#: Every agent of the benchmark, in table order.
BENCH_AGENTS: tuple[str, ...] = (*SCRIPTED_AGENTS, *OFFLINE_ALGORITHMS, *ONLINE_ALGORITHMS)
FAMILIES: tuple[str, ...] = ("scripted", "offline", "online")
#: The agents a normalised score is anchored on (0 and 1).
WAIT_AGENT, HEURISTIC_AGENT = "wait", f"heuristic:{DEFAULT_HEURISTIC}"


def agent_family(agent: str) -> str:
    """``scripted``, ``offline`` or ``online``; an unknown name is a ``ValueError`` listing the valid ones."""
    if agent in SCRIPTED_AGENTS:
        return "scripted"
    if agent in OFFLINE_ALGORITHMS:
        return "offline"
    if agent in ONLINE_ALGORITHMS:
        return "online"
    raise ValueError(f"unknown agent {agent!r}; valid agents are: {', '.join(BENCH_AGENTS)}")


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
    #: Every env of the suite: the pack's, the online agents' and the evaluation's.
    settings: EnvSettings
    eval_episodes: int
    online_steps: int
    n_envs: int
    offline_steps: int
    pack: PackMatrix
    eval_seed: int = 1000
    train_seed: int = 0
    agents: tuple[str, ...] = BENCH_AGENTS

    @property
    def eval_seeds(self) -> list[int]:
        return list(range(self.eval_seed, self.eval_seed + self.eval_episodes))

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
        return {
            "name": self.name, "settings": self.settings.to_dict(), "eval_seeds": self.eval_seeds,
            "train_seed": self.train_seed, "online_steps": self.online_steps, "n_envs": self.n_envs,
            "offline_steps": self.offline_steps, "pack": self.pack_spec().to_dict(), "agents": list(self.agents),
        }  # fmt: skip


_PACK_POLICIES = ("capacity", "baseline", "aggressive", "conservative", "random")


def _pack(policies: tuple[str, ...], epsilons: tuple[float, ...], per_cell: int) -> PackMatrix:
    """A pack matrix; ``random`` always explores fully (epsilon 1)."""
    return PackMatrix(policies, epsilons, per_cell, overrides=(("random", PolicyPlan((1.0,), per_cell)),))


def _settings(fidelity: str, max_epochs: int) -> EnvSettings:
    """The suites' env: SynthCIFAR v2's impaired host, shaped reward."""
    return EnvSettings("Esper-SynthCIFAR-v2", config="impaired", fidelity=fidelity, max_epochs=max_epochs)


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
    }
)  # fmt: skip
SUITE_NAMES: tuple[str, ...] = tuple(SUITES)


def get_suite(name: str) -> Suite:
    try:
        return SUITES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown suite {name!r}; valid suites are: {', '.join(SUITE_NAMES)}") from None
