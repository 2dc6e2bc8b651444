"""Scripted growth schedules: fixed rules of when, where and what to grow.

The growth-headroom benchmark (``benchmarks/growth_headroom.py``) runs them next to always-WAIT,
and the reference registry (:mod:`esper_env.references`) records the best one of each preset, so
they live here, in the package, by name:

* ``wait``: never grow (the preset's host with no growth).
* ``now:<blueprint>``: grow-now, germinate the blueprint in every slot as early as legal, advance
  as soon as each gate allows (FAST tempo), fossilize when legal.
* ``now:<blueprint>@<slots>``: the same in those slots only; ``from<E>:<blueprint>``: the same, no
  seed before epoch E (timing).
* ``hold-then-prune:<blueprint>``: grow-now but never fossilize, prune every seed from epoch 20
  (MEDIUM ramp: an agent that loses its nerve); ``prune-at-23:<blueprint>@0``: the seed is held,
  not fossilized, and pruned at once at epoch 23 (an agent that dodges the rent on the final
  size); ``churn:<blueprint>``: germinate in slot 0, prune the seed as soon as it is HOLDING,
  again and again: schedules that should hurt.
* ``heuristic:<policy>``: a behavior policy of :mod:`esper_agents.policies` acting greedily
  through ``CompactActions`` (the episode runner builds it; :meth:`Schedule.action` is not used).
* ``static-x<size>``: always WAIT on a static host of the preset's architecture scaled to
  ``size`` times its parameters (the episode runner builds the host).

A schedule reads the env's exact legality (``legal_actions()``) and its slots' stages, not the
observation, and returns a full :class:`~esper_env.spaces.FactoredAction`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from esper_agents.policies.heuristic import DEFAULT_HEURISTIC
from esper_env.blueprints import BLUEPRINTS, NOOP_BLUEPRINT, ORIGINAL_BLUEPRINTS
from esper_env.lifecycle import AlphaSpeed, Op, Stage, Tempo
from esper_env.spaces import FactoredAction

__all__ = [
    "CAPACITY_BLUEPRINTS",
    "REAL_BLUEPRINTS",
    "SCHEDULES",
    "SCHEDULE_KINDS",
    "Schedule",
    "get_schedule",
    "grow",
    "schedules_for",
]

CAPACITY_BLUEPRINTS: tuple[str, ...] = tuple(b for b in BLUEPRINTS if b not in ORIGINAL_BLUEPRINTS)
REAL_BLUEPRINTS: tuple[str, ...] = tuple(b for b in BLUEPRINTS if b != NOOP_BLUEPRINT)
SCHEDULE_KINDS: tuple[str, ...] = ("wait", "grow", "hold-then-prune", "churn", "heuristic", "static")


@dataclass(frozen=True)
class Schedule:
    """One scripted rule; ``kind`` is one of :data:`SCHEDULE_KINDS`."""

    name: str
    kind: str
    blueprint: str | None = None  #: the blueprint it grows (``heuristic``: the policy id)
    slots: tuple[int, ...] = (0, 1, 2)
    start: int = 0  #: first epoch a seed may be germinated
    size: float = 1.0  #: static hosts: parameters / the preset's host parameters
    prune_at: int = 20  #: hold-then-prune: first epoch of the prunes
    prune_speed: AlphaSpeed = AlphaSpeed.MEDIUM

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULE_KINDS:
            raise ValueError(
                f"unknown schedule kind {self.kind!r}; valid kinds are: {', '.join(SCHEDULE_KINDS)}"
            )

    def action(self, env: Any, epoch: int) -> FactoredAction:
        """The schedule's action now, from the env's exact legality (``env`` is the unwrapped env)."""
        legal = env.legal_actions()
        if self.kind in ("wait", "static"):
            return FactoredAction(Op.WAIT, 0)
        stages = [slot.stage for slot in env.engine.slots]
        if self.kind == "hold-then-prune" and epoch >= self.prune_at:
            for k in self.slots:
                if legal[Op.PRUNE, k]:
                    return FactoredAction(Op.PRUNE, k, alpha_speed=self.prune_speed)
            return FactoredAction(Op.WAIT, 0)
        for k in self.slots:
            if legal[Op.ADVANCE, k]:
                return FactoredAction(Op.ADVANCE, k)
            if self.kind == "churn" and stages[k] == Stage.HOLDING:
                return FactoredAction(Op.PRUNE, k)
            if self.kind == "grow" and legal[Op.FOSSILIZE, k]:
                return FactoredAction(Op.FOSSILIZE, k)
        if epoch >= self.start and not (self.kind == "hold-then-prune" and epoch >= self.prune_at - 5):
            assert self.blueprint is not None
            for k in self.slots:
                if legal[Op.GERMINATE, k]:
                    return FactoredAction(
                        Op.GERMINATE, k, blueprint=BLUEPRINTS.index(self.blueprint), tempo=Tempo.FAST
                    )
        return FactoredAction(Op.WAIT, 0)


def grow(blueprint: str, slots: tuple[int, ...] = (0, 1, 2), start: int = 0) -> Schedule:
    """The grow-now schedule of ``blueprint`` in ``slots``, from epoch ``start``."""
    where = "" if slots == (0, 1, 2) else "@" + "".join(map(str, slots))
    when = "now" if start == 0 else f"from{start}"
    return Schedule(f"{when}:{blueprint}{where}", "grow", blueprint, slots, start)


def schedules_for(config: str) -> list[Schedule]:
    """The default schedule list of a preset (the sweep first, then timing, slots and harm)."""
    out = [Schedule("wait", "wait")]
    out += [grow(b) for b in REAL_BLUEPRINTS]
    out += [grow("widen_4x", (s,)) for s in (0, 1, 2)]
    out += [grow("widen_4x", (0,), start=e) for e in (5, 10, 15)]
    out += [Schedule("hold-then-prune:widen_4x", "hold-then-prune", "widen_4x")]
    out += [Schedule("prune-at-23:widen_4x@0", "hold-then-prune", "widen_4x", (0,), prune_at=23,
                     prune_speed=AlphaSpeed.INSTANT)]  # fmt: skip
    out += [Schedule("churn:widen_4x", "churn", "widen_4x", (0,))]
    out += [Schedule(f"heuristic:{p}", "heuristic", p) for p in (DEFAULT_HEURISTIC, "baseline")]
    if config != "impaired":  # a wider host trains 4-16x slower per seed: the main lines only
        out = [
            s
            for s in out
            if s.name in ("wait", "now:conv_heavy", "now:widen_4x@0", f"heuristic:{DEFAULT_HEURISTIC}")
        ]
    return out


#: Every named schedule (the full list, ``impaired``'s), by name; ``static-x<size>`` is built on demand.
SCHEDULES: Mapping[str, Schedule] = MappingProxyType({s.name: s for s in schedules_for("impaired")})


def get_schedule(name: str) -> Schedule:
    """The schedule ``name`` (a key of :data:`SCHEDULES`, or ``static-x<size>``)."""
    if name in SCHEDULES:
        return SCHEDULES[name]
    if isinstance(name, str) and name.startswith("static-x"):
        try:
            size = float(name[len("static-x") :])
        except ValueError:
            size = float("nan")
        if size > 0 and size != float("inf"):
            return Schedule(name, "static", size=size)
    raise ValueError(
        f"unknown schedule {name!r}; valid schedules are: {', '.join(SCHEDULES)}, static-x<size>"
    )
