"""Health check results: one :class:`CheckResult` per check and tier, gathered in a :class:`HealthReport`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from esper_agents.generation.health.clusters import StateClusters


@dataclass
class CheckResult:
    """One check at one tier. ``passed`` is ``figure <comparison> threshold``."""

    name: str
    tier: str  #: "error" or "warning"
    figure: float
    threshold: float
    passed: bool
    detail: str
    cells: list[Any] = field(default_factory=list)  #: (policy, config) cells or op names implicated
    comparison: str = ">="  #: how the figure must compare to the threshold to pass

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["figure"] = _json_number(self.figure)
        d["cells"] = [list(c) if isinstance(c, tuple) else c for c in self.cells]
        return d


@dataclass
class HealthReport:
    checks: list[CheckResult]
    n_transitions: int
    n_episodes: int
    clusters: StateClusters
    seconds: float

    @property
    def errors(self) -> list[CheckResult]:
        """Failed blocking checks."""
        return [c for c in self.checks if c.tier == "error" and not c.passed]

    @property
    def warnings(self) -> list[CheckResult]:
        """Failed warning checks."""
        return [c for c in self.checks if c.tier == "warning" and not c.passed]

    @property
    def passed(self) -> bool:
        """True when no blocking check failed (warnings allowed)."""
        return not self.errors

    def get(self, name: str, tier: str) -> CheckResult:
        for c in self.checks:
            if c.name == name and c.tier == tier:
                return c
        valid = [(c.name, c.tier) for c in self.checks]
        raise KeyError(f"no check {name!r} at tier {tier!r}; checks are {valid}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "n_transitions": self.n_transitions,
            "n_episodes": self.n_episodes,
            "n_clusters": self.clusters.n_clusters,
            "seconds": round(self.seconds, 3),
            "errors": [c.name for c in self.errors],
            "warnings": [c.name for c in self.warnings],
            "checks": [c.to_dict() for c in self.checks],
        }

    def to_markdown(self) -> str:
        lines = [
            "| check | tier | figure | threshold | verdict |",
            "|---|---|---|---|---|",
        ]
        for c in self.checks:
            figure, threshold = format_number(c.figure), format_number(c.threshold)
            lines.append(f"| {c.name} | {c.tier} | {figure} | {c.comparison} {threshold} | {verdict(c)} |")
        return "\n".join(lines) + "\n"


def verdict(check: CheckResult) -> str:
    if check.passed:
        return "pass"
    return "FAIL" if check.tier == "error" else "warn"


def format_number(x: float) -> str:
    if isinstance(x, (int, np.integer)) or (math.isfinite(x) and float(x).is_integer() and abs(x) >= 1):
        return str(int(x))
    return f"{x:.4g}"


def _json_number(x: float) -> float | str | None:
    x = float(x)
    if math.isnan(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def format_percent(x: float) -> str:
    """``0.05`` -> ``"5.0%"``."""
    return f"{100 * x:.1f}%"
