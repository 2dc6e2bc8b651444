"""Crafted saved offline agents: bounded reads and sizes checked before anything is built (issue 24,
item 4); ``esper evaluate --policy`` takes a train-offline run directory (item 5)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from esper_agents.offline.commands import resolve_policy
from esper_agents.offline.saved import AGENT_CONFIG_TYPES, AgentFileError, load_agent

ROOT = Path(__file__).resolve().parents[2]


def agent_doc(observation_shape: list, hidden_units: list) -> dict:
    return {
        "format": "esper-agent",
        "format_version": 1,
        "config": {
            "observation_shape": observation_shape,
            "action_size": 64,
            "config": {
                "type": AGENT_CONFIG_TYPES[0],
                "params": {
                    "encoder_factory": {
                        "type": "esper_masked_vector",
                        "params": {"hidden_units": hidden_units},
                    }
                },
            },
        },
        "weights": {"file": "weights.pt", "sha256": "0" * 64},
    }


def write_agent(root: Path, doc: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "agent.json").write_text(json.dumps(doc))
    return root


def load_bounded(path: Path) -> subprocess.CompletedProcess:
    """``load_agent(path)`` in a subprocess capped at the imports' address space plus 1 GiB."""
    script = textwrap.dedent(
        f"""
        import resource, sys
        import torch, d3rlpy  # noqa: F401
        from esper_agents.offline.saved import load_agent
        with open("/proc/self/status") as f:
            size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (size + 2**30, size + 2**30))
        try:
            load_agent({str(path)!r})
        except ValueError as err:
            print("refused:", err, file=sys.stderr)
            sys.exit(2)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, env=env, timeout=300
    )


@pytest.mark.parametrize(
    ("shape", "hidden", "named"),
    [([10**9], [256, 256], "observation_shape"), ([201], [200_000, 200_000], "hidden_units")],
)
def test_absurd_sizes_are_refused_before_building(
    tmp_path: Path, shape: list, hidden: list, named: str
) -> None:
    root = write_agent(tmp_path / "agent", agent_doc(shape, hidden))
    with pytest.raises(AgentFileError, match=named):
        load_agent(root)
    result = load_bounded(root)
    assert result.returncode == 2 and "refused:" in result.stderr and named in result.stderr, result.stderr[
        -2000:
    ]
    assert "MemoryError" not in result.stderr and "Traceback" not in result.stderr


def test_devices_and_fifos_are_not_read(tmp_path: Path) -> None:
    zero = tmp_path / "zero"
    zero.mkdir()
    (zero / "agent.json").symlink_to("/dev/zero")
    fifo = tmp_path / "fifo"
    fifo.mkdir()
    os.mkfifo(fifo / "agent.json")
    for root in (zero, fifo):
        with pytest.raises(AgentFileError, match="not a regular file"):
            load_agent(root)
    weights = write_agent(tmp_path / "weights", agent_doc([201], [256, 256]))
    (weights / "weights.pt").symlink_to("/dev/zero")
    with pytest.raises(AgentFileError, match="weights.pt: is not a regular file|does not fit|cannot build"):
        load_agent(weights)


def test_evaluate_takes_a_train_offline_run_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "cql"
    write_agent(run / "agent", agent_doc([201], [256, 256]))
    monkeypatch.chdir(tmp_path)
    assert resolve_policy("cql") == ("agent", os.path.join("cql", "agent"))
    assert resolve_policy(str(run / "agent")) == ("agent", str(run / "agent"))
