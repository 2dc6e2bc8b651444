"""The env's versions and the dynamics each one serves.

Gymnasium keeps an old version registered beside the new one while its dynamics can still be
served (``CartPole-v0`` beside ``-v1``); Esper does the same. Every dataset is registered once
per version (:data:`esper_env.datasets.ENV_IDS`); the registration passes ``version`` to
:class:`esper_env.EsperEnv`, which reads that version's :class:`Dynamics` here (and its blueprint
set from :func:`esper_env.blueprints.blueprints_for`). Benchmarks, reference scores and every
default use a dataset's newest version (:attr:`esper_env.datasets.DatasetRecord.newest_version`).
A version may change only the observation (v2 appends the task's context to v1's: :func:`same_dynamics`
says so, and results measured on one serve the other), or only what happens on the fast tier's MLP
hosts (v3, :attr:`Dynamics.mlp_only`): like Gymnasium, which bumps an id's version only when that
env changes, such a version registers the fast tier's ids alone. Plain data, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from esper_env.runtime import lookup

__all__ = ["CURRENT_VERSION", "PRICES", "RENTS", "VERSIONS", "Dynamics", "dynamics", "same_dynamics"]

#: How the parameter rent is charged: on ``log2(network size / base host size)`` (v1) or linearly
#: on ``added parameters / base host parameters`` (v0).
RENTS: tuple[str, ...] = ("log2", "linear")

#: What the sizes of an MLP host's network (the rent, the size features of the observation) count:
#: its own parameters (``"own"``), or those of the CNN host of the same widths carrying the same
#: seeds in the same slots (``"cnn"``, v3: the fast tier prices growth as the tier it stands in for).
PRICES: tuple[str, ...] = ("own", "cnn")


@dataclass(frozen=True)
class Dynamics:
    """What one env version does differently (besides its blueprint set)."""

    version: int
    #: The rent's form (:data:`RENTS`) and its default weight in the reward.
    rent: str
    rent_weight: float
    #: A seed's learning rate is the preset's times this; ``None``: the preset's own
    #: ``seed_lr_multiplier`` (3x for every built-in preset).
    seed_lr_multiplier: float | None
    #: One line for the docs.
    summary: str
    #: Whether the observation ends with the task's context features (``context/*``: the rent,
    #: learning rate, training-set size, class count, and each slot's host width and parameter
    #: share; :func:`esper_env.spaces.observation_features`). Observation only: no dynamics.
    context: bool = False
    #: On an MLP host's 1x1 feature maps: the most groups of a seed's GroupNorm (8: a group holds 1-3
    #: values there and degenerates; 1: a LayerNorm over the channels, the same parameters) and what
    #: the network's size is priced on (:data:`PRICES`). Image hosts ignore both.
    mlp_norm_groups: int = 8
    mlp_price: str = "own"
    #: Whether only the MLP-host datasets (the fast tier) register this version: it changes nothing
    #: on image hosts, so their ids keep their newest version (``Esper-SynthCIFAR-v2``).
    mlp_only: bool = False


VERSIONS: dict[int, Dynamics] = {
    d.version: d
    for d in (
        Dynamics(
            3, "log2", 0.03, None,
            "the fast tier only (the image ids stay at v2): on its MLP hosts a seed's norm is one group (a LayerNorm over "
            "the channels, not a GroupNorm of 1-3 values) and the network is priced as the CNN host of the "
            "same widths with the same seeds (rent and size features)",
            context=True, mlp_norm_groups=1, mlp_price="cnn", mlp_only=True,
        ),
        Dynamics(
            2, "log2", 0.03, None,
            "v1's dynamics, rewards and scores; the observation appends the task's context (rent, learning "
            "rate, training-set size, classes, per-slot host width and parameter share) after v1's features",
            context=True,
        ),
        Dynamics(
            1, "log2", 0.03, None,
            "16 blueprints (adds conv_wide, widen_2x, widen_4x); seed lr = preset's seed_lr_multiplier (3x); "
            "rent 0.03 x log2(size ratio), in every reward mode",
        ),
        Dynamics(
            0, "linear", 0.05, 1.0,
            "the original 13 blueprints; seed lr 1x; rent 0.05 x added/base parameters, in the sparse and "
            "contribution modes only",
        ),
    )
}  # fmt: skip

#: The newest version (of the fast tier; an image dataset's newest is the newest not ``mlp_only``).
CURRENT_VERSION = max(VERSIONS)


def dynamics(version: int) -> Dynamics:
    """The dynamics of env version ``version``; ``ValueError`` naming the valid versions otherwise."""
    return lookup("env version", version, VERSIONS)  # type: ignore[arg-type]


def same_dynamics(a: int, b: int) -> bool:
    """True when env versions ``a`` and ``b`` differ at most in the observation (v1 and v2): same
    blueprints, rent, seed learning rate and MLP-host dynamics, so rewards, scores and episodes are
    the same and a result measured on one holds for the other. ``ValueError`` for an unknown version."""
    from esper_env.blueprints import blueprints_for  # blueprints import torch; this module does not

    da, db = dynamics(a), dynamics(b)
    rule = ("rent", "rent_weight", "seed_lr_multiplier", "mlp_norm_groups", "mlp_price")
    same = all(getattr(da, f) == getattr(db, f) for f in rule)
    return same and blueprints_for(da.version) == blueprints_for(db.version)
