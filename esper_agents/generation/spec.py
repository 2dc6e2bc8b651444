"""Generation specs: the TOML matrix (``datasets/*.toml``) read, validated and normalized.

Spec (read with :mod:`tomllib`)::

    name = "smoke"                       # pack name
    description = "..."                  # optional

    [env]
    id = "Esper-SynthCIFAR-v2"           # any esper_env id
    fidelity = "test"                    # full, fast, tiny, test
    max_epochs = 8
    num_slots = 3                        # optional, default 3
    reward = "shaped"                    # reward mode of the logged rewards (components are always logged)
    synth_seed = 0                       # optional, SynthCIFAR only
    early_stop_patience = 0              # optional; 0 = off
    instances = "bottlenecks"            # optional: the task distribution (default: the id's)
    start_level = 0                      # optional: draw instances [start_level, start_level + num_levels)
    num_levels = 0                       # optional; 0 = every index from start_level on
    (the [env] table is read into an esper_env.EnvSettings whose config is the matrix's first)

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

:func:`load_spec` reads a file and :func:`parse_spec` validates a parsed document;
:meth:`GenerationSpec.to_dict` is the normalized form a pack stores, and :func:`check_buildable`
builds every config's env once. Every error is a :class:`SpecError`
naming the bad key or value and, where there is a list, the valid ones.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from esper_env.datasets import CURRENT_ENV_IDS
from esper_env.instances import DISTRIBUTIONS
from esper_env.settings import EnvSettings


class SpecError(ValueError):
    """A generation spec that is invalid; the message names the bad key or value."""


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


#: The keys of a spec's ``[env]`` table and the :class:`EnvSettings` field each one sets.
ENV_KEYS: Mapping[str, str] = {
    "id": "env_id", "fidelity": "fidelity", "max_epochs": "max_epochs", "num_slots": "num_slots",
    "reward": "reward", "synth_seed": "synth_seed", "early_stop_patience": "early_stop_patience",
    "instances": "instances", "num_levels": "num_levels", "start_level": "start_level",
}  # fmt: skip


@dataclass(frozen=True)
class GenerationSpec:
    name: str
    #: The env of every episode, in the matrix's first config (a cell replaces ``config``); its
    #: fidelity is explicit (the id's default when the spec names none).
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
        return {
            "name": self.name,
            "description": self.description,
            "env": self.env.to_dict(),
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


#: The most episodes a spec may plan (uniform pass plus adaptive budget); the plan is a list in memory.
MAX_PLANNED_EPISODES = 10_000_000


def _positive(value: int, where: str, allow_zero: bool = False) -> int:
    if value < (0 if allow_zero else 1):
        raise SpecError(f"{where}: must be {'>= 0' if allow_zero else '>= 1'}, got {value!r}")
    return value


def _env_settings(table: dict[str, Any], where: str) -> EnvSettings:
    """The :class:`EnvSettings` of a spec's ``[env]`` table (``id`` and ``max_epochs`` required,
    ``early_stop_patience = 0``: off); each value is checked by the record, the error names the key."""
    fields: dict[str, Any] = {}
    for key, name in ENV_KEYS.items():
        required = key in ("id", "max_epochs")
        value = _take(table, key, str if key in ("id", "fidelity", "reward", "instances") else int, where,
                      ... if required else None)  # fmt: skip
        if value is None or (key == "early_stop_patience" and value == 0):
            continue
        # A split is checked on its own here, and against the id's distribution below.
        alone = {"instances": next(iter(DISTRIBUTIONS))} if name in ("num_levels", "start_level") else {}
        try:
            EnvSettings(**{name: value}, **alone)
        except ValueError as err:
            raise SpecError(f"{where}.{key}: {str(err).removeprefix(name + ' ')}") from None
        fields[name] = value
    _no_extra(table, where, ENV_KEYS)
    if fields["env_id"] not in CURRENT_ENV_IDS:
        raise SpecError(
            f"{where}.id: {fields['env_id']!r} is an older env version; packs are generated on the current "
            f"ids: {', '.join(CURRENT_ENV_IDS)}"
        )
    try:
        settings = EnvSettings(**fields)
    except ValueError as err:
        raise SpecError(f"{where}: {err}") from None
    return settings.replace(fidelity=settings.resolved_fidelity)


def parse_spec(doc: Mapping[str, Any], source: str = "spec") -> GenerationSpec:
    """Validate a spec document (the parsed TOML); raises :class:`SpecError` naming the problem."""
    from esper_agents.policies import POLICY_IDS
    from esper_env.configs import ENVIRONMENT_CONFIGS

    top = {k: (dict(v) if isinstance(v, dict) else v) for k, v in doc.items()}
    name = _take(top, "name", str, source)
    description = _take(top, "description", str, source, "")
    env_t = _take(top, "env", dict, source)
    matrix = _take(top, "matrix", dict, source)
    adaptive_t = _take(top, "adaptive", dict, source, {})
    _no_extra(top, source, ["name", "description", "env", "matrix", "adaptive"])
    if not name or not all(ch.isalnum() or ch in "-_." for ch in name):
        raise SpecError(f"{source}.name: {name!r} must be non-empty letters, digits, '-', '_' or '.'")

    settings = _env_settings(env_t, f"{source}[env]")

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
    spec = GenerationSpec(
        name=name, env=settings.replace(config=configs[0]), policies=policies, configs=configs, epsilons=epsilons,
        episodes_per_cell=per_cell,
        base_seed=base_seed, policy_overrides=tuple(overrides), adaptive=adaptive, description=description,
    )  # fmt: skip
    planned = spec.uniform_episodes + adaptive.budget  # arithmetic: nothing is built yet
    if planned > MAX_PLANNED_EPISODES:
        raise SpecError(
            f"{source}: plans {planned:,} episodes ({spec.uniform_episodes:,} in the uniform pass: "
            f"{len(spec.cells)} cells x episodes_per_cell, plus an adaptive budget of {adaptive.budget:,}), "
            f"more than the {MAX_PLANNED_EPISODES:,} a pack may plan; lower [matrix].episodes_per_cell "
            "or [adaptive].budget"
        )
    return spec


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


def check_buildable(spec: GenerationSpec) -> None:
    """Build (and close) the env of every config of ``spec``, so that a spec that cannot run (a
    slot count the host lacks, CIFAR not downloaded) fails with a :class:`SpecError` before the
    pack exists."""
    for config_id in spec.configs:
        try:
            spec.env.replace(config=config_id).make().close()
        except (ValueError, OSError) as err:
            raise SpecError(
                f"spec {spec.name!r}: the env for config {config_id!r} cannot be built: {err}"
            ) from None
