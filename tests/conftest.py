"""Shared fixtures: small SynthCIFAR splits so engine and env tests run in seconds."""

from __future__ import annotations

import pytest

from esper_env.configs import Fidelity
from esper_env.data import ImageSplits, load_dataset

#: Even smaller than the "test" fidelity, for tests that run hundreds of epochs.
MICRO = Fidelity("micro", train_images=64, val_images=32, test_images=32, resolution=8)


@pytest.fixture(scope="session")
def test_data() -> ImageSplits:
    return load_dataset("synthcifar", "test")


@pytest.fixture(scope="session")
def micro_data() -> ImageSplits:
    return load_dataset("synthcifar", MICRO)
