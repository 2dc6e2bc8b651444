"""The fast tier ``Esper-Micro-v3`` (issue 22, "Must show 5"): the env checkers, determinism bit for
bit, blueprint masks on the MLP hosts, snapshot/restore across instances, instances reproducible from
the seed, held-out instances never drawn by a training split, and clear errors for a bad instance
index or split. An episode step costs about 10 ms, so these tests run whole 25-epoch episodes.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from torch import nn

import esper_env  # noqa: F401  (registers the ids)
from esper_env import EsperEnv, FactoredAction, Op
from esper_env.blueprints import BLUEPRINTS, blueprint_index, build_blueprint
from esper_env.configs import get_config
from esper_env.hosts import (
    POINTWISE_BLUEPRINTS,
    build_host,
    count_parameters,
    instance_host,
    supported_blueprints,
)
from esper_env.instances import (
    DISTRIBUTIONS,
    HELDOUT_SPLIT,
    MAX_LEVELS,
    TRAIN_SPLIT,
    Split,
    get_distribution,
)
from esper_env.spaces import WAIT_ACTION
from esper_env.wrappers import CompactActions
from tests.conftest import NANO

MICRO = "Esper-Micro-v3"
DISTRIBUTION = DISTRIBUTIONS["bottlenecks"]
#: The blueprints an MLP host masks: every real one that is not pointwise.
SPATIAL = tuple(b for b in BLUEPRINTS[1:] if b not in POINTWISE_BLUEPRINTS)


def make(**kw: Any) -> gym.Env:
    return gym.make(MICRO, device="cpu", **kw)


def germinate(slot: int, blueprint: str) -> np.ndarray:
    return FactoredAction(Op.GERMINATE, slot, blueprint=blueprint_index(blueprint)).to_array()


def same(a: Any, b: Any) -> bool:
    """Deep bitwise equality of observations, infos and snapshots (arrays and tensors by value)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and bool(torch.equal(a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and a == b


def scripted(step: int) -> np.ndarray:
    """A fixed schedule that grows: widen slot 0 at epoch 1, advance it, WAIT otherwise."""
    if step == 1:
        return germinate(0, "widen_4x")
    if step in (2, 3, 4):
        return FactoredAction(Op.ADVANCE, 0).to_array()
    return WAIT_ACTION.to_array()


def episode(env: gym.Env, seed: int, options: dict | None = None) -> list[Any]:
    """A whole scripted episode: every observation, reward, flag and info."""
    obs, info = env.reset(seed=seed, options=options)
    out: list[Any] = [obs, info]
    for t in range(100):
        obs, reward, term, trunc, info = env.step(scripted(t))
        out += [obs, reward, term, trunc, info]
        if term or trunc:
            return out
    raise AssertionError("the episode did not end")


# ------------------------------------------------------------------ checkers and determinism


@pytest.mark.filterwarnings("ignore:.*is different from the unwrapped version")
@pytest.mark.parametrize("wrap", [lambda e: e, CompactActions], ids=["EsperEnv", "CompactActions"])
def test_gymnasium_and_sb3_env_checkers_pass(wrap) -> None:
    gym_check_env(wrap(make().unwrapped), skip_render_check=True)
    sb3_check_env(wrap(make()), warn=True)


def test_the_id_builds_the_fast_tier_with_the_other_ids_spaces() -> None:
    env = make()
    base = env.unwrapped
    assert base.dataset == "clusters" and base.fidelity.name == "micro" and base.max_epochs == 25
    assert base.distribution is DISTRIBUTION and base.split == Split()
    synth = gym.make("Esper-SynthCIFAR-v2", fidelity=NANO, device="cpu")
    assert env.action_space == synth.action_space
    assert env.observation_space == synth.observation_space


def test_same_seed_same_episode_bit_for_bit_and_other_seeds_differ() -> None:
    env = make()
    a, b = episode(env, 11), episode(make(), 11)
    assert same(a, b)
    assert a[1]["instance"] == b[1]["instance"]
    assert a[-1]["score"] == b[-1]["score"] and a[-1]["seeds_created"] == 1
    c = episode(env, 12)
    assert not same(a, c)


def test_pinned_instance_episodes_are_identical_and_the_seed_still_matters() -> None:
    env = make()
    a = episode(env, 3, {"instance": 42})
    b = episode(make(), 3, {"instance": 42})
    assert same(a, b)
    assert a[1]["instance"] == 42 and all(i["instance"] == 42 for i in a[6::5])
    assert a[1]["instance_fields"] == DISTRIBUTION.draw(42).to_dict()
    c = episode(env, 4, {"instance": 42})  # the same task, another episode seed
    assert c[1]["instance"] == 42 and not same(a, c)


# ------------------------------------------------------------------ masks


def test_unsupported_blueprints_are_masked_in_the_info_and_in_compact_actions() -> None:
    env = make()
    _, info = env.reset(seed=0)
    base = env.unwrapped
    assert supported_blueprints(base.config.architecture) == POINTWISE_BLUEPRINTS
    expected = np.array([b in POINTWISE_BLUEPRINTS for b in base.blueprints])
    np.testing.assert_array_equal(base.blueprint_mask(), expected)
    n = base.num_slots
    heads = info["action_mask"]
    np.testing.assert_array_equal(heads[6 + n : 6 + n + len(BLUEPRINTS)], expected)
    np.testing.assert_array_equal(heads, base.action_masks())

    compact = CompactActions(make())
    _, info = compact.reset(seed=0)
    mask = info["action_mask"]
    germinates = [i for i, a in enumerate(compact.actions) if a.op == Op.GERMINATE]
    assert germinates
    for i in germinates:
        assert mask[i] == (BLUEPRINTS[compact.actions[i].blueprint] in POINTWISE_BLUEPRINTS)
    assert {BLUEPRINTS[compact.actions[i].blueprint] for i in germinates if mask[i]} == set(
        POINTWISE_BLUEPRINTS
    )


@pytest.mark.parametrize("blueprint", SPATIAL)
def test_germinating_a_masked_blueprint_runs_as_wait(blueprint: str) -> None:
    env = make(max_epochs=3)
    env.reset(seed=0)
    action = germinate(0, blueprint)
    assert not env.unwrapped.is_legal_action(action)
    _, _, _, _, info = env.step(action)
    assert info["action_valid"] is False
    np.testing.assert_array_equal(info["executed_action"], WAIT_ACTION.to_array())
    assert info["slot_stages"][0] == "DORMANT"
    assert env.unwrapped.engine.seed_parameters() == 0


PROPERTY_ENV = make(max_epochs=10)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), p_legal=st.floats(0.3, 0.95))
def test_random_actions_follow_the_mask_exactly_on_the_blueprint_head(seed: int, p_legal: float) -> None:
    """Random (op, slot) legal or not, every blueprint: the action executes iff the mask says so."""
    env, rng = PROPERTY_ENV, np.random.default_rng(seed)
    env.action_space.seed(seed)
    _, info = env.reset(seed=seed)
    base = env.unwrapped
    n = base.num_slots
    for _ in range(30):
        legal, supported = base.legal_actions(), base.blueprint_mask()
        np.testing.assert_array_equal(info["action_mask"][6 + n : 6 + n + len(BLUEPRINTS)], supported)
        a = env.action_space.sample()
        if rng.random() < p_legal:  # a legal (op, slot), any blueprint
            ops, slots = np.nonzero(legal)
            k = rng.integers(len(ops))
            a[0], a[1] = ops[k], slots[k]
        expected = bool(legal[a[0], a[1]]) and (a[0] != Op.GERMINATE or bool(supported[a[2]]))
        assert base.is_legal_action(a) == expected
        _, _, term, trunc, info = env.step(a)
        assert info["action_valid"] == expected, FactoredAction(*a).describe()
        if a[0] == Op.GERMINATE and expected:
            assert BLUEPRINTS[a[2]] in POINTWISE_BLUEPRINTS
        if term or trunc:
            _, info = env.reset(seed=int(rng.integers(2**16)))


