"""Generation orchestrator: a TOML matrix spec -> a pack, in parallel, resumable, adaptive.

Spec (``datasets/*.toml``, read with :mod:`tomllib`)::

    name = "smoke"                       # pack name
    description = "..."                  # optional

    [env]
    id = "Esper-SynthCIFAR-v1"           # any esper_env id
    fidelity = "test"                    # full, fast, tiny, test
    max_epochs = 8
    num_slots = 3                        # optional, default 3
    reward = "shaped"                    # reward mode of the logged rewards (components are always logged)
    synth_seed = 0                       # optional, SynthCIFAR only
    early_stop_patience = 0              # optional; 0 = off

    [matrix]
    policies = ["baseline", "random"]    # esper_agents.policies ids
    configs = ["baseline", "fast-lr"]    # esper_env presets
    epsilons = [0.0, 0.1, 0.2]           # a cell's episodes cycle through these
    episodes_per_cell = 3                # per (policy, config), in the uniform first pass
    base_seed = 0

    [matrix.policy.random]               # optional per-policy overrides
    epsilons = [1.0]
    episodes_per_cell = 3

    [adaptive]                           # optional
    budget = 8                           # extra episodes in total, over all rounds (0 = no adaptive step)
    round_size = 4                       # extra episodes per round
    max_rounds = 2
    tiers = ["error"]                    # failed checks of these tiers direct the extra episodes
    cells_per_op = 3                     # per under-represented op: the cells whose behavior favors it most

Plan. Round 0 is uniform: every (policy, config) cell gets ``episodes_per_cell`` episodes, the
k-th with ``epsilon = epsilons[k % len(epsilons)]``. The episode id and seed are functions of
``(policy, config, epsilon, replicate)`` (:func:`episode_id`, :func:`episode_seed`), where
``replicate`` counts the cell's episodes at that epsilon. Each later round runs the health checks
(:func:`esper_agents.generation.health.run_health_checks`) on everything generated so far and,
while blocking checks fail and budget remains, plans ``round_size`` more episodes toward the cells
the failed checks name (for the op-share check, which names ops, the cells whose logged behavior
distribution puts the most mass on those ops). Every round's plan is written to
``PACK/plan/round-NNN.json`` before it runs, so a resumed run finishes exactly the episodes that
were planned; episodes are run longest-first (by host architecture) to balance the workers.

Backends: ``local`` runs episodes in this process (``workers=1``) or in a ``spawn`` process pool
(one torch thread per worker; workers die with the parent); ``ray`` runs each episode as a
``ray.remote`` task (on the cluster at ``$RAY_ADDRESS``, or a local ``ray.init(num_cpus=workers)``,
unless Ray is already initialized). In both, this process is the only writer of the pack. The
throughput printed at the end is per core: per worker process, or per CPU of the Ray cluster.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sys
import time
import tomllib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from esper_agents.generation.collector import EnvSettings, EpisodeRecord

BACKENDS: tuple[str, ...] = ("local", "ray")

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


class SpecError(ValueError):
    """A generation spec that is invalid; the message names the bad key or value."""


# ---------------------------------------------------------------------------------------------
# Spec


@dataclass(frozen=True)
class PolicyPlan:
    epsilons: tuple[float, ...]
    episodes_per_cell: int


@dataclass(frozen=True)
class AdaptiveSpec:
    budget: int = 0
    round_size: int = 0
    max_rounds: int = 3
    tiers: tuple[str, ...] = ("error",)
    cells_per_op: int = 3

    @property
    def enabled(self) -> bool:
        return self.budget > 0 and self.max_rounds > 0


@dataclass(frozen=True)
class GenerationSpec:
    name: str
    env: EnvSettings
    policies: tuple[str, ...]
    configs: tuple[str, ...]
    epsilons: tuple[float, ...]
    episodes_per_cell: int
    base_seed: int = 0
    policy_overrides: tuple[tuple[str, PolicyPlan], ...] = ()
    adaptive: AdaptiveSpec = AdaptiveSpec()
    description: str = ""

    def plan_for(self, policy_id: str) -> PolicyPlan:
        return dict(self.policy_overrides).get(policy_id, PolicyPlan(self.epsilons, self.episodes_per_cell))

    @property
    def cells(self) -> list[tuple[str, str]]:
        return [(p, c) for p in self.policies for c in self.configs]

    @property
    def uniform_episodes(self) -> int:
        return sum(self.plan_for(p).episodes_per_cell for p, _ in self.cells)

    def to_dict(self) -> dict[str, Any]:
        """The canonical form stored in ``pack.json`` (a resumed run must match it exactly)."""
        env = self.env.to_dict()
        return {
            "name": self.name,
            "description": self.description,
            "env": env,
            "matrix": {
                "policies": list(self.policies),
                "configs": list(self.configs),
                "epsilons": list(self.epsilons),
                "episodes_per_cell": self.episodes_per_cell,
                "base_seed": self.base_seed,
                "policy": {
                    p: {"epsilons": list(pp.epsilons), "episodes_per_cell": pp.episodes_per_cell}
                    for p, pp in self.policy_overrides
                },
            },
            "adaptive": {**asdict(self.adaptive), "tiers": list(self.adaptive.tiers)},
        }


def _take(
    table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = ...
) -> Any:
    if key not in table:
        if default is ...:
            raise SpecError(f"{where}: missing required key {key!r}")
        return default
    value = table.pop(key)
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise SpecError(f"{where}.{key}: expected {kind}, got {value!r}")
    if not isinstance(value, kind):
        raise SpecError(f"{where}.{key}: expected {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _no_extra(table: Mapping[str, Any], where: str, valid: Iterable[str]) -> None:
    if table:
        raise SpecError(f"{where}: unknown keys {sorted(table)}; valid keys are: {', '.join(valid)}")


def _epsilons(values: Any, where: str) -> tuple[float, ...]:
    if not isinstance(values, list) or not values:
        raise SpecError(f"{where}: expected a non-empty list of numbers in [0, 1], got {values!r}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
            raise SpecError(f"{where}: epsilon {v!r} is not a number in [0, 1]")
        out.append(float(v))
    if len(set(out)) != len(out):
        raise SpecError(f"{where}: epsilons {values!r} repeat a value")
    return tuple(out)


def _positive(value: int, where: str, allow_zero: bool = False) -> int:
    if value < (0 if allow_zero else 1):
        raise SpecError(f"{where}: must be {'>= 0' if allow_zero else '>= 1'}, got {value!r}")
    return value


def parse_spec(doc: Mapping[str, Any], source: str = "spec") -> GenerationSpec:
    """Validate a spec document (the parsed TOML); raises :class:`SpecError` naming the problem."""
    import esper_env
    from esper_agents.policies import POLICY_IDS
    from esper_env.configs import ENVIRONMENT_CONFIGS, FIDELITIES
    from esper_env.rewards import REWARD_MODES

    top = {k: (dict(v) if isinstance(v, dict) else v) for k, v in doc.items()}
    name = _take(top, "name", str, source)
    description = _take(top, "description", str, source, "")
    env_t = _take(top, "env", dict, source)
    matrix = _take(top, "matrix", dict, source)
    adaptive_t = _take(top, "adaptive", dict, source, {})
    _no_extra(top, source, ["name", "description", "env", "matrix", "adaptive"])
    if not name or not all(ch.isalnum() or ch in "-_." for ch in name):
        raise SpecError(f"{source}.name: {name!r} must be non-empty letters, digits, '-', '_' or '.'")

    w = f"{source}[env]"
    env_id = _take(env_t, "id", str, w)
    if env_id not in esper_env.ENV_IDS:
        raise SpecError(f"{w}.id: unknown env id {env_id!r}; valid ids are: {', '.join(esper_env.ENV_IDS)}")
    fidelity = _take(env_t, "fidelity", str, w, str(esper_env.ENV_IDS[env_id]["fidelity"]))
    if fidelity not in FIDELITIES:
        raise SpecError(f"{w}.fidelity: unknown fidelity {fidelity!r}; valid are: {', '.join(FIDELITIES)}")
    reward = _take(env_t, "reward", str, w, "shaped")
    if reward not in REWARD_MODES:
        raise SpecError(f"{w}.reward: unknown reward mode {reward!r}; valid are: {', '.join(REWARD_MODES)}")
    patience = _take(env_t, "early_stop_patience", int, w, 0)
    settings = EnvSettings(
        env_id=env_id,
        fidelity=fidelity,
        max_epochs=_positive(_take(env_t, "max_epochs", int, w), f"{w}.max_epochs"),
        num_slots=_positive(_take(env_t, "num_slots", int, w, 3), f"{w}.num_slots"),
        reward=reward,
        synth_seed=_positive(_take(env_t, "synth_seed", int, w, 0), f"{w}.synth_seed", allow_zero=True),
        early_stop_patience=_positive(patience, f"{w}.early_stop_patience", allow_zero=True) or None,
    )
    _no_extra(
        env_t, w, ["id", "fidelity", "max_epochs", "num_slots", "reward", "synth_seed", "early_stop_patience"]
    )

    w = f"{source}[matrix]"
    policies = tuple(_take(matrix, "policies", list, w))
    configs = tuple(_take(matrix, "configs", list, w))
    for kind, values, valid in (
        ("policy", policies, POLICY_IDS),
        ("config", configs, tuple(ENVIRONMENT_CONFIGS)),
    ):
        if not values:
            raise SpecError(f"{w}: needs at least one {kind}")
        for v in values:
            if v not in valid:
                raise SpecError(f"{w}: unknown {kind} {v!r}; valid {kind}s are: {', '.join(valid)}")
        if len(set(values)) != len(values):
            raise SpecError(f"{w}: {kind} list {list(values)} repeats an entry")
    epsilons = _epsilons(_take(matrix, "epsilons", list, w, [0.0, 0.1, 0.2]), f"{w}.epsilons")
    per_cell = _positive(_take(matrix, "episodes_per_cell", int, w), f"{w}.episodes_per_cell")
    base_seed = _take(matrix, "base_seed", int, w, 0)
    overrides_t = _take(matrix, "policy", dict, w, {})
    _no_extra(matrix, w, ["policies", "configs", "epsilons", "episodes_per_cell", "base_seed", "policy"])
    overrides = []
    for pid in sorted(overrides_t):
        ow = f"{w}.policy.{pid}"
        if pid not in policies:
            raise SpecError(f"{ow}: policy {pid!r} is not in the matrix's policies {list(policies)}")
        o = dict(overrides_t[pid]) if isinstance(overrides_t[pid], dict) else None
        if o is None:
            raise SpecError(f"{ow}: expected a table")
        eps = _epsilons(_take(o, "epsilons", list, ow, list(epsilons)), f"{ow}.epsilons")
        n = _positive(_take(o, "episodes_per_cell", int, ow, per_cell), f"{ow}.episodes_per_cell")
        _no_extra(o, ow, ["epsilons", "episodes_per_cell"])
        overrides.append((pid, PolicyPlan(eps, n)))

    w = f"{source}[adaptive]"
    tiers = tuple(_take(adaptive_t, "tiers", list, w, ["error"]))
    bad = [t for t in tiers if t not in ("error", "warning")]
    if bad or not tiers:
        raise SpecError(f"{w}.tiers: {list(tiers)} must be a non-empty subset of ['error', 'warning']")
    budget = _positive(_take(adaptive_t, "budget", int, w, 0), f"{w}.budget", allow_zero=True)
    adaptive = AdaptiveSpec(
        budget=budget,
        round_size=_positive(
            _take(adaptive_t, "round_size", int, w, budget), f"{w}.round_size", allow_zero=True
        ),
        max_rounds=_positive(_take(adaptive_t, "max_rounds", int, w, 3), f"{w}.max_rounds", allow_zero=True),
        tiers=tiers,
        cells_per_op=_positive(_take(adaptive_t, "cells_per_op", int, w, 3), f"{w}.cells_per_op"),
    )
    _no_extra(adaptive_t, w, ["budget", "round_size", "max_rounds", "tiers", "cells_per_op"])
    if adaptive.budget > 0 and adaptive.round_size == 0:
        raise SpecError(f"{w}.round_size: must be >= 1 when budget > 0")
    return GenerationSpec(
        name=name, env=settings, policies=policies, configs=configs, epsilons=epsilons,
        episodes_per_cell=per_cell,
        base_seed=base_seed, policy_overrides=tuple(overrides), adaptive=adaptive, description=description,
    )  # fmt: skip


def load_spec(path: str | os.PathLike) -> GenerationSpec:
    """Read and validate a TOML generation spec."""
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise SpecError(f"{p}: spec file not found") from None
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{p}: not valid TOML ({err})") from None
    return parse_spec(doc, str(p))


def spec_from_dict(d: Mapping[str, Any]) -> GenerationSpec:
    """Inverse of :meth:`GenerationSpec.to_dict` (what ``pack.json`` stores)."""
    env = dict(d["env"])
    env_doc = {"id": env.pop("env_id"), **{k: v for k, v in env.items() if v is not None}}
    return parse_spec({**{k: v for k, v in d.items() if k != "env"}, "env": env_doc}, "pack spec")


# ---------------------------------------------------------------------------------------------
# Plan


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


# ---------------------------------------------------------------------------------------------
# Adaptive allocation


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


# ---------------------------------------------------------------------------------------------
# Workers


class _EnvCache:
    """A few envs per process, one per config: building an env loads its dataset."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self.envs: dict[tuple[EnvSettings, str], Any] = {}

    def get(self, settings: EnvSettings, config_id: str) -> Any:
        key = (settings, config_id)
        if key not in self.envs:
            if len(self.envs) >= self.size:
                old = next(iter(self.envs))
                self.envs.pop(old).close()
            self.envs[key] = settings.make(config_id)
        return self.envs[key]


