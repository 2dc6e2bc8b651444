"""The training engine: gradient isolation, blending, counterfactuals, snapshots, determinism.

Isolation, snapshots and determinism are bitwise properties whatever the data: those tests train on
the tests' NANO splits.
"""

from __future__ import annotations

import io

import pytest
import torch

from esper_env.configs import get_config
from esper_env.data import ImageSplits
from esper_env.engine import TrainingEngine
from esper_env.lifecycle import BlendStyle, IllegalTransitionError, Op, Stage, Tempo
from esper_env.slots import Seed


def make_engine(data: ImageSplits, seed: int = 0, config: str = "baseline", **kw) -> TrainingEngine:
    return TrainingEngine(config, data, device="cpu", seed=seed, **kw)


def host_state(engine: TrainingEngine) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in engine.host.state_dict().items()}


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k, tensor in a.items():
        assert torch.equal(tensor, b[k]), k


def blend_in(engine: TrainingEngine, slot: int, blueprint: str = "conv_small", **kw) -> None:
    """Germinate, train the minimum epochs, and start blending a seed."""
    engine.germinate(slot, blueprint, tempo=Tempo.FAST, **kw)
    engine.advance(slot)
    for _ in range(engine.gates.min_training_epochs):
        engine.run_epoch()
    engine.advance(slot)


def test_host_is_bitwise_unaffected_by_a_training_seed(nano_data: ImageSplits) -> None:
    plain, grafted = make_engine(nano_data), make_engine(nano_data)
    grafted.germinate(0, "conv_heavy")
    grafted.advance(0)
    assert grafted.slots[0].stage == Stage.TRAINING
    seed_before = {k: v.clone() for k, v in grafted.slots[0].seed.state_dict().items()}
    for _ in range(2):
        r_plain, r_grafted = plain.run_epoch(), grafted.run_epoch()
        assert r_plain.train_loss == r_grafted.train_loss
        assert r_plain.val_accuracy == r_grafted.val_accuracy
    assert_same_tensors(host_state(plain), host_state(grafted))
    # Gradients of the last batch, kept on .grad, are equal too.
    for (name, p), q in zip(plain.host.named_parameters(), grafted.host.parameters()):
        assert torch.equal(p.grad, q.grad), name
    # ...while the seed really learned from the task.
    seed_after = grafted.slots[0].seed.state_dict()
    assert any(not torch.equal(seed_before[k], seed_after[k]) for k in seed_before)


@pytest.mark.parametrize("style", list(BlendStyle))
def test_blend_is_identity_at_alpha_zero_and_full_at_alpha_one(style: BlendStyle) -> None:
    seed = Seed("conv_small", 16, style, seed=3)
    with torch.no_grad():
        for p in seed.parameters():
            p.normal_()
    h = torch.randn(4, 16, 8, 8)
    assert torch.equal(seed(h, 0.0), h)
    delta = seed.body(h)
    full = seed(h, 1.0)
    if style == BlendStyle.ADDITIVE:
        torch.testing.assert_close(full, h + delta)
    elif style == BlendStyle.MULTIPLICATIVE:
        torch.testing.assert_close(full, h * (1 + torch.tanh(delta)))
    else:
        assert not torch.allclose(full, h)
    # A per-sample alpha tensor gives each sample its own blend.
    alpha = torch.tensor([0.0, 1.0, 0.0, 1.0]).view(-1, 1, 1, 1)
    mixed = seed(h, alpha)
    assert torch.equal(mixed[0], h[0])
    torch.testing.assert_close(mixed[1], full[1])


def test_blending_seed_at_alpha_zero_leaves_host_output_unchanged(test_data: ImageSplits) -> None:
    engine = make_engine(test_data)
    blend_in(engine, 1, "conv_heavy")
    with torch.no_grad():
        for p in engine.slots[1].seed.parameters():
            p.normal_(std=0.1)
    x = torch.randn(8, 3, 16, 16)
    engine.host.eval()
    engine.slots[1].state.alpha = 0.0
    assert torch.equal(engine.forward(x), engine.host(x))
    engine.slots[1].state.alpha = 1.0
    assert not torch.allclose(engine.forward(x), engine.host(x))


def test_fused_counterfactual_equals_separate_alpha_zero_validation(test_data: ImageSplits) -> None:
    engine = make_engine(test_data)
    blend_in(engine, 0, "conv_small")
    blend_in(engine, 2, "mlp", style=BlendStyle.CHANNEL_GATED)
    with torch.no_grad():  # make both seeds matter
        for s in (engine.slots[0], engine.slots[2]):
            for p in s.seed.parameters():
                p.normal_(std=0.3)
    assert engine.measured_slots() == [0, 2]
    loss, acc, contributions = engine.validate()
    assert set(contributions) == {0, 2}
    for i in (0, 2):
        alpha = engine.slots[i].state.alpha
        engine.slots[i].state.alpha = 0.0
        _, acc_without, _ = engine.evaluate(engine.data.val_x, engine.data.val_y)
        engine.slots[i].state.alpha = alpha
        assert contributions[i] == pytest.approx(acc - acc_without, abs=1e-12)
    assert any(abs(c) > 0 for c in contributions.values())
    plain_loss, plain_acc, _ = engine.evaluate(engine.data.val_x, engine.data.val_y)
    assert (plain_loss, plain_acc) == pytest.approx((loss, acc))


