"""Tests of esper_env.data and esper_env.synthcifar: SynthCIFAR, the torchvision CIFAR path, errors, and the batch iterator.

The CIFAR tests write a tiny dataset in the real on-disk format instead of downloading anything.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from esper_env.configs import Fidelity
from esper_env.data import (
    DatasetNotFoundError,
    ImageSplits,
    clear_cache,
    iterate_batches,
    load_dataset,
)
from esper_env.datasets import DATASETS
from esper_env.synthcifar import make_synthcifar

# ---------------------------------------------------------------------------------------------
# SynthCIFAR
# ---------------------------------------------------------------------------------------------


def test_synthcifar_shapes_dtypes_and_labels() -> None:
    ds = load_dataset("synthcifar", "test")
    assert isinstance(ds, ImageSplits) and ds.name == "synthcifar" and ds.num_classes == 10
    for x, y, n in ((ds.train_x, ds.train_y, 256), (ds.val_x, ds.val_y, 128), (ds.test_x, ds.test_y, 128)):
        assert x.shape == (n, 3, 16, 16) and x.dtype == torch.uint8
        assert y.shape == (n,) and y.dtype == torch.int64
        assert int(y.min()) >= 0 and int(y.max()) < 10
    assert set(ds.train_y.tolist()) == set(range(10))
    assert len(ds.mean) == len(ds.std) == 3
    expect = ds.train_x.double().div(255).mean(dim=(0, 2, 3))
    assert torch.allclose(torch.tensor(ds.mean, dtype=torch.float64), expect)
    assert all(0.05 < s < 0.5 for s in ds.std)


def test_synthcifar_is_cached_and_to_device_copies() -> None:
    a = load_dataset("synthcifar", "test")
    assert load_dataset("synthcifar", "test") is a
    b = a.to("cpu")
    assert b is not a and b.train_x is a.train_x and b.mean == a.mean


def test_synthcifar_determinism_and_seed() -> None:
    x0, y0 = make_synthcifar(300, "train", synth_seed=0)
    x1, y1 = make_synthcifar(300, "train", synth_seed=0)
    assert x0.shape == (300, 3, 32, 32)
    assert torch.equal(x0, x1) and torch.equal(y0, y1)
    x2, _ = make_synthcifar(300, "train", synth_seed=1)
    assert not torch.equal(x0, x2)


def test_synthcifar_prefix_property() -> None:
    small_x, small_y = make_synthcifar(40, "train")
    big_x, big_y = make_synthcifar(600, "train")  # spans several chunks
    assert torch.equal(small_x, big_x[:40]) and torch.equal(small_y, big_y[:40])


def test_synthcifar_annotation_noise_changes_labels_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from esper_env import synthcifar

    noisy_x, noisy_y = make_synthcifar(2000, "train")
    monkeypatch.setattr(synthcifar, "_LABEL_NOISE", 0.0)
    clean_x, clean_y = make_synthcifar(2000, "train")
    assert torch.equal(noisy_x, clean_x)  # the noise is drawn last: the images are the same
    assert torch.equal(torch.bincount(clean_y, minlength=10), torch.full((10,), 200))  # balanced chunks
    changed = (noisy_y != clean_y).float().mean().item()
    # A label is redrawn with p = 0.10 and lands on another class 9 times in 10: 9% expected.
    assert 0.06 < changed < 0.12, changed


def test_synthcifar_splits_are_disjoint_streams() -> None:
    ds = load_dataset("synthcifar", "test")
    train = {bytes(img.numpy()) for img in ds.train_x}
    assert not train & {bytes(img.numpy()) for img in ds.val_x}
    assert not train & {bytes(img.numpy()) for img in ds.test_x}
    assert not torch.equal(make_synthcifar(50, "val")[0], make_synthcifar(50, "test")[0])


# ---------------------------------------------------------------------------------------------
# CIFAR through torchvision, on a tiny dataset in the real on-disk format
# ---------------------------------------------------------------------------------------------

N_TRAIN, N_TEST = 60, 20  # 5 training batches of 12 images; val pool = 10% = 6


def _images(start: int, n: int) -> np.ndarray:
    """Image i is constant with value i (so the loaded tensor tells which source image it is)."""
    return np.repeat(np.arange(start, start + n, dtype=np.uint8)[:, None], 3072, axis=1)


def _dump(path: Path, obj: dict) -> None:
    # Real CIFAR files are Python-2 pickles with *str* keys; torchvision loads them with
    # encoding="latin1", which yields str keys, so bytes keys (b"data") would not load.
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _write_fake_cifar(root: Path) -> None:
    c10 = root / "cifar-10-batches-py"
    c10.mkdir(parents=True)
    for b in range(5):
        idx = np.arange(b * 12, (b + 1) * 12)
        _dump(c10 / f"data_batch_{b + 1}", {"data": _images(b * 12, 12), "labels": (idx % 10).tolist()})
    _dump(c10 / "test_batch", {"data": _images(100, N_TEST), "labels": [i % 10 for i in range(N_TEST)]})
    _dump(c10 / "batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
    c100 = root / "cifar-100-python"
    c100.mkdir()
    labels = [(7 * i) % 100 for i in range(N_TRAIN)]
    _dump(
        c100 / "train", {"data": _images(0, N_TRAIN), "fine_labels": labels, "coarse_labels": [0] * N_TRAIN}
    )
    _dump(
        c100 / "test",
        {"data": _images(100, N_TEST), "fine_labels": list(range(N_TEST)), "coarse_labels": [0] * N_TEST},
    )
    _dump(c100 / "meta", {"fine_label_names": [f"f{i}" for i in range(100)]})


@pytest.fixture
def no_md5(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The md5 sums of fake files cannot match: keep torchvision's real loading path but only
    check that files exist (covers CIFAR10._check_integrity and the metadata check in _load_meta)."""
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def fake_cifar(tmp_path: Path, no_md5: None) -> Path:
    _write_fake_cifar(tmp_path)
    return tmp_path


