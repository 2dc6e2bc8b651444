"""The benchmark's suites and its agents: :data:`SUITES`, :data:`BENCH_AGENTS`, :func:`agent_family`.

A suite fixes everything the agents are compared on: the env id, preset, fidelity and episode
length; the evaluation seeds (apart from every training seed); and an equal budget per family:

* ``scripted`` agents (always-WAIT, random, the heuristic variants) need no training;
* ``offline`` agents (BC, RWBC, CQL, IQL) all train ``offline_steps`` gradient steps on the same
  pack, generated from the suite's ``pack`` matrix with reset seeds from ``train_seed``;
* ``online`` agents (MaskablePPO, RecurrentPPO, the masked recurrent PPO) all train
  ``online_steps`` env steps on ``n_envs`` envs seeded ``train_seed ..``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from esper_agents.offline.algorithms import ALGORITHMS as OFFLINE_ALGORITHMS
from esper_agents.online.algorithms import ONLINE_ALGORITHMS
from esper_agents.policies import DEFAULT_HEURISTIC

__all__ = ["BENCH_AGENTS", "FAMILIES", "SUITES", "SUITE_NAMES", "Suite", "agent_family", "get_suite"]

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
class Suite:
    """One benchmark configuration (see the module docstring)."""

    name: str
    description: str
    config: str
    fidelity: str
    max_epochs: int
    eval_episodes: int
    online_steps: int
    n_envs: int
    offline_steps: int
    #: The generation matrix of the offline pack (``esper_agents.generation.spec`` keys).
    pack: Mapping[str, Any] = field(default_factory=dict)
    env_id: str = "Esper-SynthCIFAR-v1"
    eval_seed: int = 1000
    train_seed: int = 0
    agents: tuple[str, ...] = BENCH_AGENTS

    @property
    def eval_seeds(self) -> list[int]:
        return list(range(self.eval_seed, self.eval_seed + self.eval_episodes))

    @property
    def env_kwargs(self) -> dict[str, Any]:
        """The ``gymnasium.make`` keyword arguments of every env of the suite (the preset's own
        episode length is not repeated, so runs of ``esper train-online`` with the same settings match)."""
        from esper_env.configs import get_config

        kwargs: dict[str, Any] = {"config": self.config, "fidelity": self.fidelity}
        if self.max_epochs != get_config(self.config).max_epochs:
            kwargs["max_epochs"] = self.max_epochs
        return kwargs

    def pack_spec(self) -> dict[str, Any]:
        """The generation spec document of the suite's pack (``parse_spec`` reads it)."""
        matrix = dict(self.pack)
        overrides = matrix.pop("policy", {})
        return {
            "name": f"bench-{self.name}",
            "description": f"the offline pack of the {self.name!r} benchmark suite",
            "env": {"id": self.env_id, "fidelity": self.fidelity, "max_epochs": self.max_epochs},
            "matrix": {**matrix, "configs": [self.config], "base_seed": self.train_seed, "policy": overrides},
            "adaptive": {"budget": 0},
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "env_id": self.env_id, "config": self.config, "fidelity": self.fidelity,
            "max_epochs": self.max_epochs, "eval_seeds": self.eval_seeds, "train_seed": self.train_seed,
            "online_steps": self.online_steps, "n_envs": self.n_envs, "offline_steps": self.offline_steps,
            "pack": self.pack_spec(), "agents": list(self.agents),
        }  # fmt: skip


_PACK_POLICIES = ["capacity", "baseline", "aggressive", "conservative", "random"]


def _pack(policies: list[str], epsilons: list[float], per_cell: int) -> dict[str, Any]:
    """A pack matrix; ``random`` always explores fully (epsilon 1)."""
    return {"policies": policies, "epsilons": epsilons, "episodes_per_cell": per_cell,
            "policy": {"random": {"epsilons": [1.0]}}}  # fmt: skip


SUITES: Mapping[str, Suite] = MappingProxyType(
    {
        "smoke": Suite(
            "smoke",
            "a plumbing check of every agent (\"test\" fidelity: near chance accuracy, minutes on 2 cores)",
            config="impaired", fidelity="test", max_epochs=8, eval_episodes=3,
            online_steps=100, n_envs=1, offline_steps=200,
            pack=_pack(["capacity", "aggressive", "random"], [0.2], 2),
        ),
        "tiny": Suite(
            "tiny",
            "the reference CPU comparison (impaired host, \"tiny\" fidelity, about 2 h on 2 cores)",
            config="impaired", fidelity="tiny", max_epochs=25, eval_episodes=5,
            online_steps=5000, n_envs=2, offline_steps=3000,
            pack=_pack(_PACK_POLICIES, [0.0, 0.2], 4),
        ),
        "full": Suite(
            "full",
            "the CIFAR-shaped comparison (\"full\" fidelity; a GPU machine, about a day)",
            config="impaired", fidelity="full", max_epochs=25, eval_episodes=10,
            online_steps=50_000, n_envs=4, offline_steps=10_000,
            pack=_pack(_PACK_POLICIES, [0.0, 0.2], 5),
        ),
    }
)  # fmt: skip
SUITE_NAMES: tuple[str, ...] = tuple(SUITES)


def get_suite(name: str) -> Suite:
    try:
        return SUITES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown suite {name!r}; valid suites are: {', '.join(SUITE_NAMES)}") from None