def run_script(engine: TrainingEngine, epochs: int) -> list[float]:
    out = []
    for _ in range(epochs):
        r = engine.run_epoch()
        out += [r.train_loss, r.val_loss, r.val_accuracy, *r.contributions.values()]
    return out


def build_busy_engine(data: ImageSplits, seed: int = 0) -> TrainingEngine:
    engine = make_engine(data, seed=seed, config="adam")
    blend_in(engine, 0, "bottleneck", style=BlendStyle.SPATIAL_GATED)
    engine.germinate(1, "depthwise")
    engine.advance(1)
    engine.run_epoch()
    return engine


def test_restore_then_continue_equals_never_snapshotting(nano_data: ImageSplits) -> None:
    engine = build_busy_engine(nano_data)
    snap = engine.snapshot()
    expected = run_script(engine, 3)
    expected_host = host_state(engine)

    # Round trip through bytes with weights_only: no arbitrary objects in a snapshot.
    buf = io.BytesIO()
    torch.save(snap, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)

    other = make_engine(nano_data, seed=123, config="adam")  # a different engine, overwritten whole
    other.restore(loaded)
    assert run_script(other, 3) == expected
    assert_same_tensors(host_state(other), expected_host)

    engine.restore(snap)  # the snapshot is not aliased by the live state
    assert run_script(engine, 3) == expected


def test_same_seed_same_results_and_different_seed_differs(nano_data: ImageSplits) -> None:
    a, b, c = (
        build_busy_engine(nano_data, 5),
        build_busy_engine(nano_data, 5),
        build_busy_engine(nano_data, 6),
    )
    assert run_script(a, 2) == run_script(b, 2)
    assert_same_tensors(host_state(a), host_state(b))
    assert run_script(c, 2) != run_script(a, 2)


def test_illegal_operations_raise_and_name_the_problem(test_data: ImageSplits) -> None:
    engine = make_engine(test_data)
    with pytest.raises(IllegalTransitionError, match="ADVANCE on slot 0.*DORMANT"):
        engine.advance(0)
    with pytest.raises(IllegalTransitionError, match="noop"):
        engine.germinate(0, "noop")
    with pytest.raises(ValueError, match="'wormhole'.*conv_small"):
        engine.germinate(0, "wormhole")
    with pytest.raises(ValueError, match="slot 7.*0..2"):
        engine.germinate(7, "conv_small")
    engine.germinate(0, "conv_small")
    engine.advance(0)
    with pytest.raises(IllegalTransitionError, match="trained 0 epochs.*needs 2"):
        engine.advance(0)
    with pytest.raises(IllegalTransitionError, match="FOSSILIZE.*HOLDING"):
        engine.apply(Op.FOSSILIZE, 0)
    with pytest.raises(ValueError, match="alpha target 0.9"):
        engine.set_alpha_target(0, 0.9)


def test_unknown_preset_names_value_and_lists_valid(test_data: ImageSplits) -> None:
    with pytest.raises(ValueError, match="'resnet9000'.*'baseline'.*'impaired'"):
        make_engine(test_data, config="resnet9000")
    with pytest.raises(ValueError, match="num_slots=9"):
        make_engine(test_data, num_slots=9)


def test_full_lifecycle_to_fossil_and_prune_to_dormant(test_data: ImageSplits) -> None:
    engine = make_engine(test_data)
    blend_in(engine, 0)
    while not engine.is_legal(Op.ADVANCE, 0):
        engine.run_epoch()
    engine.advance(0)
    assert engine.slots[0].stage == Stage.HOLDING
    assert engine.slots[0].state.alpha == engine.slots[0].state.alpha_target
    assert not engine.is_legal(Op.FOSSILIZE, 0)  # no contribution measured in HOLDING yet
    engine.run_epoch()
    assert engine.slots[0].state.contribution is not None
    host_before = engine.host_parameters()
    engine.fossilize(0)
    assert engine.host_parameters() > host_before and engine.seed_parameters() == 0

    engine.germinate(1, "conv_light")
    engine.prune(1)
    assert engine.slots[1].stage == Stage.PRUNED
    engine.run_epoch()
    assert engine.slots[1].stage == Stage.EMBARGOED and engine.slots[1].seed is None
    for _ in range(engine.gates.embargo_epochs):
        engine.run_epoch()
    assert engine.slots[1].stage == Stage.DORMANT
    assert (engine.counters.created, engine.counters.fossilized, engine.counters.pruned) == (2, 1, 1)


def test_divergence_is_detected_not_raised(test_data: ImageSplits) -> None:
    engine = make_engine(test_data, config=get_config("fast-lr"))
    engine.host_optimizer.param_groups[0]["lr"] = 1e6
    results = [engine.run_epoch() for _ in range(2)]
    assert any(r.diverged for r in results)
    assert any(r.divergence_reason for r in results)