def test_cifar10_loader_reads_torchvision_format(fake_cifar: Path) -> None:
    fid = Fidelity("custom", train_images=40, val_images=6, test_images=10, resolution=32)
    ds = load_dataset("cifar10", fid, data_dir=fake_cifar)
    assert ds.name == "cifar10" and ds.num_classes == 10
    assert ds.train_x.shape == (40, 3, 32, 32) and ds.train_x.dtype == torch.uint8
    assert ds.val_x.shape == (6, 3, 32, 32) and ds.test_x.shape == (10, 3, 32, 32)
    train_ids, val_ids = ds.train_x[:, 0, 0, 0].long(), ds.val_x[:, 0, 0, 0].long()
    assert torch.equal(ds.train_y, train_ids % 10) and torch.equal(ds.val_y, val_ids % 10)
    assert not set(train_ids.tolist()) & set(val_ids.tolist())
    assert train_ids.tolist() != sorted(train_ids.tolist())  # a real permutation
    assert ds.test_x[:, 0, 0, 0].tolist() == list(range(100, 110))  # first test images, in order
    assert (ds.train_x == ds.train_x[:, :1, :1, :1]).all()  # HWC -> CHW conversion kept images intact
    # Deterministic split, and a smaller train set is a prefix of a larger one.
    clear_cache()
    fid2 = Fidelity("custom2", train_images=20, val_images=3, test_images=5, resolution=32)
    ds2 = load_dataset("cifar10", fid2, data_dir=str(fake_cifar))
    assert torch.equal(ds2.train_x, ds.train_x[:20]) and torch.equal(ds2.val_x, ds.val_x[:3])


def test_cifar_resize_and_cifar100(fake_cifar: Path) -> None:
    fid = Fidelity("custom16", train_images=30, val_images=4, test_images=8, resolution=16)
    ds = load_dataset("cifar100", fid, data_dir=fake_cifar)
    assert ds.num_classes == 100 and ds.train_x.shape == (30, 3, 16, 16)
    ids = ds.train_x[:, 0, 0, 0].long()
    assert torch.equal(ds.train_y, (7 * ids) % 100)
    assert (ds.train_x == ds.train_x[:, :1, :1, :1]).all()  # area resize of a constant image


def test_cifar_fidelity_too_large(fake_cifar: Path) -> None:
    fid = Fidelity("big", train_images=100, val_images=6, test_images=10, resolution=32)
    with pytest.raises(ValueError, match=r"100 train.*only 54"):
        load_dataset("cifar10", fid, data_dir=fake_cifar)