def test_only_the_pointwise_blueprints_are_pointwise_on_an_mlp_host() -> None:
    """On 1x1 maps a kxk kernel uses only its centre tap: that is why the others are masked."""
    host = build_host(instance_host((16, 4, 16), "mlp"), 10, seed=0)
    for slot in range(host.num_slots):
        geometry = host.slot_geometry(slot)
        assert geometry.kernel_size == 1
        for name in BLUEPRINTS[1:]:
            module = build_blueprint(name, geometry.channels, seed=0, geometry=geometry)
            kernels = {tuple(m.kernel_size) for m in module.modules() if isinstance(m, nn.Conv2d)}
            if name in POINTWISE_BLUEPRINTS:
                assert kernels <= {(1, 1)}, (name, slot, kernels)
            else:
                assert any(k != (1, 1) for k in kernels), (name, slot, kernels)


@pytest.mark.parametrize("slot", [0, 1, 2])
def test_a_widening_seed_on_an_mlp_host_has_the_honest_parameter_count(slot: int) -> None:
    env = make(max_epochs=3)
    env.reset(seed=0, options={"instance": 0})
    base = env.unwrapped
    geometry = base.engine.host.slot_geometry(slot)
    _, _, _, _, info = env.step(germinate(slot, "widen_4x"))
    assert info["action_valid"]
    k = 3 * geometry.channels  # the new channels
    # branch (1x1, no bias) + GroupNorm (weight, bias) + output layer into the consumer (1x1 or linear)
    honest = geometry.in_channels * k + 2 * k + k * geometry.consumer.out_channels
    seed = base.engine.slots[slot].seed
    assert count_parameters(seed) == honest
    # v3 prices it as on the CNN twin (tests/env/test_pricing.py): the 3x3 branch there costs more.
    assert base.engine.seed_parameters() == base.engine.pricing.seed(base.engine.slots[slot]) > honest
    assert all(p.dim() < 4 or p.shape[-2:] == (1, 1) for p in seed.parameters())


