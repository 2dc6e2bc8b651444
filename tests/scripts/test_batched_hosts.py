"""benchmarks/batched_hosts.py (the measurement behind issue 14's note) runs and reports every row."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "batched_hosts.py"


def test_batched_hosts_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = [str(SCRIPT), "--hosts", "HostCNN-Narrow", "--n", "2", "--batches", "1", "--cores", "2",
            "--out", str(tmp_path)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(SCRIPT), run_name="__main__")
    rows = json.loads((tmp_path / "batched_hosts.json").read_text())["rows"]
    assert [(r["host"], r["n"]) for r in rows] == [("HostCNN-Narrow", 2)]
    for r in rows:
        assert r["sequential_ms"] > 0 and r["processes_ms"] > 0 and r["batched_ms"] > 0
        assert r["batched_over_processes"] == pytest.approx(r["processes_ms"] / r["batched_ms"])


def test_the_batched_form_computes_what_the_hosts_compute() -> None:
    """The timed computation is the hosts' own: same logits as each host alone (training mode)."""
    import torch

    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import batched_hosts as bh
    finally:
        sys.path.remove(str(SCRIPT.parent))
    hosts = bh.BatchedHosts("HostCNN-Narrow", 3)
    xs, _ = bh._data(3)
    alone = torch.stack([net.train()(x) for net, x in zip(hosts.nets, xs)], 1)
    assert torch.allclose(hosts.logits(xs), alone, atol=1e-5)
