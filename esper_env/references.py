"""Reference scores: what never growing, the default heuristic and the best scripted schedule score.

Like D4RL's and Minari's ``ref_min_score`` / ``ref_max_score``, these anchor a normalised score
that reads the same across presets and fidelities::

    normalized = (score - always-WAIT) / (heuristic - always-WAIT)

0 is never growing, 1 is the default heuristic (``capacity``); the best scripted schedule of the
growth-headroom benchmark is recorded beside them. The score is Esper's benchmark score
(:func:`esper_env.rewards.benchmark_score`: final validation accuracy minus 3 points per doubling
of the network), as a fraction. Each entry also holds the mean final validation accuracy and the
mean undiscounted return under every reward mode (the Minari export's reference returns), the
reset seeds it was measured on, and the command and code version that produced it.

An entry of an id with a distribution of task instances (``Esper-Micro``) was measured on a set
of instances and says which (an entry of a distribution other than the id's own, e.g.
``instances="optimizers"``, is keyed ``.../<distribution>``): ``instances`` (the distribution, e.g. ``"bottlenecks"``), ``split``
(``HELDOUT_SPLIT``'s ``start_level``/``num_levels``) and ``instance_indices``; its references are
means over those instances, the best scripted schedule is the *single best* (chosen on training
instances, scored on the held-out ones) and ``virtual_best`` the per-instance best schedule's mean
(the headroom an adaptive agent can win; ``benchmarks/micro_tier.py headroom`` measures both).

The entries live in ``reference_scores.json`` next to this module, written by
``python benchmarks/reference_scores.py``, keyed by the id they were measured on. An entry serves
every id of an env version with the same dynamics (:func:`esper_env.versions.same_dynamics`): v2
changed only the observation, so the entries measured on v1 are v2's too, without re-measuring
(a scripted or heuristic policy's score does not depend on the observation's layout). Look one
up with :func:`reference_scores`:

>>> import esper_env
>>> ref = esper_env.reference_scores("Esper-SynthCIFAR-v2", config="impaired", fidelity="tiny")
>>> ref.heuristic > ref.wait
True
>>> esper_env.normalized_score(ref.heuristic, "Esper-SynthCIFAR-v2", config="impaired", fidelity="tiny")
1.0
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

__all__ = [
    "REFERENCE_PATH",
    "ReferenceScores",
    "load_references",
    "normalize",
    "normalized_score",
    "reference_key",
    "reference_scores",
]

REFERENCE_PATH = Path(__file__).with_name("reference_scores.json")
#: The smallest heuristic-over-WAIT gap a normalised score is defined for (0.1 accuracy points):
#: at the "test" fidelity (a plumbing check near chance) both sit at chance and the ratio is noise.
MIN_SPREAD = 1e-3


@dataclass(frozen=True)
class ReferenceScores:
    """The reference scores of one env id, preset, fidelity and episode length."""

    env_id: str
    config: str
    fidelity: str
    max_epochs: int
    wait: float  #: always-WAIT's mean benchmark score
    heuristic: float  #: the default heuristic's mean benchmark score
    heuristic_policy: str
    best_scripted: float  #: the best scripted growth schedule's mean benchmark score
    best_scripted_schedule: str
    seeds: tuple[int, ...]  #: the reset seeds every reference was measured on
    final_val_accuracy: Mapping[str, float] = field(default_factory=dict)  #: per reference
    returns: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  #: reference -> mode -> return
    command: str = ""
    code_version: Mapping[str, Any] = field(default_factory=dict)
    #: The per-instance best schedule's mean benchmark score (entries over instances only).
    virtual_best: float | None = None
    #: The instance distribution the entry was measured on (``None``: an id without one).
    instances: str | None = None
    #: The split its instances come from: ``{"name", "start_level", "num_levels"}``.
    split: Mapping[str, Any] | None = None
    #: The instances it was measured on (each from every reset seed of ``seeds``).
    instance_indices: tuple[int, ...] | None = None

    #: The optional fields, written only when set (older entries had none of them).
    OPTIONAL: ClassVar[tuple[str, ...]] = ("virtual_best", "instances", "split", "instance_indices")

    @property
    def key(self) -> str:
        return reference_key(self.env_id, self.config, self.fidelity, self.max_epochs, self.instances)

    def normalize(self, score: float) -> float:
        """``(score - wait) / (heuristic - wait)``; ``score`` is a benchmark score as a fraction in
        [-1, 1], as in :func:`normalized_score`; see :func:`normalize`."""
        return normalize(check_fraction(score), self.wait, self.heuristic)

    def to_json(self) -> dict[str, Any]:
        optional = {
            name: _plain(getattr(self, name)) for name in self.OPTIONAL if getattr(self, name) is not None
        }
        return {
            "env_id": self.env_id, "config": self.config, "fidelity": self.fidelity,
            "max_epochs": self.max_epochs, "wait": self.wait, "heuristic": self.heuristic,
            "heuristic_policy": self.heuristic_policy, "best_scripted": self.best_scripted,
            "best_scripted_schedule": self.best_scripted_schedule, "seeds": list(self.seeds),
            "final_val_accuracy": dict(self.final_val_accuracy),
            "returns": {k: dict(v) for k, v in self.returns.items()},
            "command": self.command, "code_version": dict(self.code_version),
        } | optional  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReferenceScores:
        indices = data.get("instance_indices")
        return cls(**{
            **data, "seeds": tuple(data["seeds"]),
            **({} if indices is None else {"instance_indices": tuple(indices)}),
        })  # fmt: skip

    def measured_on(self) -> str | None:
        """The instances in words (``None``: an id without instances)."""
        if self.instances is None:
            return None
        split = dict(self.split or {})
        name = split.get("name", "a split")
        n = "" if self.instance_indices is None else f"{len(self.instance_indices)} "
        return (
            f"{n}instances of {name} (start_level={split.get('start_level')}, num_levels={split.get('num_levels')}) "
            f"of distribution {self.instances!r}"
        )


def _plain(value: Any) -> Any:
    """A field's JSON form (tuples as lists, mappings as dicts)."""
    return list(value) if isinstance(value, tuple) else dict(value) if isinstance(value, Mapping) else value