# ------------------------------------------------------------------ snapshot and restore


def test_restore_into_a_fresh_env_continues_identically_and_restores_the_instance() -> None:
    env = make()
    env.reset(seed=5)
    for t in range(4):
        env.step(scripted(t))
    source = env.unwrapped
    snap = source.snapshot()
    assert snap["instance"] == source.instance.index

    fresh = make()
    fresh.reset(seed=6)  # another instance
    assert fresh.unwrapped.instance.index != snap["instance"]
    fresh.unwrapped.restore(snap)
    assert fresh.unwrapped.instance == source.instance
    assert fresh.unwrapped.config == source.config and fresh.unwrapped.rent_weight == source.rent_weight
    fork = source.fork()
    assert fork.instance == source.instance
    runs = []
    for e in (source, fresh.unwrapped, fork):
        runs.append([e.step(scripted(t)) for t in range(4, 25)])
    assert same(runs[0], runs[1]) and same(runs[0], runs[2])
    assert runs[0][-1][3] is True  # truncated at max_epochs


def test_a_snapshot_outside_the_split_is_refused_and_changes_nothing() -> None:
    env = make(start_level=100, num_levels=10).unwrapped
    env.reset(seed=0)
    env.step(scripted(0))
    snap = env.snapshot()
    before, twin = env.instance, env.fork()
    for index in (99, 110, -1, True):
        with pytest.raises(ValueError, match=r"\[100, 110\)"):
            env.restore({**snap, "instance": index})
        assert env.instance == before
    assert same(env.snapshot(), snap)
    assert same([env.step(scripted(t)) for t in range(1, 4)], [twin.step(scripted(t)) for t in range(1, 4)])
    # A snapshot of another split is refused as an incompatible env.
    with pytest.raises(ValueError, match="split"):
        make(start_level=0, num_levels=10).unwrapped.restore(snap)


