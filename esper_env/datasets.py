"""The datasets the env trains hosts on, one record each, and the env ids derived from them.

Adding a dataset is adding a :class:`DatasetRecord` to :data:`DATASET_RECORDS`: the dataset
names (:data:`DATASETS`), the registered env ids (:data:`ENV_IDS`, one per dataset and env
version of :mod:`esper_env.versions`), the class counts and the error messages all come from it. This module imports neither torch nor torchvision.
"""

from __future__ import annotations

from dataclasses import dataclass

from esper_env.runtime import lookup
from esper_env.versions import VERSIONS, dynamics

__all__ = [
    "CURRENT_ENV_IDS", "DATASETS", "DATASET_RECORDS", "DOWNLOADABLE", "ENV_IDS", "DatasetRecord", "dataset_record", "env_version",
]  # fmt: skip


@dataclass(frozen=True)
class DatasetRecord:
    """One dataset: its name, class count, env ids and how it is loaded."""

    #: The ``dataset`` argument of the env and of :func:`esper_env.load_dataset`.
    name: str
    num_classes: int
    #: Its Gymnasium ids without the version: ``f"{id_name}-v{version}"`` for every version.
    id_name: str
    #: The fidelity its env id defaults to.
    default_fidelity: str
    #: The ``torchvision.datasets`` class that reads (and downloads) it; ``None`` for a dataset
    #: generated procedurally (SynthCIFAR, clusters), which needs no files.
    torchvision_class: str | None = None
    #: The first env version that registers it.
    since_version: int = 0
    #: Extra default kwargs of its ids (the fast tier's instance distribution).
    defaults: tuple[tuple[str, object], ...] = ()
    #: Whether its hosts are MLPs (the fast tier's), where :class:`esper_env.versions.Dynamics`'
    #: ``mlp_*`` fields act; the image datasets' hosts are CNNs and ResNets.
    mlp: bool = False

    @property
    def versions(self) -> tuple[int, ...]:
        """The env versions that register it, oldest first: from :attr:`since_version`, and the
        versions that change only MLP hosts (``Dynamics.mlp_only``) only for an MLP dataset."""
        return tuple(
            v for v, d in sorted(VERSIONS.items()) if v >= self.since_version and (self.mlp or not d.mlp_only)
        )

    @property
    def newest_version(self) -> int:
        """Its current version: what its env defaults to and every benchmark uses."""
        return self.versions[-1]

    def check_version(self, version: int | None) -> int:
        """``version`` (``None``: the newest) if it registers this dataset; a ``ValueError`` otherwise."""
        version = self.newest_version if version is None else dynamics(version).version
        if version not in self.versions:
            raise ValueError(
                f"env version {version} does not serve dataset {self.name!r} (its ids: {self.id_name}-v"
                f"{{{', '.join(map(str, self.versions))}}}; see the env's Version History)"
            )
        return version

    @property
    def env_id(self) -> str:
        """The id of the current version (what every default and benchmark uses)."""
        return self.versioned_id(self.newest_version)

    def versioned_id(self, version: int) -> str:
        return f"{self.id_name}-v{version}"


DATASET_RECORDS: dict[str, DatasetRecord] = {
    r.name: r
    for r in (
        DatasetRecord("cifar10", 10, "Esper-CIFAR10", "full", "CIFAR10"),
        DatasetRecord("cifar100", 100, "Esper-CIFAR100", "full", "CIFAR100"),
        # CPU friendly by default.
        DatasetRecord("synthcifar", 10, "Esper-SynthCIFAR", "tiny"),
        # The fast tier (docs/FAST_TIER.md): MLP hosts on a clusters task, one instance per reset.
        DatasetRecord(
            "clusters",
            10,
            "Esper-Micro",
            "micro",
            since_version=2,
            defaults=(("instances", "bottlenecks"),),
            mlp=True,
        ),
    )
}

#: Valid dataset names.
DATASETS: tuple[str, ...] = tuple(DATASET_RECORDS)

#: The datasets read from files (and downloadable through torchvision), not generated.
DOWNLOADABLE: tuple[str, ...] = tuple(r.name for r in DATASET_RECORDS.values() if r.torchvision_class)

#: env id -> default kwargs of its registration: every dataset in each of its versions
#: (:attr:`DatasetRecord.versions`), the newest versions' ids first. An older version's kwargs
#: carry its ``version``; the newest's leave it to the env's default.
ENV_IDS: dict[str, dict[str, object]] = {
    r.versioned_id(v): {"dataset": r.name, "fidelity": r.default_fidelity}
    | dict(r.defaults)
    | ({} if v == r.newest_version else {"version": v})
    for v in sorted(VERSIONS, reverse=True)
    for r in DATASET_RECORDS.values()
    if v in r.versions
}


#: The current version's ids: what the ``esper`` command, generation and the benchmarks serve (the
#: agents' policies, packs and schemas are built for the current spaces; older ids are for
#: ``gymnasium.make`` users).
CURRENT_ENV_IDS: tuple[str, ...] = tuple(r.env_id for r in DATASET_RECORDS.values())


def dataset_record(name: str) -> DatasetRecord:
    """The record of dataset ``name``; ``ValueError`` naming it and the valid names otherwise."""
    return lookup("dataset", name, DATASET_RECORDS)


def env_version(env_id: str) -> int:
    """The env version an id registers (``ValueError`` naming the valid ids otherwise)."""
    kwargs = lookup("env id", env_id, ENV_IDS)
    return int(kwargs.get("version", dataset_record(str(kwargs["dataset"])).newest_version))  # type: ignore[call-overload]
