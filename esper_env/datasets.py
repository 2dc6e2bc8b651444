"""The datasets the env trains hosts on, one record each, and the env ids derived from them.

Adding a dataset is adding a :class:`DatasetRecord` to :data:`DATASET_RECORDS`: the dataset
names (:data:`DATASETS`), the registered env ids (:data:`ENV_IDS`), the class counts and the
error messages all come from it. This module imports neither torch nor torchvision.
"""

from __future__ import annotations

from dataclasses import dataclass

from esper_env.runtime import lookup

__all__ = ["DATASETS", "DATASET_RECORDS", "DOWNLOADABLE", "ENV_IDS", "DatasetRecord", "dataset_record"]


@dataclass(frozen=True)
class DatasetRecord:
    """One dataset: its name, class count, env id and how it is loaded."""

    #: The ``dataset`` argument of the env and of :func:`esper_env.load_dataset`.
    name: str
    num_classes: int
    #: The Gymnasium id registered for it.
    env_id: str
    #: The fidelity its env id defaults to.
    default_fidelity: str
    #: The ``torchvision.datasets`` class that reads (and downloads) it; ``None`` for a dataset
    #: generated procedurally (SynthCIFAR), which needs no files.
    torchvision_class: str | None = None


DATASET_RECORDS: dict[str, DatasetRecord] = {
    r.name: r
    for r in (
        DatasetRecord("cifar10", 10, "Esper-CIFAR10-v1", "full", "CIFAR10"),
        DatasetRecord("cifar100", 100, "Esper-CIFAR100-v1", "full", "CIFAR100"),
        # CPU friendly by default.
        DatasetRecord("synthcifar", 10, "Esper-SynthCIFAR-v1", "tiny"),
    )
}

#: Valid dataset names.
DATASETS: tuple[str, ...] = tuple(DATASET_RECORDS)

#: The datasets read from files (and downloadable through torchvision), not generated.
DOWNLOADABLE: tuple[str, ...] = tuple(r.name for r in DATASET_RECORDS.values() if r.torchvision_class)

#: env id -> default kwargs of its registration.
ENV_IDS: dict[str, dict[str, object]] = {
    r.env_id: {"dataset": r.name, "fidelity": r.default_fidelity} for r in DATASET_RECORDS.values()
}


def dataset_record(name: str) -> DatasetRecord:
    """The record of dataset ``name``; ``ValueError`` naming it and the valid names otherwise."""
    return lookup("dataset", name, DATASET_RECORDS)