def test_instance_and_plain_snapshots_are_refused_by_the_other_kind_of_env() -> None:
    plain = EsperEnv(fidelity=NANO, max_epochs=3)
    plain.reset(seed=0)
    drawn = EsperEnv(fidelity=NANO, max_epochs=3, instances="bottlenecks")
    drawn.reset(seed=0)
    plain_snap, drawn_snap = plain.snapshot(), drawn.snapshot()
    assert plain_snap["instance"] is None and drawn_snap["instance"] == drawn.instance.index
    with pytest.raises(ValueError, match="incompatible env .*instances: snapshot None, env 'bottlenecks'"):
        drawn.restore(plain_snap)
    with pytest.raises(ValueError, match=f"of instance {drawn.instance.index}; this env has no distribution"):
        plain.restore(drawn_snap)
    # The same settings but a doctored instance field: refused by name.
    with pytest.raises(ValueError, match="names no instance"):
        drawn.restore({**drawn_snap, "instance": None})
    with pytest.raises(ValueError, match="no distribution"):
        plain.restore({**plain_snap, "instance": 3})
    assert same(plain.snapshot(), plain_snap) and same(drawn.snapshot(), drawn_snap)


# ------------------------------------------------------------------ instances and splits


def test_draw_is_a_pure_function_of_the_index() -> None:
    state = np.random.get_state()
    a = [DISTRIBUTION.draw(k) for k in (0, 1, 7, MAX_LEVELS - 1)]
    assert a == [DISTRIBUTION.draw(k) for k in (0, 1, 7, MAX_LEVELS - 1)]
    assert a[0] != a[1]
    assert np.array_equal(np.random.get_state()[1], state[1])  # the global RNG is untouched
    assert DISTRIBUTION.draw(np.int64(7)) == a[2]
    assert get_distribution("bottlenecks") is DISTRIBUTION and get_distribution(DISTRIBUTION) is DISTRIBUTION
    for inst in (DISTRIBUTION.draw(k) for k in range(50)):
        assert inst.learning_rate in DISTRIBUTION.learning_rate and inst.rent in DISTRIBUTION.rent
        assert (inst.bottleneck == -1) == (len(set(inst.widths)) == 1)


def test_reset_seed_draws_the_same_instance_and_other_seeds_others() -> None:
    env = make()
    first = {s: env.reset(seed=s)[1]["instance"] for s in range(10)}
    again = {s: make().reset(seed=s)[1]["instance"] for s in reversed(range(10))}
    assert first == again
    assert len(set(first.values())) == 10
    _, info = env.reset(seed=3)
    assert info["instance_fields"] == DISTRIBUTION.draw(info["instance"]).to_dict()
    assert env.unwrapped.instance == DISTRIBUTION.draw(info["instance"])
    assert env.unwrapped.rent_weight == env.unwrapped.instance.rent
    # Seedless resets go on drawing from the env's RNG stream.
    assert env.reset()[1]["instance"] in env.unwrapped.split


def test_the_training_split_never_draws_a_held_out_instance() -> None:
    assert not TRAIN_SPLIT.overlaps(HELDOUT_SPLIT) and not HELDOUT_SPLIT.overlaps(TRAIN_SPLIT)
    assert TRAIN_SPLIT.stop <= HELDOUT_SPLIT.start_level
    env = make(start_level=TRAIN_SPLIT.start_level, num_levels=TRAIN_SPLIT.num_levels, max_epochs=1)
    drawn = [env.reset(seed=s)[1]["instance"] for s in range(200)]
    drawn += [env.reset()[1]["instance"] for _ in range(100)]
    assert all(i in TRAIN_SPLIT and i not in HELDOUT_SPLIT for i in drawn)
    small = make(start_level=7, num_levels=3, max_epochs=1)
    assert {small.reset(seed=s)[1]["instance"] for s in range(60)} == {7, 8, 9}
    held = make(start_level=HELDOUT_SPLIT.start_level, num_levels=HELDOUT_SPLIT.num_levels, max_epochs=1)
    assert all(held.reset(seed=s)[1]["instance"] in HELDOUT_SPLIT for s in range(50))
    with pytest.raises(ValueError, match=rf"\[0, {TRAIN_SPLIT.stop}\)"):
        env.reset(seed=0, options={"instance": HELDOUT_SPLIT.start_level})
    assert (
        env.reset(seed=0, options={"instance": TRAIN_SPLIT.stop - 1})[1]["instance"] == TRAIN_SPLIT.stop - 1
    )


