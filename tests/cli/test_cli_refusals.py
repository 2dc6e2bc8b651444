"""CLI refusals that are one line and exit 2 (issue 24, items 4 and 5): ``--device cuda`` without
CUDA, ``train-online --out`` into another kind of run, an absurd generation plan (in bounded memory)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from esper_agents.cli import main

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "datasets" / "smoke.toml"


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("esper: error:"), err
    return lines[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
@pytest.mark.parametrize(
    "argv",
    [
        ["episode", "--device", "cuda", "--fidelity", "test", "--max-epochs", "2"],
        [
            "train-online",
            "--algo",
            "maskable-ppo",
            "--device",
            "cuda",
            "--steps",
            "10",
            "--out",
            "never-written",
        ],
    ],
)
def test_device_cuda_without_cuda_is_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "no CUDA device is available" in one_error_line(capsys)
    assert not Path("never-written").exists()


@pytest.mark.parametrize("holds", ["agent.json", "agent/agent.json", "pack.json"])
def test_train_online_refuses_an_out_holding_another_kind_of_run(
    tmp_path: Path, holds: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / holds).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / holds).write_text("{}")
    argv = [
        "train-online",
        "--algo",
        "maskable-ppo",
        "--out",
        str(tmp_path),
        "--steps",
        "10",
        "--fidelity",
        "test",
        "--device",
        "cpu",
    ]
    assert main(argv) == 2
    assert "pass another --out" in one_error_line(capsys)
    assert not (tmp_path / "run.json").exists()


def test_an_absurd_plan_is_refused_with_its_size_in_bounded_memory(tmp_path: Path) -> None:
    spec = tmp_path / "huge.toml"
    spec.write_text(SMOKE.read_text().replace("episodes_per_cell = 2", "episodes_per_cell = 1000000000000"))
    script = textwrap.dedent(
        f"""
        import resource, sys
        import esper_agents.cli, esper_agents.generation.spec, esper_agents.generation.planning  # noqa: F401
        with open("/proc/self/status") as f:
            size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (size + 2**30, size + 2**30))
        sys.exit(esper_agents.cli.main(["generate", "--spec", {str(spec)!r}, "--out", {str(tmp_path / "p")!r}, "--dry-run"]))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, env=env, timeout=300
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert "12,000,000,000,000" in lines[0] and "episodes_per_cell" in lines[0]
