"""Every committed benchmark result carries the one provenance header, for the newest env version's
dynamics: a result measured on a version that differs from the newest only in the observation (v1
against v2, :func:`esper_env.versions.same_dynamics`) stands; one of older dynamics (v0) does not."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import esper_env
from esper_env.versions import same_dynamics

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
HEADER = {"git_commit", "dirty", "env_id", "env_version", "torch", "torch_threads", "command"}


def newest_version(env_id: str) -> int:
    """The newest registered version of ``env_id``'s family (``Esper-SynthCIFAR-v0`` -> 2)."""
    family = env_id.rpartition("-v")[0]
    versions = [int(e.rpartition("-v")[2]) for e in esper_env.ENV_IDS if e.rpartition("-v")[0] == family]
    assert versions, f"{env_id!r} names no registered env; registered: {', '.join(esper_env.ENV_IDS)}"
    return max(versions)


def committed_results() -> list[Path]:
    """The result JSONs under benchmarks/results/ (not the git-ignored results/local/)."""
    return sorted(p for p in RESULTS.rglob("*.json") if "local" not in p.relative_to(RESULTS).parts)


def test_there_are_committed_results() -> None:
    assert len(committed_results()) >= 5


@pytest.mark.parametrize("path", committed_results(), ids=lambda p: str(p.relative_to(RESULTS)))
def test_committed_result_has_a_provenance_header_for_the_current_env(path: Path) -> None:
    data = json.loads(path.read_text())
    assert isinstance(data, dict) and "provenance" in data, f"{path.name} has no provenance header"
    header = data["provenance"]
    assert HEADER <= set(header), f"{path.name}: the header lacks {sorted(HEADER - set(header))}"
    assert re.fullmatch(r"[0-9a-f]{40}", header["git_commit"]), header["git_commit"]
    assert header["dirty"] in (True, False, None)
    assert header["command"].startswith(("python benchmarks/", "esper "))
    env_id = header["env_id"]
    current = newest_version(env_id)
    version = header["env_version"]
    assert re.fullmatch(r"v\d+", version) and env_id.endswith(f"-{version}"), (env_id, version)
    assert same_dynamics(int(version[1:]), current), (
        f"{path.name} was measured on {env_id} ({version}), whose dynamics are not those of the current "
        f"version v{current}: re-run it ({header['command']})"
    )


def test_results_of_older_dynamics_are_refused() -> None:
    """The rule above: v1's results serve v2 (only the observation changed); v0's do not."""
    assert (
        same_dynamics(1, newest_version("Esper-SynthCIFAR-v1")) and newest_version("Esper-SynthCIFAR-v1") == 2
    )
    assert not same_dynamics(0, newest_version("Esper-SynthCIFAR-v0"))


def test_provenance_names_the_commit_the_env_and_the_command(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from _common import ENV_ID, current_env_id, env_version, provenance

    header = provenance(ROOT / "benchmarks" / "growth_headroom.py", ["--seeds", "2"], ENV_ID, 1)
    assert HEADER == set(header)
    assert header["command"] == "python benchmarks/growth_headroom.py --seeds 2"
    assert header["env_version"] == f"v{newest_version(ENV_ID)}" and header["torch_threads"] == 1
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    if head.returncode == 0:  # a git checkout
        assert header["git_commit"] == head.stdout.strip() and isinstance(header["dirty"], bool)
    assert current_env_id(ENV_ID) == ENV_ID and env_version("Esper-CIFAR10-v12") == 12
    with pytest.raises(ValueError, match="Esper-Nope-v1"):
        current_env_id("Esper-Nope-v1")
    with pytest.raises(ValueError, match="-v<N>"):
        env_version("Esper-SynthCIFAR")
    assert sys.modules["_common"].RESULTS == RESULTS