@pytest.mark.parametrize("index", [True, False, -1, 1.0, "3", MAX_LEVELS, [2]])
def test_a_bad_instance_index_is_refused_by_value(index: Any) -> None:
    env = make(max_epochs=1)
    with pytest.raises(ValueError, match=re.escape(f"instance {index!r} is not in this env's split")):
        env.reset(seed=0, options={"instance": index})
    with pytest.raises(ValueError, match=re.escape(f"[0, {MAX_LEVELS}), got {index!r}")):
        DISTRIBUTION.draw(index)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"num_levels": -1}, "num_levels must be an integer in .* got -1"),
        ({"start_level": -5}, "start_level must be an integer in .* got -5"),
        ({"start_level": MAX_LEVELS}, f"start_level must be an integer in .* got {MAX_LEVELS}"),
        ({"num_levels": True}, "num_levels must be an integer in .* got True"),
        ({"start_level": False}, "start_level must be an integer in .* got False"),
        ({"start_level": 2.0}, "start_level must be an integer in .* got 2.0"),
        ({"start_level": MAX_LEVELS - 5, "num_levels": 10}, f"exceeds {MAX_LEVELS}"),
        ({"instances": "nope"}, "'nope'.*'bottlenecks'"),
        ({"instances": None}, "pass instances="),
    ],
)
def test_a_bad_split_or_distribution_is_refused_by_value(kwargs: dict, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        make(**kwargs)


def test_a_split_without_a_distribution_is_refused() -> None:
    for kwargs in ({"num_levels": 5}, {"start_level": 3}):
        with pytest.raises(ValueError, match="pass instances="):
            EsperEnv(fidelity=NANO, max_epochs=1, **kwargs)
    plain = EsperEnv(fidelity=NANO, max_epochs=1)
    with pytest.raises(ValueError, match="instance distribution"):
        plain.reset(seed=0, options={"instance": 0})
    assert "instance" not in plain.reset(seed=0)[1]


@pytest.mark.parametrize("options", [{"level": 3}, {"instance": 1, "seed": 2}, ["instance"]])
def test_reset_options_with_an_unknown_key_are_refused(options: Any) -> None:
    with pytest.raises(ValueError, match="at most the key 'instance'"):
        make(max_epochs=1).reset(seed=0, options=options)


def test_vector_envs_stack_the_instance_infos() -> None:
    """Gymnasium's vector envs stack every info key (no ``None`` among them), across an autoreset."""
    envs = gym.make_vec(MICRO, num_envs=2, vectorization_mode="sync", max_epochs=2, device="cpu")
    _, info = envs.reset(seed=0)
    assert info["instance"].shape == (2,) and info["instance_fields"]["bottleneck"].dtype.kind == "i"
    for _ in range(3):
        *_, info = envs.step(np.zeros((2, 8), dtype=np.int64))
    assert info["instance"].shape == (2,)
    envs.close()


# ------------------------------------------------------------------ the optimizer as an instance field


def test_drawing_an_optimizer_leaves_every_other_field_as_drawn_before() -> None:
    """The optimizer is drawn last: adding it to a distribution keeps its instances otherwise the same."""
    mixed = dataclasses.replace(DISTRIBUTION, name="mixed", optimizer=("SGD", "Adam"))
    drawn = [mixed.draw(k) for k in range(40)]
    assert {i.optimizer for i in drawn} == {"SGD", "Adam"}
    for k, inst in enumerate(drawn):
        assert dataclasses.replace(inst, optimizer="") == DISTRIBUTION.draw(k)
    assert DISTRIBUTION.draw(3).optimizer == ""  # the preset's


def test_an_instance_trains_its_host_and_seeds_with_its_optimizer() -> None:
    dist = dataclasses.replace(DISTRIBUTION, name="adam", optimizer=("Adam",))
    env = make(instances=dist, max_epochs=3)
    _, info = env.reset(seed=0)
    assert info["instance_fields"]["optimizer"] == "Adam"
    assert isinstance(env.unwrapped.engine.host_optimizer, torch.optim.Adam)
    env.step(germinate(0, "widen_4x"))
    assert isinstance(env.unwrapped.engine.slots[0].optimizer, torch.optim.Adam)
    plain = make(max_epochs=3)
    plain.reset(seed=0)
    assert isinstance(plain.unwrapped.engine.host_optimizer, torch.optim.SGD)  # the preset's


def test_an_unknown_optimizer_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"unknown optimizer\(s\) \['RMSprop'\]; valid: \['SGD', 'Adam'\]"):
        dataclasses.replace(DISTRIBUTION, name="bad", optimizer=("SGD", "RMSprop"))


