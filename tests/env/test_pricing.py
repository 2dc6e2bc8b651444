"""Env v3 on the fast tier's MLP hosts: seeds' norms take one group on 1x1 maps, and the network is
priced as the CNN host of the same widths (esper_env/pricing.py); the image ids stay at v2."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from torch import nn

from esper_env import EsperEnv
from esper_env.blueprints import BLUEPRINTS, blueprint_param_count, build_blueprint
from esper_env.datasets import ENV_IDS, dataset_record
from esper_env.hosts import build_host, count_parameters, instance_host
from esper_env.pricing import Pricing
from esper_env.slots import Seed, Slot
from esper_env.spaces import FactoredAction, Op, Tempo
from esper_env.versions import same_dynamics

WIDTHS = (8, 16, 64)


def groups(module: nn.Module) -> list[int]:
    return [m.num_groups for m in module.modules() if isinstance(m, nn.GroupNorm)]


def test_norm_groups_caps_the_groups_and_changes_no_parameter() -> None:
    for name in ("norm", "widen_2x", "widen_4x"):
        default, one = build_blueprint(name, 16), build_blueprint(name, 16, norm_groups=1)
        assert groups(default) == [8] and groups(one) == [1]
        assert count_parameters(default) == count_parameters(one)
    assert groups(build_blueprint("conv_small", 16, norm_groups=1)) == []  # no norm: nothing to cap
    with pytest.raises(ValueError, match="norm_groups must be a positive integer, got 0"):
        build_blueprint("norm", 16, norm_groups=0)


def test_the_twin_price_counts_the_cnn_of_the_same_widths_and_its_seeds_there() -> None:
    mlp = build_host(instance_host(WIDTHS, "mlp"), 10)
    cnn = build_host(instance_host(WIDTHS, "cnn"), 10)
    own, twin = Pricing(mlp), Pricing(mlp, instance_host(WIDTHS, "cnn"))
    assert own.base == count_parameters(mlp) and twin.base == count_parameters(cnn)
    assert twin.priced_host.slot_channels == mlp.slot_channels
    for index, name in ((0, "widen_4x"), (2, "mlp"), (1, "norm")):
        slot = Slot(index, mlp.slot_names[index], WIDTHS[index])
        assert own.seed(slot) == twin.seed(slot) == 0
        slot.seed = Seed(name, WIDTHS[index], 0, seed=0, geometry=mlp.slot_geometry(index))
        assert own.seed(slot) == count_parameters(slot.seed)
        geometry = cnn.slot_geometry(index) if slot.seed.widens else None
        assert twin.seed(slot) == blueprint_param_count(name, WIDTHS[index], geometry)
    with pytest.raises(ValueError, match="needs the same"):
        Pricing(mlp, instance_host((8, 16, 32), "cnn"))


def test_v3_registers_and_changes_the_micro_ids_only() -> None:
    assert not same_dynamics(2, 3) and dataset_record("synthcifar").newest_version == 2
    assert "Esper-Micro-v3" in ENV_IDS and "Esper-SynthCIFAR-v3" not in ENV_IDS
    cifar = gym.make("Esper-SynthCIFAR-v2", fidelity="test", max_epochs=2, device="cpu").unwrapped
    assert cifar.engine.norm_groups == 8 and cifar.engine.pricing.priced_as is None
    with pytest.raises(ValueError, match=r"env version 3 does not serve dataset 'synthcifar'.*v\{0, 1, 2\}"):
        EsperEnv(dataset="synthcifar", fidelity="test", version=3)
    v2 = gym.make("Esper-Micro-v2", instances="slow", max_epochs=3, device="cpu").unwrapped
    v3 = gym.make("Esper-Micro-v3", instances="slow", max_epochs=3, device="cpu").unwrapped
    v2.reset(seed=0, options={"instance": 1000050})
    v3.reset(seed=0, options={"instance": 1000050})
    widths = v3.instance.widths
    assert v2.engine.norm_groups == 8 and v3.engine.norm_groups == 1
    assert v2.engine.pricing.base == count_parameters(v2.engine.host)
    with torch.device("meta"):
        assert v3.engine.pricing.base == count_parameters(build_host(instance_host(widths, "cnn"), 10))
    germinate = FactoredAction(Op.GERMINATE, 0, blueprint=BLUEPRINTS.index("widen_4x"), tempo=Tempo.FAST)
    for env in (v2, v3):
        env.step(germinate.to_array())
        assert groups(env.engine.slots[0].seed) == [env.engine.norm_groups]
    snap = v3.snapshot()
    restored = gym.make("Esper-Micro-v3", instances="slow", max_epochs=3, device="cpu").unwrapped
    restored.restore(snap)
    assert groups(restored.engine.slots[0].seed) == [1]
    assert restored.engine.seed_parameters() == v3.engine.seed_parameters()
