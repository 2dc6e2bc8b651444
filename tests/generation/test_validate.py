"""``esper validate`` replays a pack's episodes and confirms them bit for bit."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from esper_agents import cli
from esper_agents.generation.packs import decode_arrays, encode_arrays, with_checksum


def test_validate_replays_every_episode_identically_whatever_the_callers_threads(
    tiny_pack: Path, capsys
) -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # the replay runs under the pack's recorded thread count, not this one
        assert cli.main(["validate", "--pack", str(tiny_pack)]) == 0
    finally:
        torch.set_num_threads(before)
    out = capsys.readouterr().out
    assert out.count("identical  ") == 4 and "4 of 4 replayed episodes identical (torch threads 1" in out
    assert cli.main(["validate", "--pack", str(tiny_pack), "--episodes", "1"]) == 0
    assert "1 of 1 replayed episodes identical" in capsys.readouterr().out


def test_validate_reports_a_changed_observation(tiny_pack: Path, tmp_path: Path, capsys) -> None:
    pack = tmp_path / "pack"
    shutil.copytree(tiny_pack, pack)
    jp = min((pack / "episodes").glob("*.json"))
    npz = jp.with_suffix(".npz")
    arrays = decode_arrays(npz.read_bytes(), npz)
    arrays["observations"][2, 2] += np.float32(1e-3)
    npz.write_bytes(encode_arrays(arrays))
    doc = json.loads(jp.read_text())
    doc["arrays"]["sha256"] = hashlib.sha256(npz.read_bytes()).hexdigest()
    jp.write_text(json.dumps(with_checksum(doc)))
    assert cli.main(["validate", "--pack", str(pack), "--episodes", "1"]) == 1
    out = capsys.readouterr().out
    assert f"DIFFERENT  {jp.stem}: observations[2]: max |difference| 0.001" in out and "0 of 1" in out
