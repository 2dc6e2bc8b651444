"""Seeds that add capacity: widening and wide residual seeds in the engine, on every host kind.

Function preservation at graft time, gradient isolation in TRAINING, the fused counterfactual
pass and snapshots with widening seeds, and the seed learning-rate multiplier.
"""

from __future__ import annotations

import io

import pytest
import torch

from esper_env.blueprints import BLUEPRINTS, ORIGINAL_BLUEPRINTS
from esper_env.configs import EnvironmentConfig, get_config
from esper_env.data import ImageSplits
from esper_env.engine import TrainingEngine
from esper_env.lifecycle import AlphaSchedule, Stage, Tempo

CAPACITY = [b for b in BLUEPRINTS if b not in ORIGINAL_BLUEPRINTS]
#: One preset per host kind: a narrow CNN, a CNN with unpooled blocks, a residual network.
HOST_PRESETS = ["impaired", "deep", "resnet18"]


def make_engine(
    data: ImageSplits, config: str | EnvironmentConfig = "impaired", seed: int = 0, **kw
) -> TrainingEngine:
    engine = TrainingEngine(config, data, device="cpu", seed=seed, **kw)
    engine.val_batch_size = 64
    return engine


def blend_now(engine: TrainingEngine, slot: int, blueprint: str) -> None:
    """Germinate and put the seed straight into BLENDING at alpha 1 (no epoch trained)."""
    engine.germinate(slot, blueprint, tempo=Tempo.FAST)
    s = engine.slots[slot]
    s.move_to(Stage.TRAINING, accuracy=None)
    s.move_to(Stage.BLENDING, accuracy=None)
    s.seed.requires_grad_(True)
    s.state.schedule = AlphaSchedule(1.0, 1.0, 1)
    s.state.alpha = s.state.schedule.value


@pytest.mark.parametrize("config", HOST_PRESETS)
@pytest.mark.parametrize("blueprint", CAPACITY)
def test_graft_preserves_the_function_exactly(test_data: ImageSplits, config: str, blueprint: str) -> None:
    engine = make_engine(test_data, config, num_slots=3)
    x = torch.randn(4, 3, 16, 16).contiguous(memory_format=torch.channels_last)
    engine.host.eval()
    before = engine.forward(x)
    for slot in range(3):
        blend_now(engine, slot, blueprint)
    for s in engine.slots:
        s.seed.eval()
    assert all(s.in_forward and s.state.alpha == 1.0 for s in engine.slots)
    assert torch.equal(engine.forward(x), before), "a fresh seed at alpha 1 must not change the output"
    with torch.no_grad():  # ...and it is really in the forward pass once its weights move
        for p in engine.slots[1].seed.body.output_layer.parameters():
            p.normal_(std=0.1)
    assert not torch.allclose(engine.forward(x), before)


@pytest.mark.parametrize("config", ["impaired", "deep"])
@pytest.mark.parametrize("blueprint", ["widen_4x", "conv_wide"])
def test_training_seed_leaves_the_host_bitwise_unchanged(
    test_data: ImageSplits, config: str, blueprint: str
) -> None:
    plain, grafted = make_engine(test_data, config), make_engine(test_data, config)
    grafted.germinate(1, blueprint)
    grafted.advance(1)
    seed_before = {k: v.clone() for k, v in grafted.slots[1].seed.state_dict().items()}
    r_plain, r_grafted = plain.run_epoch(), grafted.run_epoch()
    assert (r_plain.train_loss, r_plain.val_accuracy) == (r_grafted.train_loss, r_grafted.val_accuracy)
    for (name, p), q in zip(plain.host.state_dict().items(), grafted.host.state_dict().values()):
        assert torch.equal(p, q), name
    seed_after = grafted.slots[1].seed.state_dict()
    assert any(not torch.equal(seed_before[k], seed_after[k]) for k in seed_before), "the seed must learn"


def test_fused_counterfactual_with_widening_seeds(test_data: ImageSplits) -> None:
    engine = make_engine(test_data, "impaired")
    for _ in range(2):  # off chance level, so that a seed can move the accuracy
        engine.run_epoch()
    blend_now(engine, 0, "widen_4x")
    blend_now(engine, 2, "widen_2x")
    engine.slots[2].state.alpha = 0.7
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for i in (0, 2):
            for p in engine.slots[i].seed.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
    _, acc, contributions = engine.validate()
    assert set(contributions) == {0, 2}
    for i in (0, 2):
        alpha = engine.slots[i].state.alpha
        engine.slots[i].state.alpha = 0.0
        _, acc_without, _ = engine.evaluate(engine.data.val_x, engine.data.val_y)
        engine.slots[i].state.alpha = alpha
        assert contributions[i] == pytest.approx(acc - acc_without, abs=1e-12)
    assert any(c != 0 for c in contributions.values())


def test_snapshot_restores_widening_seeds_exactly(test_data: ImageSplits) -> None:
    engine = make_engine(test_data, "impaired")
    blend_now(engine, 0, "widen_4x")
    engine.germinate(2, "widen_2x")
    engine.advance(2)
    engine.run_epoch()
    buf = io.BytesIO()
    torch.save(engine.snapshot(), buf)
    buf.seek(0)
    snap = torch.load(buf, weights_only=True)
    expected = [engine.run_epoch().val_loss for _ in range(2)]
    other = make_engine(test_data, "impaired", seed=99)
    other.restore(snap)
    assert [other.run_epoch().val_loss for _ in range(2)] == expected
    assert (
        other.host_parameters() + other.seed_parameters()
        == engine.host_parameters() + engine.seed_parameters()
    )


def test_seed_learning_rate_multiplier(test_data: ImageSplits) -> None:
    config = EnvironmentConfig(**{**get_config("impaired").to_dict(), "seed_lr_multiplier": 3.0})
    engine = make_engine(test_data, config)
    engine.germinate(0, "widen_2x")
    assert engine.slots[0].optimizer.param_groups[0]["lr"] == pytest.approx(3 * config.learning_rate)
    assert engine.host_optimizer.param_groups[0]["lr"] == config.learning_rate
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="seed_lr_multiplier"):
            EnvironmentConfig(**{**config.to_dict(), "seed_lr_multiplier": bad})


def test_register_host_rejects_bad_specs_and_redefinitions() -> None:
    from esper_env.hosts import HOST_SPECS, HostSpec, register_host

    with pytest.raises(ValueError, match="already registered"):
        register_host("HostCNN", HostSpec("cnn", (8, 8, 8), pooled=(True, True, True)))
    with pytest.raises(ValueError, match="one 'pooled' flag per block"):
        register_host("bad-cnn", HostSpec("cnn", (8, 16)))
    with pytest.raises(ValueError, match="kind must be"):
        register_host("bad-kind", HostSpec("transformer", (8,)))
    with pytest.raises(ValueError, match="only an mlp"):
        register_host("bad-input", HostSpec("cnn", (8,), pooled=(True,), in_channels=48))
    with pytest.raises(ValueError, match="positive integers"):
        register_host("bad-width", HostSpec("mlp", (8, 0), in_channels=48))
    with pytest.raises(TypeError, match="HostSpec"):
        register_host("bad-type", {"kind": "cnn"})  # type: ignore[arg-type]
    register_host("HostCNN", HOST_SPECS["HostCNN"])  # the same spec again is a no-op