def reference_key(
    env_id: str, config: str, fidelity: str, max_epochs: int, instances: str | None = None
) -> str:
    """The registry key of an entry: ``env_id/config/fidelity/max_epochs``, then ``/instances`` for a
    distribution of task instances other than the id's own (``None``: the id's own)."""
    key = f"{env_id}/{config}/{fidelity}/{int(max_epochs)}"
    return key if instances is None or instances == _default_instances(env_id) else f"{key}/{instances}"


def _default_instances(env_id: str) -> str | None:
    """The distribution an id registers (``None``: none, or an unknown id)."""
    from esper_env.datasets import ENV_IDS

    value = ENV_IDS.get(env_id, {}).get("instances")
    return None if value is None else str(value)


@cache
def _load(path: Path) -> dict[str, ReferenceScores]:
    if not path.exists():
        return {}
    entries = json.loads(path.read_text())["entries"]
    return {key: ReferenceScores.from_json(value) for key, value in entries.items()}


def load_references(path: str | Path = REFERENCE_PATH) -> dict[str, ReferenceScores]:
    """Every entry of the registry at ``path`` (default: the shipped one), by key."""
    return dict(_load(Path(path)))


def reference_scores(
    env_id: str,
    *,
    config: str = "impaired",
    fidelity: str = "tiny",
    max_epochs: int | None = None,
    instances: str | None = None,
) -> ReferenceScores:
    """The reference entry of ``env_id`` with preset ``config`` at ``fidelity``.

    ``max_epochs`` defaults to the preset's episode length; ``instances`` names a distribution of
    task instances other than the id's own (``gymnasium.make(..., instances=...)``). A combination
    nobody has measured is a ``LookupError`` that lists the measured ones.
    """
    from esper_env.configs import get_config

    if max_epochs is None:
        max_epochs = get_config(config).max_epochs
    key = reference_key(env_id, config, fidelity, max_epochs, instances)
    entries = _load(REFERENCE_PATH)
    for served_by in _same_dynamics_ids(env_id):
        entry = entries.get(reference_key(served_by, config, fidelity, max_epochs, instances))
        if entry is not None:
            return entry  # its env_id names the id it was measured on
    known = ", ".join(sorted(entries)) or "none"
    raise LookupError(
        f"no reference scores for {key!r} (env id/config/fidelity/max_epochs[/instances]); measured: {known} (an entry "
        "serves the ids of every version with its dynamics). Measure them with: python benchmarks/reference_scores.py"
    )