def _adam_instance() -> int:
    dist = DISTRIBUTIONS["optimizers"]
    return next(k for k in range(100) if dist.draw(k).optimizer == "Adam")


@pytest.mark.filterwarnings("ignore:.*is different from the unwrapped version")
def test_the_optimizers_distribution_passes_the_checkers() -> None:
    gym_check_env(make(instances="optimizers").unwrapped, skip_render_check=True)
    sb3_check_env(CompactActions(make(instances="optimizers")), warn=True)


def test_an_adam_instance_is_deterministic_and_restores_its_optimizer_state() -> None:
    k = _adam_instance()
    a = episode(make(instances="optimizers"), 3, {"instance": k})
    assert same(a, episode(make(instances="optimizers"), 3, {"instance": k}))
    assert a[1]["instance_fields"]["optimizer"] == "Adam" and a[-1]["seeds_created"] == 1

    env = make(instances="optimizers")
    env.reset(seed=3, options={"instance": k})
    for t in range(4):
        env.step(scripted(t))
    snap = env.unwrapped.snapshot()
    fresh = make(instances="optimizers")
    sgd = next(j for j in range(100) if DISTRIBUTIONS["optimizers"].draw(j).optimizer == "SGD")
    fresh.reset(seed=9, options={"instance": sgd})  # an SGD instance
    assert isinstance(fresh.unwrapped.engine.host_optimizer, torch.optim.SGD)
    fresh.unwrapped.restore(snap)
    assert fresh.unwrapped.config.optimizer == "Adam"
    assert isinstance(fresh.unwrapped.engine.host_optimizer, torch.optim.Adam)
    runs = [[e.step(scripted(t)) for t in range(4, 25)] for e in (env.unwrapped, fresh.unwrapped)]
    assert same(runs[0], runs[1])


def test_the_difficulty_distribution_hides_the_task_and_shows_the_rent() -> None:
    """``difficulty``: blobs per class (hidden) span easy to hard; the rent varies and is observed."""
    dist = DISTRIBUTIONS["difficulty"]
    drawn = [dist.draw(k) for k in range(200)]
    assert {f.blobs for f in drawn} == {2, 8, 32} and {f.rent for f in drawn} == {0.0, 0.03, 0.06}
    assert {f.optimizer for f in drawn} == {"SGD", "Adam"}
    env = make(instances="difficulty")
    schema = env.unwrapped.observation_schema
    for k in (next(i for i, f in enumerate(drawn) if f.rent == r) for r in (0.0, 0.03, 0.06)):
        obs, info = env.reset(seed=0, options={"instance": k})
        assert info["instance_fields"]["blobs"] == drawn[k].blobs
        assert obs[schema["context/rent"]][0] == pytest.approx(10 * drawn[k].rent)
    assert not any(name.startswith("context/") and "blob" in name for name in schema)


def test_the_slow_distribution_is_optimizers_at_its_slow_learning_rates() -> None:
    """``slow``: the optimizers distribution's fields, its learning rates cut to 0.003 and 0.01 (both
    optimizers at both), the rest drawn as there; the optimizer stays out of the observation."""
    slow, optimizers = DISTRIBUTIONS["slow"], DISTRIBUTIONS["optimizers"]
    drawn = [slow.draw(k) for k in range(200)]
    assert {(f.optimizer, f.learning_rate) for f in drawn} == {
        (o, lr) for o in ("SGD", "Adam") for lr in (0.003, 0.01)
    }
    assert (
        dataclasses.replace(optimizers, name="slow", learning_rate=(0.003, 0.01), summary=slow.summary)
        == slow
    )
    env = make(instances="slow")
    schema = env.unwrapped.observation_schema
    obs, info = env.reset(seed=0, options={"instance": 5})
    assert info["instance_fields"]["learning_rate"] == drawn[5].learning_rate
    assert obs[schema["context/log_lr"]][0] == pytest.approx(
        (np.log10(drawn[5].learning_rate) + 4) / 4, abs=1e-5
    )
    assert not any(name.startswith("context/") and "optim" in name for name in schema)


