"""Tests of esper_env.hosts (resolution 8/16/32, batch 4; a few seconds in total)."""

from __future__ import annotations

import functools

import pytest
import torch

from esper_env.hosts import HOSTS, HostNetwork, build_host, count_parameters, host_slots

NUM_CLASSES = 10
BATCH = 4
EXPECTED_HOSTS = ("HostCNN", "HostCNN-Wide", "HostCNN-Narrow", "HostCNN-Deep", "ResNet-18", "ResNet-34")


@functools.cache
def _host(name: str) -> HostNetwork:
    """One eval-mode host per architecture, shared by the read-only tests."""
    return build_host(name, NUM_CLASSES, seed=0).eval()


def _images(resolution: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(BATCH, 3, resolution, resolution, generator=g)


def test_host_names() -> None:
    assert HOSTS == EXPECTED_HOSTS


@pytest.mark.parametrize("resolution", [8, 16, 32])
@pytest.mark.parametrize("name", HOSTS)
def test_forward_shape_and_segments(name: str, resolution: int) -> None:
    host = _host(name)
    x = _images(resolution)
    with torch.no_grad():
        logits = host(x)
        assert logits.shape == (BATCH, NUM_CLASSES)
        assert torch.isfinite(logits).all()
        h = x
        for i, segment in enumerate(host.segments):
            h = segment(h)
            if i < host.num_slots:
                assert h.dim() == 4 and h.shape[0] == BATCH
                assert h.shape[1] == host.slot_channels[i], (name, host.slot_names[i])
                assert min(h.shape[2:]) >= 1
    assert torch.equal(h, logits)


@pytest.mark.parametrize("name", HOSTS)
def test_slot_structure(name: str) -> None:
    host = _host(name)
    assert host.name == name
    assert host.num_classes == NUM_CLASSES
    assert len(host.segments) == len(host.slot_names) + 1
    assert len(host.slot_channels) == len(host.slot_names)
    assert len(host.slot_names) >= 3
    assert len(set(host.slot_names)) == len(host.slot_names)
    assert tuple(zip(host.slot_names, host.slot_channels)) == host_slots(name)
    for i, slot in enumerate(host.slot_names):
        assert host.slot_index(slot) == i
    with pytest.raises(ValueError, match="nope"):
        host.slot_index("nope")


def test_slot_layouts() -> None:
    assert host_slots("HostCNN") == (("block1", 32), ("block2", 64), ("block3", 128))
    assert host_slots("HostCNN-Wide") == (("block1", 64), ("block2", 128), ("block3", 256))
    assert host_slots("HostCNN-Narrow") == (("block1", 8), ("block2", 16), ("block3", 32))
    assert host_slots("HostCNN-Deep") == tuple(
        (f"block{i + 1}", c) for i, c in enumerate((32, 64, 128, 128, 256))
    )
    for name in ("ResNet-18", "ResNet-34"):
        assert host_slots(name) == (("layer1", 64), ("layer2", 128), ("layer3", 256), ("layer4", 512))


def test_parameter_counts() -> None:
    # The CIFAR ResNet-18 with a 10-way head has the well-known 11,173,962 parameters.
    assert count_parameters(_host("ResNet-18")) == 11_173_962
    assert count_parameters(_host("ResNet-34")) == 21_282_122
    narrow, base, wide = (count_parameters(_host(n)) for n in ("HostCNN-Narrow", "HostCNN", "HostCNN-Wide"))
    assert narrow < base < wide
    assert not any(isinstance(m, torch.nn.Dropout) for n in HOSTS for m in _host(n).modules())


@pytest.mark.parametrize("name", HOSTS)
def test_seed_determinism_and_global_rng_untouched(name: str) -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = build_host(name, NUM_CLASSES, seed=7)
    assert torch.equal(torch.get_rng_state(), state), "build_host(seed=...) changed the global RNG state"
    torch.manual_seed(456)  # a different global state must not matter
    b = build_host(name, NUM_CLASSES, seed=7)
    c = build_host(name, NUM_CLASSES, seed=8)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys() == sc.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    # every conv / linear weight differs between seeds
    for k, v in sa.items():
        if k.endswith("weight") and v.dim() > 1:
            assert not torch.equal(v, sc[k]), k


def test_forward_and_backward_consume_no_rng() -> None:
    host = build_host("ResNet-18", NUM_CLASSES, seed=0).train()
    x = _images(16)
    state = torch.get_rng_state()
    host(x).sum().backward()
    assert torch.equal(torch.get_rng_state(), state)


def test_channels_last_matches() -> None:
    host = _host("HostCNN")
    x = _images(16)
    with torch.no_grad():
        ref = host(x)
        out = host.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
        host.to(memory_format=torch.contiguous_format)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_unknown_host_lists_valid_names() -> None:
    with pytest.raises(ValueError) as err:
        build_host("VGG-16", NUM_CLASSES, seed=0)
    msg = str(err.value)
    assert "'VGG-16'" in msg
    assert all(repr(n) in msg for n in HOSTS)
    with pytest.raises(ValueError, match="VGG-16"):
        host_slots("VGG-16")


def test_bad_num_classes() -> None:
    with pytest.raises(ValueError):
        build_host("HostCNN", 0)
