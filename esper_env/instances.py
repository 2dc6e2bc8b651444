"""Task instances: a documented distribution the env draws one instance from at every reset.

On a single preset a fixed rule is optimal (widen the first block at once); learning pays only
where what is right differs from task to task and can be read from what the agent observes. An
:class:`Instance` fixes what differs: the host's widths (each block's drawn on its own; the
narrowest is the instance's bottleneck), the learning rate, the price of growth (rent per
doubling of the network) and, on the fast tier's clusters task, how hard the task is (blobs per
class, their spread, label noise). ``bottlenecks`` is the fast tier's first distribution; ``optimizers``
(the host trains with SGD or Adam, which the observation does not show, at learning rates where
the two behave differently, under a fixed rent) and ``difficulty`` (a hidden task difficulty too,
and an observed rent) came next; ``slow`` (``optimizers`` at its two slow learning rates, where
growth pays on every instance but which growth depends on the hidden optimizer) is the one whose
headroom meets issue 22's bars 2 and 3 together; ``slow-paced`` draws ``slow``'s instances and
trains the fast tier at 3x their learning rate (:attr:`Distribution.mlp_lr_scale`), which makes
it learn about as fast per epoch as "tiny" and rank the schedules as ``slow`` does there (issue
22's bar 4). The measurements and the rejected ones are in docs/FAST_TIER.md.

Instance ``k`` is a pure function of ``k`` (:meth:`Distribution.draw`: each field drawn
independently from ``numpy.random.default_rng([0xE5E2, k])``). Splits follow Procgen's
``num_levels``/``start_level``: a :class:`Split` covers the indices ``[start_level, start_level +
num_levels)`` (``num_levels=0``: every index from ``start_level`` on). :data:`TRAIN_SPLIT` and
:data:`HELDOUT_SPLIT` are disjoint: a training run never draws a held-out instance. Plain data, no
torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from esper_env.runtime import lookup

__all__ = [
    "DISTRIBUTIONS", "HELDOUT_SPLIT", "MAX_LEVELS", "OPTIMIZERS", "TRAIN_SPLIT", "Distribution", "Instance", "Split",
    "get_distribution",
]  # fmt: skip

#: The optimizers an instance may train its host with (:func:`esper_env.engine.build_optimizer`).
OPTIMIZERS: tuple[str, ...] = ("SGD", "Adam")

#: Instance indices are integers in ``[0, MAX_LEVELS)``.
MAX_LEVELS = 2**31 - 1


@dataclass(frozen=True)
class Instance:
    """One task instance. Every field is plain data; :meth:`to_dict` is JSON-ready."""

    #: Its index in the distribution (what ``reset(options={"instance": k})`` pins).
    index: int
    #: The host's width at each of its three slots.
    widths: tuple[int, int, int]
    #: The narrowest block (the first of them on a tie; -1 when all are equally wide; an int, so
    #: that infos stack in vector envs).
    bottleneck: int
    #: The host's learning rate (seeds train at the preset's multiple of it).
    learning_rate: float
    #: The price of growth: benchmark-score points (0-1 units) per doubling of the network.
    rent: float
    #: The clusters task (fast tier only): Gaussian blobs per class, their spread, label noise.
    blobs: int
    spread: float
    label_noise: float
    #: The host's batch size (0: the preset's); fixed by the distribution, not drawn.
    batch_size: int = 0
    #: The host's (and its seeds') optimizer, ``"SGD"`` or ``"Adam"`` ("": the preset's). Not in the
    #: observation: an agent reads it from the learning curve only.
    optimizer: str = ""
    #: On the fast tier (an MLP on the clusters task) the host and its seeds train at this multiple
    #: of ``learning_rate``; image hosts ignore it. The observation shows ``learning_rate``, as at "tiny".
    mlp_lr_scale: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Distribution:
    """Independent uniform choices per field; :meth:`draw` turns an index into an :class:`Instance`."""

    name: str
    #: Each block's width, drawn independently.
    widths: tuple[int, ...]
    learning_rate: tuple[float, ...]
    rent: tuple[float, ...]
    blobs: tuple[int, ...]
    spread: tuple[float, ...]
    label_noise: tuple[float, ...]
    #: The host's batch size on every instance (0: the preset's).
    batch_size: int = 0
    #: The optimizers drawn from (empty: the preset's). Drawn after every other field, so a
    #: distribution without it draws the same instances as before the field existed.
    optimizer: tuple[str, ...] = ()
    #: The fast tier's learning-rate multiple on every instance (:attr:`Instance.mlp_lr_scale`); not
    #: drawn. An epoch of the fast tier is 4 optimizer steps where "tiny"'s is 31, so at one rate it
    #: learns less per epoch; ``slow-paced`` sets 3, the multiple at which WAIT learns about as fast
    #: per epoch as at "tiny" (docs/fast_tier/probe_lr_scale.md).
    mlp_lr_scale: float = 1.0
    #: One line for the docs.
    summary: str = ""

    def __post_init__(self) -> None:
        bad = [o for o in self.optimizer if o not in OPTIMIZERS]
        if bad:
            raise ValueError(
                f"distribution {self.name!r}: unknown optimizer(s) {bad}; valid: {list(OPTIMIZERS)}"
            )
        m = self.mlp_lr_scale
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 < m < float("inf"):
            raise ValueError(
                f"distribution {self.name!r}: mlp_lr_scale must be a positive finite number, got {m!r}"
            )

    def draw(self, index: int) -> Instance:
        """Instance ``index``: a pure function of it (``ValueError`` if it is not a valid index)."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < MAX_LEVELS:
            raise ValueError(f"an instance index is an integer in [0, {MAX_LEVELS}), got {index!r}")
        rng = np.random.default_rng([0xE5E2, int(index)])

        def pick(values: tuple[Any, ...]) -> Any:
            return values[int(rng.integers(len(values)))]

        widths = [int(pick(self.widths)) for _ in range(3)]
        neck = min(range(3), key=lambda i: widths[i]) if len(set(widths)) > 1 else -1
        return Instance(
            index=int(index),
            widths=(widths[0], widths[1], widths[2]),
            bottleneck=int(neck),
            learning_rate=float(pick(self.learning_rate)),
            rent=float(pick(self.rent)),
            blobs=int(pick(self.blobs)),
            spread=float(pick(self.spread)),
            label_noise=float(pick(self.label_noise)),
            batch_size=self.batch_size,
            optimizer=str(pick(self.optimizer)) if self.optimizer else "",
            mlp_lr_scale=float(self.mlp_lr_scale),
        )