def test_slow_paced_trains_the_fast_tier_at_three_times_the_rate_it_shows() -> None:
    """``slow-paced``: ``slow``'s instances (the same draws), the fast tier's host and seeds training
    at 3x the drawn learning rate; the observation and ``info`` show the drawn rate, and an image
    host (the distribution at "tiny") ignores the multiple."""
    paced, slow = DISTRIBUTIONS["slow-paced"], DISTRIBUTIONS["slow"]
    for k in (0, 5, HELDOUT_SPLIT.start_level + 7):
        assert dataclasses.replace(paced.draw(k), mlp_lr_scale=1.0) == slow.draw(k)
    assert paced.draw(5).mlp_lr_scale == 3.0 and slow.draw(5).mlp_lr_scale == 1.0
    env = make(instances="slow-paced")
    schema = env.unwrapped.observation_schema
    obs, info = env.reset(seed=0, options={"instance": 5})
    lr = slow.draw(5).learning_rate
    assert info["instance_fields"]["learning_rate"] == lr and info["instance_fields"]["mlp_lr_scale"] == 3.0
    assert obs[schema["context/log_lr"]][0] == pytest.approx((np.log10(lr) + 4) / 4, abs=1e-5)
    engine = env.unwrapped.engine
    assert engine.host_optimizer.param_groups[0]["lr"] == pytest.approx(3 * lr)
    env.step(germinate(0, "widen_4x"))
    seed_optimizer = engine.slots[0].optimizer
    assert seed_optimizer is not None
    assert seed_optimizer.param_groups[0]["lr"] == pytest.approx(3 * lr * engine.config.seed_lr_multiplier)
    # Under ``slow`` the same instance trains at the drawn rate.
    plain = make(instances="slow")
    plain.reset(seed=0, options={"instance": 5})
    assert plain.unwrapped.engine.host_optimizer.param_groups[0]["lr"] == pytest.approx(lr)
    synth = gym.make("Esper-SynthCIFAR-v2", fidelity=NANO, device="cpu", instances="slow-paced").unwrapped
    synth.reset(seed=0, options={"instance": 5})
    assert synth.config.lr_scale == 1.0
    assert synth.engine.host_optimizer.param_groups[0]["lr"] == pytest.approx(lr)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), True, "3"])
def test_a_bad_learning_rate_multiple_is_named(bad: Any) -> None:
    with pytest.raises(
        ValueError, match=f"mlp_lr_scale must be a positive finite number, got {re.escape(repr(bad))}"
    ):
        dataclasses.replace(DISTRIBUTIONS["slow"], mlp_lr_scale=bad)
    with pytest.raises(
        ValueError, match=f"lr_scale must be a positive finite number, got {re.escape(repr(bad))}"
    ):
        dataclasses.replace(get_config("impaired"), lr_scale=bad)


@pytest.mark.filterwarnings("ignore:.*is different from the unwrapped version")
def test_slow_paced_passes_the_checkers_and_replays_bit_for_bit() -> None:
    """The multiple changes how the host learns (a pinned instance's episode differs from ``slow``'s)
    and nothing else: the env checkers pass and a seed replays the same episode."""
    gym_check_env(make(instances="slow-paced").unwrapped, skip_render_check=True)
    sb3_check_env(make(instances="slow-paced"), warn=True)
    pinned = {"instance": HELDOUT_SPLIT.start_level + 3}
    a, b = (episode(make(instances="slow-paced"), 4, pinned) for _ in range(2))
    assert same(a, b)
    plain = episode(make(instances="slow"), 4, pinned)
    assert a[1]["instance"] == plain[1]["instance"] and a[-1]["score"] != plain[-1]["score"]