_CACHE = _EnvCache()


def run_task(task: EpisodeTask, settings: EnvSettings) -> EpisodeRecord:
    """Collect one planned episode (in whatever process this runs)."""
    from esper_agents.generation.collector import collect_episode
    from esper_agents.policies import EpsilonGreedy, get_policy

    env = _CACHE.get(settings, task.config_id)
    behavior = EpsilonGreedy(get_policy(task.policy_id), epsilon=task.epsilon)
    return collect_episode(
        env, behavior, seed=task.seed, episode_id=task.episode_id, policy_id=task.policy_id,
        config_id=task.config_id, replicate=task.replicate, round=task.round,
    )  # fmt: skip


def _init_worker(parent_pid: int) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    if sys.platform.startswith("linux"):
        import ctypes

        # PR_SET_PDEATHSIG: a worker must not outlive a killed parent (it would compute for nothing).
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(1)
    import torch

    torch.set_num_threads(1)


class _LocalBackend:
    """This process (one worker) or a spawn process pool kept for the whole run (all rounds)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.cores = workers
        self.pool: Any = None

    def results(self, tasks: Sequence[EpisodeTask], settings: EnvSettings) -> Iterator[EpisodeRecord]:
        if self.workers <= 1:
            for t in tasks:
                yield run_task(t, settings)
            return
        from concurrent.futures import FIRST_COMPLETED, wait

        pool = self._pool()
        pending: set[Any] = set()
        queue = list(tasks)
        finished = False
        try:
            # A couple of tasks per worker in flight: results stream to the writer as they finish.
            while queue or pending:
                while queue and len(pending) < 2 * self.workers:
                    pending.add(pool.submit(run_task, queue.pop(0), settings))
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    yield f.result()
            finished = True
        finally:
            if not finished:
                self.close(abort=True)

    def _pool(self) -> Any:
        if self.pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            ctx = multiprocessing.get_context("spawn")
            self.pool = ProcessPoolExecutor(
                self.workers, mp_context=ctx, initializer=_init_worker, initargs=(os.getpid(),)
            )
        return self.pool

    def close(self, abort: bool = False) -> None:
        if self.pool is None:
            return
        pool, self.pool = self.pool, None
        if not abort:
            pool.shutdown(wait=True)
            return
        # Interrupted (an error, Ctrl-C, the consumer stopped): do not wait for running episodes.
        procs = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            proc.terminate()


class _RayBackend:
    """Each episode a ``ray.remote`` task. Unless Ray is already initialized, this joins the
    cluster at ``$RAY_ADDRESS`` or starts a local instance with ``num_cpus=workers``; it shuts Ray
    down at the end only if it initialized it."""

    def __init__(self, workers: int) -> None:
        try:
            import ray
        except ImportError:
            raise RuntimeError("the ray backend needs Ray: pip install 'esper[ray]'") from None
        self.workers = workers
        self.started = False
        if not ray.is_initialized():
            runtime_env = {"env_vars": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}}
            if os.environ.get("RAY_ADDRESS"):  # join that cluster; its size is its own
                ray.init(log_to_driver=False, runtime_env=runtime_env)
            else:
                ray.init(num_cpus=max(workers, 1), include_dashboard=False, log_to_driver=False,
                         runtime_env=runtime_env)  # fmt: skip
            self.started = True
        self.cores = max(int(ray.cluster_resources().get("CPU", workers)), 1)

    def results(self, tasks: Sequence[EpisodeTask], settings: EnvSettings) -> Iterator[EpisodeRecord]:
        return _ray_results(tasks, settings, self.workers)

    def close(self, abort: bool = False) -> None:
        if self.started:
            import ray

            ray.shutdown()
            self.started = False


def _ray_results(
    tasks: Sequence[EpisodeTask], settings: EnvSettings, workers: int
) -> Iterator[EpisodeRecord]:
    import ray

    remote = ray.remote(num_cpus=1, max_retries=2)(run_task)
    queue = list(tasks)
    pending: list[Any] = []
    limit = 2 * max(int(ray.cluster_resources().get("CPU", workers)), 1)
    try:
        while queue or pending:
            while queue and len(pending) < limit:
                pending.append(remote.remote(queue.pop(0), settings))
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        for ref in pending:  # interrupted: do not leave episodes running for nobody
            ray.cancel(ref, force=True)


# ---------------------------------------------------------------------------------------------
# The run


@dataclass
class GenerationResult:
    path: Path
    planned: int
    episodes: int
    new_episodes: int
    new_transitions: int
    wall_seconds: float
    workers: int
    backend: str
    rounds: list[dict[str, Any]] = field(default_factory=list)
    cpu_seconds: float = 0.0

    @property
    def transitions_per_minute(self) -> float:
        return self.new_transitions / max(self.wall_seconds, 1e-9) * 60.0

    @property
    def transitions_per_minute_per_core(self) -> float:
        return self.transitions_per_minute / max(self.workers, 1)

    def summary(self) -> str:
        return (
            f"generated {self.new_episodes} episodes ({self.new_transitions} transitions) "
            f"in {self.wall_seconds:.1f} s "
            f"with {self.workers} worker(s) [{self.backend}]; pack {self.path} holds {self.episodes} of "
            f"{self.planned} planned episodes\n"
            f"throughput: {self.transitions_per_minute:.1f} transitions/min, "
            f"{self.transitions_per_minute_per_core:.1f} transitions/min per core"
            + (
                f" ({self.new_transitions / self.cpu_seconds * 60.0:.1f} per busy core-minute)"
                if self.cpu_seconds
                else ""
            )
        )


def code_version() -> str:
    """``esper <version> git <commit>[+dirty]``, best effort: which code generated an episode.

    A pack resumed after the behavior policies or the env changed mixes behaviors; each episode
    records this string (``metadata.extra["code_version"]``) so that it can be told.
    """
    import importlib.metadata
    import subprocess

    try:
        version = importlib.metadata.version("esper")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    repo = Path(__file__).resolve().parents[2]
    try:
        git = ["git", "-C", str(repo)]
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True, timeout=10,
                               check=True).stdout.strip()  # fmt: skip
        return f"esper {version} git {commit}{'+dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return f"esper {version}"


def pack_header(spec: GenerationSpec) -> dict[str, Any]:
    """``pack.json`` content for a spec: the spec plus env, config, policy and action tables."""
    import torch

    from esper_agents.generation.schema import REWARD_COMPONENTS, STEP_ARRAYS
    from esper_agents.policies import get_policy
    from esper_env import ENV_IDS
    from esper_env.configs import ENVIRONMENT_CONFIGS
    from esper_env.rewards import get_reward_config
    from esper_env.spaces import observation_schema
    from esper_env.wrappers import compact_action_table, encode_joint

    s = spec.env
    schema = observation_schema(s.num_slots)
    table = compact_action_table(s.num_slots)
    return {
        "generation_spec": spec.to_dict(),
        "code_version": code_version(),
        "environment": {
            "env_id": s.env_id,
            "torch_version": torch.__version__,
            "torch_num_threads": s.num_threads,
            "dataset": ENV_IDS[s.env_id]["dataset"],
            "fidelity": s.fidelity,
            "max_epochs": s.max_epochs,
            "num_slots": s.num_slots,
            "early_stop_patience": s.early_stop_patience,
            "synth_seed": s.synth_seed,
            "reward": get_reward_config(s.reward).to_dict(),
            "observation_dim": max(sl.stop for sl in schema.values()),
            "observation_schema": {k: [sl.start, sl.stop] for k, sl in schema.items()},
            "n_actions": len(table),
            "actions": [
                {
                    "index": i,
                    "name": a.describe(),
                    "factored": [int(v) for v in a],
                    "joint": encode_joint(a, s.num_slots),
                }
                for i, a in enumerate(table)
            ],
            "reward_components": list(REWARD_COMPONENTS),
        },
        "environments": {c: ENVIRONMENT_CONFIGS[c].to_dict() for c in spec.configs},
        "policies": {p: get_policy(p).config.to_dict() for p in spec.policies},
        "step_arrays": {k: {"dtype": d, "shape": sh} for k, (d, sh) in STEP_ARRAYS.items()},
    }


def check_buildable(spec: GenerationSpec) -> None:
    """Build (and close) the env of every config of ``spec``, so that a spec that cannot run (a
    slot count the host lacks, CIFAR not downloaded) fails with a :class:`SpecError` before the
    pack exists."""
    for config_id in spec.configs:
        try:
            spec.env.make(config_id).close()
        except (ValueError, OSError) as err:
            raise SpecError(
                f"spec {spec.name!r}: the env for config {config_id!r} cannot be built: {err}"
            ) from None


def _health_inputs(
    pack_path: Path, spec: GenerationSpec
) -> tuple[Any, dict[tuple[str, str], dict[str, float]]]:
    """The pack as a HealthInput, and each cell's mean behavior probability per op."""
    from esper_agents.generation.exports import health_input
    from esper_agents.generation.packs import open_pack

    pack = open_pack(pack_path)
    ops = [name.split("(", 1)[0] for name in pack.action_names]
    op_names = sorted(set(ops))
    onehot = np.array([[o == name for name in op_names] for o in ops], dtype=np.float64)  # [n, n_ops]
    sums: dict[tuple[str, str], np.ndarray] = defaultdict(lambda: np.zeros(len(op_names)))
    steps: Counter[tuple[str, str]] = Counter()
    for rec in pack:
        cell = (rec.metadata.policy_id, rec.metadata.config_id)
        sums[cell] += (rec.arrays["behavior_probs"] @ onehot).sum(axis=0)
        steps[cell] += len(rec)
    mass = {c: dict(zip(op_names, (v / max(steps[c], 1)).tolist())) for c, v in sums.items()}
    return health_input(pack, expected_cells=len(spec.cells)), mass


