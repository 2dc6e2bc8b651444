"""A plain d3rlpy load of an exported pack gets the true action size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from d3rlpy.dataset import InfiniteBuffer, ReplayBuffer

from esper_agents import cli
from esper_agents.generation.packs import open_pack
from esper_env.wrappers import CompactActions


def test_a_plain_d3rlpy_load_gets_the_true_action_size(tiny_pack: Path, tmp_path: Path, capsys) -> None:
    pack = open_pack(tiny_pack)
    n = pack.n_actions
    assert n == CompactActions(pack.settings.make()).action_space.n
    logged = np.concatenate([r.arrays["actions"] for r in pack])
    assert logged.max() < n - 1  # the last action never occurs: d3rlpy's guess would be short
    out = tmp_path / "pack.h5"
    assert cli.main(["export", "--pack", str(tiny_pack), "--format", "d3rlpy", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["load"].startswith("ReplayBuffer.load(")
    with open(out, "rb") as f:
        buffer = ReplayBuffer.load(f, InfiniteBuffer())
    assert buffer.dataset_info.action_size == n
    sampled = np.concatenate(
        [np.asarray(ep.actions).reshape(-1)[: ep.transition_count] for ep in buffer.episodes]
    )
    np.testing.assert_array_equal(np.sort(sampled), np.sort(logged))  # the padding row is never a transition