def test_missing_cifar_raises_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("cifar10", "test", data_dir=tmp_path)
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert str(tmp_path.resolve()) in msg and "download=True" in msg and "Esper-SynthCIFAR-v2" in msg


def test_download_true_fetches_then_loads(
    tmp_path: Path, no_md5: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision.datasets as tvd

    calls = []
    monkeypatch.setattr(
        tvd.CIFAR10, "download", lambda self: calls.append(self.root) or _write_fake_cifar(Path(self.root))
    )
    fid = Fidelity("custom", train_images=8, val_images=2, test_images=4, resolution=32)
    ds = load_dataset("cifar10", fid, data_dir=tmp_path / "new", download=True)
    assert ds.train_x.shape == (8, 3, 32, 32) and len(calls) == 1


def test_unknown_names() -> None:
    with pytest.raises(ValueError, match=r"'imagenet'.*'cifar10'.*'synthcifar'"):
        load_dataset("imagenet", "test")
    with pytest.raises(ValueError, match=r"'huge'.*'full'.*'tiny'.*'test'"):
        load_dataset("synthcifar", "huge")
    assert DATASETS == ("cifar10", "cifar100", "synthcifar", "clusters")


# ---------------------------------------------------------------------------------------------
# Batch iterator
# ---------------------------------------------------------------------------------------------

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def _batches(x, y, bs, seed=0, **kw):
    kw.setdefault("augment", False)
    kw.setdefault("shuffle", True)
    g = torch.Generator().manual_seed(seed)
    return list(iterate_batches(x, y, bs, generator=g, mean=MEAN, std=STD, **kw))


def _data(n: int, res: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(n)
    return torch.randint(0, 256, (n, 3, res, res), dtype=torch.uint8, generator=g), torch.arange(n)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 60), bs=st.integers(1, 70), drop_last=st.booleans(), augment=st.booleans())
def test_every_index_once_per_epoch(n: int, bs: int, drop_last: bool, augment: bool) -> None:
    x, y = _data(n, 8)
    batches = _batches(x, y, bs, augment=augment, drop_last=drop_last)
    sizes = [len(b[1]) for b in batches]
    seen = torch.cat([b[1] for b in batches]).tolist() if batches else []
    if drop_last:
        assert sizes == [bs] * (n // bs)
        assert len(set(seen)) == len(seen) == n - n % bs
    else:
        assert sizes == [bs] * (n // bs) + ([n % bs] if n % bs else [])
        assert sorted(seen) == list(range(n))
    assert all(b[0].shape == (len(b[1]), 3, 8, 8) and b[0].dtype == torch.float32 for b in batches)


def test_same_generator_state_same_batches() -> None:
    x, y = _data(50)
    a, b = _batches(x, y, 16, seed=3, augment=True), _batches(x, y, 16, seed=3, augment=True)
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))
    c = _batches(x, y, 16, seed=4, augment=True)
    assert not torch.equal(a[0][1], c[0][1])


def test_normalization_without_shuffle() -> None:
    x, y = _data(20)
    ((xb, yb),) = _batches(x, y, 32, shuffle=False)
    expect = (x.float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    assert torch.equal(yb, y) and torch.allclose(xb, expect, atol=1e-5)


@pytest.mark.parametrize("res", [16, 32])
def test_augmentation_is_a_padded_crop_and_flip(res: int) -> None:
    x, y = _data(48, res)
    pad = res // 8
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    out = _batches(x, y, 20, seed=1, augment=True)  # 20 does not divide 48
    assert [b[0].shape for b in out] == [(20, 3, res, res)] * 2 + [(8, 3, res, res)]
    changed = 0
    for xb, yb in out:
        for img, i in zip(xb, yb.tolist()):
            raw = (img * std + mean) * 255  # undo normalisation
            padded = F.pad(x[i].float(), (pad,) * 4)  # zero padding, like the iterator
            candidates = [
                crop.flip(-1) if flip else crop
                for dy in range(2 * pad + 1)
                for dx in range(2 * pad + 1)
                for crop in [padded[:, dy : dy + res, dx : dx + res]]
                for flip in (False, True)
            ]
            assert any(torch.allclose(raw, c, atol=1e-3) for c in candidates)
            changed += not torch.allclose(raw, x[i].float(), atol=1e-3)
    assert changed > 36  # identity has probability 1/(2*(2p+1)^2) per image