def _run_health(pack_path: Path, spec: GenerationSpec) -> tuple[Any, dict] | None:
    try:
        from esper_agents.generation.health import run_health_checks
    except ImportError as err:  # the checks need scikit-learn
        print(f"warning: health checks unavailable ({err}); skipping adaptive allocation", file=sys.stderr)
        return None
    try:
        data, mass = _health_inputs(pack_path, spec)
        return run_health_checks(data), mass
    except ValueError as err:  # e.g. too little data to cluster; the episodes on disk are unaffected
        print(f"warning: health checks failed to run ({err}); skipping adaptive allocation", file=sys.stderr)
        return None


def generate(
    spec: GenerationSpec | str | os.PathLike,
    out: str | os.PathLike,
    *,
    workers: int = 1,
    backend: str = "local",
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> GenerationResult:
    """Generate (or resume) the pack ``out`` from ``spec``; see the module docstring."""
    from esper_agents.generation.packs import PackError, PackWriter, read_plan

    if not isinstance(spec, GenerationSpec):
        spec = load_spec(spec)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends are: {', '.join(BACKENDS)}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    say = log or (lambda msg: print(msg, file=sys.stderr))
    start = time.perf_counter()
    new_eps = new_trans = 0
    cpu = 0.0

    check_buildable(spec)  # before anything is written: a spec that cannot run leaves no pack behind
    with PackWriter.open(out, pack_header(spec), force=force) as writer:
        rounds = read_plan(writer.root)
        if not rounds:
            tasks0 = plan_uniform(spec)
            writer.write_plan_round(
                {"round": 0, "kind": "uniform", "episodes": [t.to_dict() for t in tasks0]}
            )
            rounds = read_plan(writer.root)
        planned = [EpisodeTask.from_dict(d) for r in rounds for d in r["episodes"]]
        done_ids = writer.completed_ids()
        unknown = done_ids - {t.episode_id for t in planned}
        if unknown:
            raise PackError(f"{writer.root}: holds episodes the plan does not list: {sorted(unknown)[:5]}")
        if done_ids:
            say(f"resuming {writer.root}: {len(done_ids)} of {len(planned)} planned episodes already written")

        runner = (_RayBackend if backend == "ray" else _LocalBackend)(workers)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(
                total=len(planned), initial=len(done_ids), unit="ep", dynamic_ncols=True, file=sys.stderr
            )

        version = code_version()

        def write(record: EpisodeRecord, task: EpisodeTask) -> None:
            nonlocal new_eps, new_trans, cpu
            record.metadata.extra["code_version"] = version
            writer.write_episode(record, task=task.to_dict())
            done_ids.add(record.episode_id)
            new_eps += 1
            new_trans += len(record)
            cpu += record.metadata.wall_seconds
            if bar is not None:
                minutes = max(time.perf_counter() - start, 1e-9) / 60.0
                rate = f"{new_eps / minutes:.1f} ep/min, {new_trans / minutes:.0f} transitions/min"
                bar.set_postfix_str(rate, refresh=False)
                bar.update(1)

        def run(tasks: list[EpisodeTask]) -> None:
            todo = schedule(spec, [t for t in tasks if t.episode_id not in done_ids])
            if not todo:
                return
            by_id = {t.episode_id: t for t in todo}
            with contextlib.closing(runner.results(todo, spec.env)) as stream:
                for record in stream:
                    write(record, by_id[record.episode_id])

        try:
            for r in rounds:
                run([EpisodeTask.from_dict(d) for d in r["episodes"]])
            ad = spec.adaptive
            extra = sum(len(r["episodes"]) for r in rounds[1:])
            while ad.enabled and len(rounds) <= ad.max_rounds and extra < ad.budget:
                checked = _run_health(writer.root, spec)
                if checked is None:
                    break
                report, mass = checked
                targets, reasons = adaptive_targets(report, spec, mass)
                n = min(ad.round_size, ad.budget - extra)
                tasks = plan_extra(spec, planned, targets, n, len(rounds))
                status = "passed" if report.passed else f"failed: {', '.join(c.name for c in report.errors)}"
                if not tasks:
                    say(f"health checks {status}; no cell to target, adaptive allocation done")
                    break
                say(f"health checks {status}; round {len(rounds)}: {len(tasks)} extra episodes toward "
                    f"{len(targets)} "
                    f"cells ({'; '.join(reasons)})")  # fmt: skip
                writer.write_plan_round({
                    "round": len(rounds), "kind": "adaptive", "reasons": reasons,
                    "health": {"passed": report.passed, "errors": [c.name for c in report.errors],
                               "warnings": [c.name for c in report.warnings]},
                    "targets": [list(c) for c in targets], "episodes": [t.to_dict() for t in tasks],
                })  # fmt: skip
                rounds = read_plan(writer.root)
                planned.extend(tasks)
                extra += len(tasks)
                if bar is not None:
                    bar.total = len(planned)
                    bar.refresh()
                run(tasks)
        finally:
            if bar is not None:
                bar.close()
            runner.close()
        result = GenerationResult(
            path=writer.root, planned=len(planned), episodes=len(writer.completed_ids()),
            new_episodes=new_eps, new_transitions=new_trans, wall_seconds=time.perf_counter() - start,
            workers=runner.cores, backend=backend,
            rounds=[{k: v for k, v in r.items() if k != "episodes"} | {"episodes": len(r["episodes"])}
                    for r in rounds],
            cpu_seconds=cpu,
        )  # fmt: skip
    return result


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
