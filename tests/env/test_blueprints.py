"""Tests of esper_env.blueprints (batch 4, 16x16 and 2x2 feature maps; a few seconds in total)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from esper_env.blueprints import (
    BLUEPRINT_DESCRIPTIONS,
    BLUEPRINTS,
    NOOP_BLUEPRINT,
    ORIGINAL_BLUEPRINTS,
    Blueprint,
    Consumer,
    SlotGeometry,
    Widen,
    blueprint_index,
    blueprint_param_count,
    blueprint_table,
    blueprint_table_markdown,
    build_blueprint,
)
from esper_env.hosts import count_parameters

WIDTHS = [8, 32, 64, 128]
BATCH = 4
RES = 16
REAL = [n for n in BLUEPRINTS if n != NOOP_BLUEPRINT]
RESIDUAL = [n for n in BLUEPRINTS if not build_blueprint(n, 8).widens]
RESIDUAL_REAL = [n for n in RESIDUAL if n != NOOP_BLUEPRINT]
WIDENING = [n for n in BLUEPRINTS if n not in RESIDUAL]


def _features(channels: int, hw: int = RES, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(BATCH, channels, hw, hw, generator=g)


def _nonzero_grad(p: nn.Parameter) -> bool:
    return p.grad is not None and bool(torch.isfinite(p.grad).all()) and bool(p.grad.abs().sum() > 0)


def test_names() -> None:
    assert len(set(BLUEPRINTS)) == len(BLUEPRINTS)
    assert BLUEPRINTS[0] == NOOP_BLUEPRINT == "noop"
    # The original 13 keep their action indices; the capacity blueprints come after them.
    assert ORIGINAL_BLUEPRINTS == (
        "noop", "norm", "channel_attention", "spatial_attention", "depthwise", "conv_small", "conv_light",
        "conv_heavy", "bottleneck", "lora", "mlp", "dilated", "inverted_residual",
    )  # fmt: skip
    assert BLUEPRINTS[13:] == ("conv_wide", "widen_2x", "widen_4x")
    assert WIDENING == ["widen_2x", "widen_4x"]
    assert set(BLUEPRINT_DESCRIPTIONS) == set(BLUEPRINTS)
    assert all(
        BLUEPRINT_DESCRIPTIONS[n].strip() and "\n" not in BLUEPRINT_DESCRIPTIONS[n] for n in BLUEPRINTS
    )
    for i, name in enumerate(BLUEPRINTS):
        assert blueprint_index(name) == i


def test_unknown_blueprint_lists_valid_names() -> None:
    for call in (
        lambda: build_blueprint("transformer", 32),
        lambda: blueprint_index("transformer"),
        lambda: blueprint_param_count("transformer", 32),
    ):
        with pytest.raises(ValueError) as err:
            call()
        msg = str(err.value)
        assert "'transformer'" in msg
        assert all(repr(n) in msg for n in BLUEPRINTS)


def test_bad_channels() -> None:
    for bad in (0, -4, 2.5):
        with pytest.raises(ValueError):
            build_blueprint("conv_small", bad)


@pytest.mark.parametrize("channels", WIDTHS)
@pytest.mark.parametrize("name", RESIDUAL)
def test_shape_zero_delta_and_param_count(name: str, channels: int) -> None:
    bp = build_blueprint(name, channels, seed=0)
    assert isinstance(bp, Blueprint) and bp.name == name and bp.channels == channels
    assert count_parameters(bp) == blueprint_param_count(name, channels)
    assert not any(isinstance(m, (nn.Dropout, nn.modules.batchnorm._BatchNorm)) for m in bp.modules())
    for hw in (RES, 2):  # 2x2 is the smallest slot feature map of the hosts at resolution 16
        x = _features(channels, hw)
        delta = bp(x)
        assert delta.shape == x.shape and delta.dtype == x.dtype
        assert torch.equal(delta, torch.zeros_like(x)), "a fresh seed must have an exactly-zero delta"


def test_noop_has_no_parameters() -> None:
    for c in WIDTHS:
        assert blueprint_param_count(NOOP_BLUEPRINT, c) == 0
        assert count_parameters(build_blueprint(NOOP_BLUEPRINT, c)) == 0
        assert build_blueprint(NOOP_BLUEPRINT, c).output_layer is None


def test_real_blueprints_have_parameters() -> None:
    for name in REAL:
        assert blueprint_param_count(name, 32) > 0, name


@pytest.mark.parametrize("channels", WIDTHS)
@pytest.mark.parametrize("name", RESIDUAL_REAL)
def test_gradients_reach_every_parameter(name: str, channels: int) -> None:
    bp = build_blueprint(name, channels, seed=1)
    params = dict(bp.named_parameters())
    out_params = {id(p) for p in bp.output_layer.parameters()}
    assert out_params and all(torch.count_nonzero(p) == 0 for p in bp.output_layer.parameters()), (
        "the output layer must start at zero"
    )
    x = _features(channels, seed=2)
    target = _features(channels, seed=3)

    def loss() -> torch.Tensor:
        return (bp(x) * target).mean()  # a mean keeps the step small enough not to saturate any gate

    # At init the zero-initialised output layer gets a non-zero gradient ...
    loss().backward()
    for n, p in params.items():
        if id(p) in out_params:
            assert _nonzero_grad(p), f"{name}@{channels}: output-layer parameter {n} got no gradient at init"
    # ... and after one SGD step every parameter does.
    opt = torch.optim.SGD(bp.parameters(), lr=1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    assert bp(x).abs().sum() > 0, "the delta must move away from zero after one step"
    loss().backward()
    missing = [n for n, p in params.items() if not _nonzero_grad(p)]
    assert not missing, f"{name}@{channels}: no gradient after one SGD step for {missing}"


@pytest.mark.parametrize("name", BLUEPRINTS)
def test_seed_determinism_and_global_rng_untouched(name: str) -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = build_blueprint(name, 32, seed=5)
    blueprint_param_count(name, 48)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(999)
    b = build_blueprint(name, 32, seed=5)
    c = build_blueprint(name, 32, seed=6)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    if name in ("noop", "norm", "spatial_attention", "conv_small", "dilated"):
        return  # only the zero-initialised output layer (or nothing) is parametrised
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize("name", RESIDUAL_REAL)
def test_forward_consumes_no_rng_and_supports_channels_last(name: str) -> None:
    bp = build_blueprint(name, 32, seed=0)
    with torch.no_grad():  # make the delta non-trivial
        for p in bp.output_layer.parameters():
            p.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(0))
    x = _features(32)
    state = torch.get_rng_state()
    ref = bp(x)
    assert torch.equal(torch.get_rng_state(), state)
    out = bp.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    assert torch.equal(bp.eval()(x), bp.train()(x)), "train and eval mode must agree"


def test_table() -> None:
    rows = blueprint_table([32, 64])
    assert [r["name"] for r in rows] == list(BLUEPRINTS)
    assert [r["index"] for r in rows] == list(range(len(BLUEPRINTS)))
    for r in rows:
        assert r["description"] == BLUEPRINT_DESCRIPTIONS[r["name"]]
        assert r["params"] == {c: blueprint_param_count(r["name"], c) for c in (32, 64)}
    md = blueprint_table_markdown([32, 64])
    assert len(md.splitlines()) == 2 + len(BLUEPRINTS) and "conv_heavy" in md


def test_relative_sizes() -> None:
    p = {n: blueprint_param_count(n, 64) for n in BLUEPRINTS}
    assert p["conv_heavy"] == max(p[n] for n in ORIGINAL_BLUEPRINTS)
    assert p["conv_wide"] == 2 * (9 * 64 * 256) + 256 + 64  # hidden width 4C
    assert p["widen_2x"] < p["widen_4x"]
    assert p["lora"] == 2 * 8 * 64
    assert p["conv_small"] == 64 * 64 + 64
    assert p["lora"] < p["conv_small"] < p["dilated"] < p["conv_heavy"]


GEOMETRIES = {
    "conv consumer": SlotGeometry(8, 3, Consumer("conv", 16)),
    "strided conv consumer": SlotGeometry(16, 8, Consumer("conv", 32, 3, 2, 1)),
    "classifier": SlotGeometry(32, 16, Consumer("linear", 10)),
}


@pytest.mark.parametrize("geometry", GEOMETRIES.values(), ids=GEOMETRIES.keys())
@pytest.mark.parametrize("name", WIDENING)
def test_widening_adds_channels_through_zero_weights(name: str, geometry: SlotGeometry) -> None:
    c = geometry.channels
    bp = build_blueprint(name, c, seed=0, geometry=geometry)
    assert isinstance(bp, Widen) and bp.widens
    assert bp.new_channels == (bp.factor - 1) * c
    assert count_parameters(bp) == blueprint_param_count(name, c, geometry)
    x = _features(geometry.in_channels, 2 * RES // 2)
    h = _features(c, RES // 2)  # the block before the slot pools 2x
    assert bp.new_features(x, h).shape == (BATCH, bp.new_channels, RES // 2, RES // 2)
    out = bp.injection(x, h, 1.0)
    if geometry.consumer.kind == "linear":
        assert out.shape == (BATCH, geometry.consumer.out_channels)
    else:
        stride = geometry.consumer.stride
        assert out.shape == (BATCH, geometry.consumer.out_channels, RES // 2 // stride, RES // 2 // stride)
    assert torch.equal(out, torch.zeros_like(out)), "a fresh widening seed must inject exactly zero"
    with pytest.raises(TypeError, match="adds channels"):
        bp(h)
    # Gradient reaches the zero output layer at once, and every parameter after one step.
    target = torch.randn_like(out)
    (out * target).mean().backward()
    assert all(_nonzero_grad(p) for p in bp.output_layer.parameters())
    torch.optim.SGD(bp.parameters(), lr=1.0).step()
    bp.zero_grad(set_to_none=True)
    (bp.injection(x, h, 1.0) * target).mean().backward()
    missing = [n for n, p in bp.named_parameters() if not _nonzero_grad(p)]
    assert not missing, missing
    # alpha scales the injection linearly, and alpha 0 is exactly zero.
    with torch.no_grad():
        full = bp.injection(x, h, 1.0)
        torch.testing.assert_close(bp.injection(x, h, 0.5), 0.5 * full)
        assert torch.equal(bp.injection(x, h, 0.0), torch.zeros_like(full))


def test_geometry_must_match_the_width() -> None:
    with pytest.raises(ValueError, match="geometry is for 8 channels"):
        build_blueprint("widen_2x", 16, geometry=SlotGeometry(8, 3, Consumer("conv", 16)))
