"""Shared fixtures: small SynthCIFAR splits so engine and env tests run in seconds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from esper_env.configs import FIDELITIES, Fidelity
from esper_env.data import ImageSplits, load_dataset

# One torch thread per test process: the tests' models are small, and torch's default (a thread per
# core) makes them several times slower on a busy machine or beside a second pytest-xdist worker. The
# env steps on its own thread count anyway (num_threads=1), so no pinned value depends on this.
torch.set_num_threads(1)

#: Even smaller than the "test" fidelity, for tests that run hundreds of epochs.
NANO = Fidelity("nano", train_images=64, val_images=32, test_images=32, resolution=8)


@pytest.fixture(scope="module")
def nano_fidelity() -> Iterator[str]:
    """NANO registered under the name "nano" for one test module, for paths that take only a
    registered fidelity name (settings records, run.json): in-process envs only (a subprocess env
    does not see it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(FIDELITIES, NANO.name, NANO)
        yield NANO.name


@pytest.fixture(scope="session")
def test_data() -> ImageSplits:
    return load_dataset("synthcifar", "test")


@pytest.fixture(scope="session")
def nano_data() -> ImageSplits:
    return load_dataset("synthcifar", NANO)


@pytest.fixture(scope="session")
def tiny_pack(tmp_path_factory: pytest.TempPathFactory):
    """A complete 4-episode pack: baseline and random on the SynthCIFAR id, 3 epochs at "test"."""
    from esper_agents.generation.orchestrator import generate
    from esper_agents.generation.spec import parse_spec
    from esper_env import ENV_IDS

    env_id = next(i for i, kw in ENV_IDS.items() if kw["dataset"] == "synthcifar")
    doc = {
        "name": "tiny",
        "env": {"id": env_id, "fidelity": "test", "max_epochs": 3},
        "matrix": {"policies": ["baseline", "random"], "configs": ["baseline"], "epsilons": [0.2],
                   "episodes_per_cell": 2, "policy": {"random": {"epsilons": [1.0]}}},
    }  # fmt: skip
    out = tmp_path_factory.mktemp("tiny") / "pack"
    generate(parse_spec(doc), out, workers=1, progress=False, log=lambda message: None)
    return out
