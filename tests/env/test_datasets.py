"""The dataset registry: one record per dataset, from which the names, env ids and errors derive."""

from __future__ import annotations

import gymnasium as gym
import pytest

import esper_env
from esper_env.datasets import DATASET_RECORDS, DATASETS, ENV_IDS, dataset_record


def test_env_ids_and_names_come_from_the_records() -> None:
    assert DATASETS == ("cifar10", "cifar100", "synthcifar", "clusters")
    assert esper_env.ENV_IDS is ENV_IDS
    micro = {"dataset": "clusters", "fidelity": "micro", "instances": "bottlenecks"}
    assert ENV_IDS == {
        "Esper-CIFAR10-v2": {"dataset": "cifar10", "fidelity": "full"},
        "Esper-CIFAR100-v2": {"dataset": "cifar100", "fidelity": "full"},
        "Esper-SynthCIFAR-v2": {"dataset": "synthcifar", "fidelity": "tiny"},
        "Esper-Micro-v3": micro,
        "Esper-CIFAR10-v1": {"dataset": "cifar10", "fidelity": "full", "version": 1},
        "Esper-CIFAR100-v1": {"dataset": "cifar100", "fidelity": "full", "version": 1},
        "Esper-SynthCIFAR-v1": {"dataset": "synthcifar", "fidelity": "tiny", "version": 1},
        "Esper-CIFAR10-v0": {"dataset": "cifar10", "fidelity": "full", "version": 0},
        "Esper-CIFAR100-v0": {"dataset": "cifar100", "fidelity": "full", "version": 0},
        "Esper-SynthCIFAR-v0": {"dataset": "synthcifar", "fidelity": "tiny", "version": 0},
        "Esper-Micro-v2": micro | {"version": 2},
    }
    # Each dataset's newest id comes before its older ones: code that takes the first id of a
    # dataset gets its current version (v3 for the fast tier, v2 for the image datasets).
    for r in DATASET_RECORDS.values():
        ids = [i for i in ENV_IDS if ENV_IDS[i]["dataset"] == r.name]
        assert ids[0] == r.env_id == f"{r.id_name}-v{r.newest_version}"
        assert [int(i.rpartition("-v")[2]) for i in ids] == sorted(r.versions, reverse=True)
    assert {r.name: r.versions for r in DATASET_RECORDS.values()} == {
        "cifar10": (0, 1, 2), "cifar100": (0, 1, 2), "synthcifar": (0, 1, 2), "clusters": (2, 3),
    }  # fmt: skip
    assert {r.name: r.num_classes for r in DATASET_RECORDS.values()} == {
        "cifar10": 10, "cifar100": 100, "synthcifar": 10, "clusters": 10,
    }  # fmt: skip


@pytest.mark.parametrize("record", DATASET_RECORDS.values(), ids=lambda r: r.name)
def test_every_record_is_registered(record) -> None:
    spec = gym.spec(record.env_id)
    own = {"dataset": record.name, "fidelity": record.default_fidelity, **dict(record.defaults)}
    assert spec.kwargs == own
    assert spec.entry_point == "esper_env.env:EsperEnv"
    for version in record.versions[:-1]:
        old = gym.spec(record.versioned_id(version))
        assert old.kwargs == {**own, "version": version}
        assert old.entry_point == spec.entry_point and old.additional_wrappers == spec.additional_wrappers
    for version in range(record.since_version):  # an id is never registered before its dataset joined
        assert record.versioned_id(version) not in esper_env.ENV_IDS


def test_unknown_dataset_lists_the_records() -> None:
    with pytest.raises(
        ValueError,
        match="unknown dataset 'mnist'; valid datasets are: 'cifar10', 'cifar100', 'synthcifar', 'clusters'",
    ):
        dataset_record("mnist")
    with pytest.raises(
        ValueError, match="valid datasets are: 'cifar10', 'cifar100', 'synthcifar', 'clusters'"
    ):
        esper_env.load_dataset("mnist", "test")
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        esper_env.EsperEnv(dataset="mnist")


def test_loaded_class_count_is_the_records(test_data) -> None:
    assert test_data.num_classes == dataset_record("synthcifar").num_classes


def test_missing_cifar_names_its_env_id(tmp_path) -> None:
    pytest.importorskip("torchvision")
    with pytest.raises(esper_env.DatasetNotFoundError, match="'Esper-CIFAR100-v2', download=True"):
        esper_env.load_dataset("cifar100", "test", data_dir=tmp_path)