def _same_dynamics_ids(env_id: str) -> list[str]:
    """``env_id``, then the ids of its dataset in the other versions with the same dynamics, newest first."""
    from esper_env.datasets import ENV_IDS, env_version
    from esper_env.versions import same_dynamics

    if env_id not in ENV_IDS:
        return [env_id]
    name, version = env_id.rpartition("-")[0], env_version(env_id)
    return [env_id] + [
        other
        for other in ENV_IDS
        if other != env_id and other.rpartition("-")[0] == name and same_dynamics(env_version(other), version)
    ]


def check_fraction(score: Any, name: str = "score") -> float:
    """``score`` if it is a benchmark score as a fraction in [-1, 1]; a ``ValueError`` otherwise that
    suggests the fraction a score in points (the README tables' unit: 75.0 is 0.75) means."""
    if isinstance(score, bool) or not isinstance(score, numbers.Real) or not math.isfinite(score):
        raise ValueError(f"{name} must be a finite number, got {score!r}")
    if not -1.0 <= score <= 1.0:
        hint = f"; a score in points? pass {score / 100:g}" if -100 <= score <= 100 else ""
        raise ValueError(
            f"{name} must be a benchmark score as a fraction in [-1, 1] (the README tables print "
            f"points: 75.0 there is 0.75 here), got {score!r}{hint}"
        )
    return float(score)


def normalize(score: float, wait: float, heuristic: float) -> float:
    """``(score - wait) / (heuristic - wait)``: 0 at always-WAIT, 1 at the heuristic.

    The affine map itself, for any finite numbers in one unit (the public
    :func:`normalized_score` and :meth:`ReferenceScores.normalize` take fractions and check them).
    Refused (``ValueError``) where the heuristic is within :data:`MIN_SPREAD` of WAIT, where the ratio is
    undefined or noise.
    """
    values = {"score": score, "wait": wait, "heuristic": heuristic}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if heuristic - wait < MIN_SPREAD:
        raise ValueError(
            f"the heuristic's score {heuristic!r} is not above always-WAIT's {wait!r} by {MIN_SPREAD}: "
            "a normalised score is undefined here (a 'test'-fidelity env sits near chance)"
        )
    return (float(score) - wait) / (heuristic - wait)


def normalized_score(
    score: float,
    env_id: str,
    *,
    config: str = "impaired",
    fidelity: str = "tiny",
    max_epochs: int | None = None,
    instances: str | None = None,
) -> float:
    """``score`` normalised by the registry's entry (see :func:`reference_scores`, :func:`normalize`).

    ``score`` is a benchmark score as a fraction in [-1, 1] (the README's tables print it in
    points: 75.0 there is 0.75 here); a value outside it is refused. The result is 0 at
    always-WAIT and 1 at the heuristic (the tables' "normalized" column, unscaled).
    """
    ref = reference_scores(
        env_id, config=config, fidelity=fidelity, max_epochs=max_epochs, instances=instances
    )
    return ref.normalize(score)