#: SGD or Adam (hidden) at overlapping learning rates; ``difficulty`` and ``slow`` change some of its fields.
_OPTIMIZERS = Distribution(
    "optimizers",
    widths=(8, 16, 64),
    learning_rate=(0.003, 0.01, 0.03, 0.1),
    rent=(0.06,),
    blobs=(4, 8, 16),
    spread=(0.5,),
    label_noise=(0.0, 0.1),
    batch_size=256,
    optimizer=("SGD", "Adam"),
    summary="SGD or Adam (not observed) at overlapping learning rates; a fixed rent (docs/FAST_TIER.md)",
)

#: The distributions by name (``instances=`` of the env). ``bottlenecks`` is the fast tier's.
DISTRIBUTIONS: dict[str, Distribution] = {
    d.name: d
    for d in (
        Distribution(
            "bottlenecks",
            widths=(4, 16, 64),
            learning_rate=(0.03, 0.1, 0.3),
            rent=(0.0, 0.05, 0.15),
            blobs=(4, 8, 16),
            spread=(0.5,),
            label_noise=(0.0, 0.1),
            batch_size=256,
            summary="each block 4, 16 or 64 wide; lr, rent and task difficulty vary (docs/FAST_TIER.md)",
        ),
        _OPTIMIZERS,
        replace(
            _OPTIMIZERS,
            name="difficulty",
            rent=(0.0, 0.03, 0.06),
            blobs=(2, 8, 32),
            summary="optimizers, with a hidden task difficulty (2, 8 or 32 blobs per class) and a rent of 0, 3 "
            "or 6 points per doubling (docs/FAST_TIER.md)",
        ),
        replace(
            _OPTIMIZERS,
            name="slow",
            learning_rate=(0.003, 0.01),
            summary="optimizers at its two slow learning rates: growth pays, but which growth depends on the "
            "optimizer, which the observation does not show (docs/FAST_TIER.md)",
        ),
        replace(
            _OPTIMIZERS,
            name="slow-paced",
            learning_rate=(0.003, 0.01),
            mlp_lr_scale=3.0,
            summary="slow's instances, the fast tier training at 3x their learning rate, where never growing learns "
            'about as fast per epoch as at "tiny" (docs/fast_tier/probe_lr_scale.md)',
        ),
    )
}


def get_distribution(name: str | Distribution) -> Distribution:
    """The distribution ``name``; ``ValueError`` naming the valid ones otherwise."""
    if isinstance(name, Distribution):
        return name
    return lookup("instance distribution", name, DISTRIBUTIONS)


@dataclass(frozen=True)
class Split:
    """Instance indices ``[start_level, start_level + num_levels)``; ``num_levels=0``: all from ``start_level``."""

    start_level: int = 0
    num_levels: int = 0

    def __post_init__(self) -> None:
        for name, value in (("start_level", self.start_level), ("num_levels", self.num_levels)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, np.integer))
                or not 0 <= value < MAX_LEVELS
            ):
                raise ValueError(f"{name} must be an integer in [0, {MAX_LEVELS}), got {value!r}")
        if self.stop > MAX_LEVELS:
            raise ValueError(
                f"start_level + num_levels = {self.start_level + self.num_levels} exceeds {MAX_LEVELS}"
            )

    @property
    def stop(self) -> int:
        return self.start_level + self.num_levels if self.num_levels else MAX_LEVELS

    def __contains__(self, index: object) -> bool:
        return (
            isinstance(index, (int, np.integer))
            and not isinstance(index, bool)
            and self.start_level <= index < self.stop
        )

    def check(self, index: Any) -> int:
        """``index`` as an int if the split holds it; ``ValueError`` naming the valid range otherwise."""
        if index not in self:
            raise ValueError(
                f"instance {index!r} is not in this env's split: valid instances are the integers in "
                f"[{self.start_level}, {self.stop}) (start_level={self.start_level}, num_levels={self.num_levels})"
            )
        return int(index)

    def sample(self, rng: np.random.Generator) -> int:
        """A uniformly drawn index of the split."""
        return self.start_level + int(rng.integers(self.stop - self.start_level))

    def overlaps(self, other: Split) -> bool:
        return self.start_level < other.stop and other.start_level < self.stop


#: The instances agents train on, and the held-out ones they are scored on: disjoint.
TRAIN_SPLIT = Split(start_level=0, num_levels=100_000)
HELDOUT_SPLIT = Split(start_level=1_000_000, num_levels=100_000)
assert not TRAIN_SPLIT.overlaps(HELDOUT_SPLIT)
