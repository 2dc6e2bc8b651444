"""``EnvSettings``: the one record of how an Esper env is built.

Every path that builds an env (the ``esper`` command, generation specs, pack headers, the Minari
env spec, online runs, the benchmark suites) builds and stores an :class:`EnvSettings`; each name
is validated once, here. It plays the part of Gymnasium's ``EnvSpec`` for Esper's own arguments:
frozen, validated, and round-tripped through JSON.

>>> from esper_env.settings import EnvSettings
>>> s = EnvSettings(config="impaired", fidelity="test", max_epochs=3, reward="sparse")
>>> EnvSettings.from_dict(s.to_dict()) == s
True
>>> env = s.make()
>>> env.unwrapped.reward_config.mode, env.unwrapped.max_epochs
('sparse', 3)
>>> EnvSettings(reward="dense")
Traceback (most recent call last):
    ...
ValueError: unknown reward mode 'dense'; valid reward modes are: 'shaped', 'sparse', 'contribution'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Self

from esper_env.configs import ENVIRONMENT_CONFIGS, FIDELITIES
from esper_env.datasets import ENV_IDS
from esper_env.instances import DISTRIBUTIONS, Split
from esper_env.rewards import REWARD_MODES
from esper_env.runtime import lookup

if TYPE_CHECKING:  # gymnasium is imported by make() only: the record itself is plain data
    import gymnasium as gym

    from esper_env.references import ReferenceScores

__all__ = ["DEFAULT_ENV_ID", "DEVICES", "EnvSettings"]

#: The id every command and benchmark uses unless told otherwise (offline, procedural).
DEFAULT_ENV_ID = "Esper-SynthCIFAR-v2"
#: Valid ``device`` names (``"auto"``: CUDA when available).
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")


def _int(name: str, value: Any, minimum: int, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = f"an integer >= {minimum}" + (" or None" if optional else "")
        raise ValueError(f"{name} must be {kind}, got {value!r}")


@dataclass(frozen=True)
class EnvSettings:
    """How to build one Esper env: its id and every argument that changes what it does.

    Machine-local arguments that change nothing an agent sees (``render_mode``, ``data_dir``,
    ``download``) are not part of the record; pass them to :meth:`make`.
    """

    #: A registered Esper id (``esper_env.ENV_IDS``); its version fixes the dynamics.
    env_id: str = DEFAULT_ENV_ID
    #: Environment preset (``esper_env.ENVIRONMENT_CONFIGS``).
    config: str = "baseline"
    #: Fidelity preset (``esper_env.FIDELITIES``); ``None``: the env id's default.
    fidelity: str | None = None
    #: Epochs (steps) per episode.
    max_epochs: int = 25
    #: Seed slots the host exposes.
    num_slots: int = 3
    #: Reward mode (``esper_env.REWARD_MODES``).
    reward: str = "shaped"
    #: SynthCIFAR's generator seed (ignored by the CIFAR datasets).
    synth_seed: int = 0
    #: End an episode after this many epochs without improvement (``None``: never).
    early_stop_patience: int | None = None
    #: Torch intra-op threads around each step (``None``: leave torch's setting alone).
    num_threads: int | None = 1
    #: Torch device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    device: str = "auto"
    #: The task distribution each reset draws an instance from (``esper_env.instances.DISTRIBUTIONS``);
    #: ``None``: the id's default (``Esper-Micro``'s ``"bottlenecks"``; none for the image ids).
    instances: str | None = None
    #: Instance indices drawn: ``[start_level, start_level + num_levels)`` (Procgen's split;
    #: ``num_levels=0``: every index from ``start_level`` on). Only with a distribution.
    num_levels: int = 0
    start_level: int = 0

    #: The fields :meth:`to_dict` leaves out at their defaults (records of earlier versions had none
    #: of them, so what is written for the image ids is unchanged).
    INSTANCE_FIELDS: ClassVar[tuple[str, ...]] = ("instances", "num_levels", "start_level")

    def __post_init__(self) -> None:
        lookup("env id", self.env_id, ENV_IDS)
        lookup("config", self.config, ENVIRONMENT_CONFIGS)
        if self.fidelity is not None:
            lookup("fidelity", self.fidelity, FIDELITIES)
        lookup("reward mode", self.reward, {m: m for m in REWARD_MODES})
        lookup("device", self.device, {d: d for d in DEVICES})
        _int("max_epochs", self.max_epochs, 1)
        _int("num_slots", self.num_slots, 1)
        _int("synth_seed", self.synth_seed, 0)
        _int("early_stop_patience", self.early_stop_patience, 1, optional=True)
        _int("num_threads", self.num_threads, 1, optional=True)
        if self.instances is not None:
            lookup("instance distribution", self.instances, DISTRIBUTIONS)
        Split(start_level=self.start_level, num_levels=self.num_levels)  # ValueError naming a bad value
        if (self.num_levels or self.start_level) and self.resolved_instances is None:
            raise ValueError(
                f"num_levels={self.num_levels!r} and start_level={self.start_level!r} split an instance "
                f"distribution, and {self.env_id} has none: set instances too (one of: {', '.join(DISTRIBUTIONS)})"
            )

    @property
    def dataset(self) -> str:
        """The dataset the id trains on (``"synthcifar"``, ``"cifar10"``, ``"cifar100"``)."""
        return str(ENV_IDS[self.env_id]["dataset"])

    @property
    def resolved_fidelity(self) -> str:
        """``fidelity``, or the env id's default when it is ``None``."""
        return self.fidelity if self.fidelity is not None else str(ENV_IDS[self.env_id]["fidelity"])

    @property
    def resolved_instances(self) -> str | None:
        """``instances``, or the env id's default distribution (``None``: the id draws no instances)."""
        if self.instances is not None:
            return self.instances
        default = ENV_IDS[self.env_id].get("instances")
        return None if default is None else str(default)

    def to_kwargs(self) -> dict[str, Any]:
        """The ``gymnasium.make(self.env_id, **kwargs)`` keyword arguments (the id's own defaults
        are not repeated: no fidelity or instances when ``None``, no ``synth_seed`` for CIFAR, no
        split at its defaults)."""
        kwargs: dict[str, Any] = {
            "config": self.config, "max_epochs": self.max_epochs, "num_slots": self.num_slots,
            "reward": self.reward, "early_stop_patience": self.early_stop_patience,
            "num_threads": self.num_threads, "device": self.device,
        }  # fmt: skip
        if self.fidelity is not None:
            kwargs["fidelity"] = self.fidelity
        if self.dataset == "synthcifar":
            kwargs["synth_seed"] = self.synth_seed
        if self.instances is not None:
            kwargs["instances"] = self.instances
        for name in ("num_levels", "start_level"):
            if getattr(self, name):
                kwargs[name] = getattr(self, name)
        return kwargs

    def make(self, **runtime: Any) -> gym.Env:
        """``gymnasium.make(self.env_id, **self.to_kwargs(), **runtime)``; ``runtime`` takes the
        machine-local arguments (``render_mode``, ``data_dir``, ``download``, ``max_episode_steps``)."""
        import gymnasium as gym

        import esper_env  # noqa: F401  (registers the ids)

        clash = sorted(set(runtime) & {f.name for f in dataclasses.fields(self)})
        if clash:
            raise ValueError(f"{clash} are settings: use settings.replace(...) instead of make(...)")
        return gym.make(self.env_id, **self.to_kwargs(), **runtime)

    def reference_scores(self) -> ReferenceScores:
        """The reference registry's entry for this env: its id, preset, fidelity, episode length and
        distribution of task instances (a ``LookupError`` listing the measured ones if there is none)."""
        from esper_env.references import reference_scores

        return reference_scores(
            self.env_id,
            config=self.config,
            fidelity=self.resolved_fidelity,
            max_epochs=self.max_epochs,
            instances=self.instances,
        )

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied (validated like a new record)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready (``from_dict`` reads it back); the instance fields only when set."""
        data = dataclasses.asdict(self)
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name in self.INSTANCE_FIELDS:
            if data[name] == defaults[name]:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Read a record written by :meth:`to_dict` (fields left out take their defaults);
        ``ValueError`` naming any unknown key or bad value."""
        if not isinstance(data, Mapping):
            raise ValueError(f"env settings are a JSON object, got {type(data).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"unknown env settings {unknown}; valid settings are: {', '.join(names)}")
        return cls(**dict(data))
