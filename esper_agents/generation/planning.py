"""Generation plans: which episodes a spec asks for, their ids and seeds, and in what order they run.

Round 0 is uniform (:func:`plan_uniform`): every (policy, config) cell gets ``episodes_per_cell``
episodes, the k-th with ``epsilon = epsilons[k % len(epsilons)]``. The episode id and seed are
functions of ``(policy, config, epsilon, replicate)`` (:func:`episode_id`, :func:`episode_seed`),
where ``replicate`` counts the cell's episodes at that epsilon. An adaptive round
(:func:`plan_extra`) continues the same counts toward the cells :func:`adaptive_targets` picks
from the failed health checks. :func:`schedule` runs episodes longest-first (by host
architecture, :data:`ARCHITECTURE_COST`) to balance the workers.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from esper_agents.generation.spec import GenerationSpec

#: Rough relative cost of one epoch per host architecture (measured on one CPU core at "tiny"), used
#: only to schedule the slowest episodes first and for ``--dry-run``'s estimate.
ARCHITECTURE_COST: dict[str, float] = {
    "HostCNN-Narrow": 0.5,
    "HostCNN": 1.0,
    "HostCNN-Deep": 1.0,
    "HostCNN-Wide": 3.3,
    "ResNet-18": 30.0,
    "ResNet-34": 58.0,
}


@dataclass(frozen=True)
class EpisodeTask:
    """One planned episode."""

    episode_id: str
    policy_id: str
    config_id: str
    epsilon: float
    replicate: int
    seed: int
    round: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EpisodeTask:
        return cls(**{f.name: d[f.name] for f in fields(cls)})


def _eps_tag(epsilon: float) -> str:
    return f"{epsilon:.3f}"


def episode_id(policy_id: str, config_id: str, epsilon: float, replicate: int) -> str:
    """Deterministic, readable id: ``<policy>--<config>--e<epsilon>--r<replicate>``."""
    return f"{policy_id}--{config_id}--e{_eps_tag(epsilon)}--r{replicate:04d}"


def episode_seed(base_seed: int, policy_id: str, config_id: str, epsilon: float, replicate: int) -> int:
    """A 31-bit seed from the plan coordinates (sha256, so unrelated cells get unrelated seeds)."""
    key = f"{base_seed}|{policy_id}|{config_id}|{_eps_tag(epsilon)}|{replicate}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "little") & 0x7FFFFFFF


class Planner:
    """Hands out the next episodes of cells, continuing the epsilon cycle and replicate counts."""

    def __init__(self, spec: GenerationSpec, planned: Iterable[EpisodeTask] = ()) -> None:
        self.spec = spec
        self.per_cell: Counter[tuple[str, str]] = Counter()
        self.per_eps: Counter[tuple[str, str, str]] = Counter()
        for t in planned:
            self._count(t)

    def _count(self, t: EpisodeTask) -> None:
        self.per_cell[(t.policy_id, t.config_id)] += 1
        self.per_eps[(t.policy_id, t.config_id, _eps_tag(t.epsilon))] += 1

    def next_task(self, policy_id: str, config_id: str, round: int) -> EpisodeTask:
        eps_list = self.spec.plan_for(policy_id).epsilons
        eps = eps_list[self.per_cell[(policy_id, config_id)] % len(eps_list)]
        rep = self.per_eps[(policy_id, config_id, _eps_tag(eps))]
        t = EpisodeTask(
            episode_id(policy_id, config_id, eps, rep), policy_id, config_id, eps, rep,
            episode_seed(self.spec.base_seed, policy_id, config_id, eps, rep), round,
        )  # fmt: skip
        self._count(t)
        return t


def plan_uniform(spec: GenerationSpec) -> list[EpisodeTask]:
    """Round 0: ``episodes_per_cell`` episodes for every (policy, config) cell."""
    planner = Planner(spec)
    return [
        planner.next_task(p, c, 0) for p, c in spec.cells for _ in range(spec.plan_for(p).episodes_per_cell)
    ]


def plan_extra(spec: GenerationSpec, planned: Sequence[EpisodeTask], targets: Sequence[tuple[str, str]],
               n: int, round: int) -> list[EpisodeTask]:  # fmt: skip
    """``n`` more episodes spread round-robin over ``targets`` (worst first)."""
    if not targets or n <= 0:
        return []
    planner = Planner(spec, planned)
    return [planner.next_task(*targets[i % len(targets)], round) for i in range(n)]


def task_cost(spec: GenerationSpec, task: EpisodeTask) -> float:
    from esper_env.configs import ENVIRONMENT_CONFIGS

    return ARCHITECTURE_COST.get(ENVIRONMENT_CONFIGS[task.config_id].architecture, 1.0)


def schedule(spec: GenerationSpec, tasks: Sequence[EpisodeTask]) -> list[EpisodeTask]:
    """Longest first (stable), so the slow hosts do not all end up last on one worker."""
    return sorted(tasks, key=lambda t: -task_cost(spec, t))


def adaptive_targets(report: Any, spec: GenerationSpec, op_mass: Mapping[tuple[str, str], Mapping[str, float]]
                     ) -> tuple[list[tuple[str, str]], list[str]]:  # fmt: skip
    """Cells to generate more of, worst first, from the failed checks of the targeted tiers.

    A failed check's ``cells`` are (policy, config) pairs, or op names for the op-share check; an
    op maps to the ``cells_per_op`` cells whose logged behavior puts the most probability on it.
    Returns the cells and a description of why, per check.
    """
    matrix = set(spec.cells)
    queues: list[list[tuple[str, str]]] = []
    reasons: list[str] = []
    failed = [c for c in report.checks if not c.passed and c.tier in spec.adaptive.tiers]
    failed.sort(key=lambda c: 0 if c.tier == "error" else 1)
    for check in failed:
        queue: list[tuple[str, str]] = []
        for item in check.cells:
            if isinstance(item, (tuple, list)) and len(item) == 2:
                cell = (str(item[0]), str(item[1]))
                if cell in matrix:
                    queue.append(cell)
            elif isinstance(item, str):
                ranked = sorted(matrix, key=lambda c: (-op_mass.get(c, {}).get(item, 0.0), c))
                queue.extend(ranked[: spec.adaptive.cells_per_op])
        if queue:
            queues.append(queue)
            reasons.append(f"{check.tier} {check.name} ({len(queue)} cells)")
    # interleave the checks' queues so every failed check gets episodes
    out: list[tuple[str, str]] = []
    seen = set()
    for i in range(max((len(q) for q in queues), default=0)):
        for q in queues:
            if i < len(q) and q[i] not in seen:
                seen.add(q[i])
                out.append(q[i])
    return out, reasons


def describe_plan(spec: GenerationSpec) -> str:
    """What a spec will generate (for ``--dry-run``)."""
    from esper_agents.policies import CONTRASTIVE_POLICY_IDS

    tasks = plan_uniform(spec)
    per_policy = Counter(t.policy_id for t in tasks)
    contrastive = sum(n for p, n in per_policy.items() if p in CONTRASTIVE_POLICY_IDS)
    ad = spec.adaptive
    lines = [
        f"spec {spec.name!r}: {len(spec.policies)} policies x {len(spec.configs)} configs, {len(spec.cells)} cells",
        (
            f"uniform pass: {len(tasks)} episodes, <= {len(tasks) * spec.env.max_epochs} transitions "
            f"({spec.env.env_id}, fidelity {spec.env.fidelity!r}, max_epochs {spec.env.max_epochs})"
        ),
        f"contrastive share: {contrastive}/{len(tasks)} = {contrastive / max(len(tasks), 1):.1%}",
        (
            f"adaptive: up to {ad.budget} extra episodes in rounds of {ad.round_size} "
            f"(max {ad.max_rounds} rounds, tiers {list(ad.tiers)})"
        ),
    ]
    weight = sum(task_cost(spec, t) for t in tasks)
    lines.append(f"relative cost (HostCNN episode = 1): {weight:.0f}")
    return "\n".join(lines)
