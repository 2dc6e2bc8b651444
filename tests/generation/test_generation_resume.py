"""Generation under failure: SIGKILL mid-run then resume; the process-pool and Ray backends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from esper_agents.generation.orchestrator import generate
from esper_agents.generation.packs import open_pack, read_plan
from esper_agents.generation.planning import plan_uniform
from esper_agents.generation.spec import load_spec

SPEC = """
name = "resume"
[env]
id = "Esper-SynthCIFAR-v2"
fidelity = "test"
max_epochs = 2
[matrix]
policies = ["baseline", "random"]
configs = ["baseline"]
epsilons = [0.1, 0.2]
episodes_per_cell = 4
"""


def _children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _cli(spec: Path, out: Path, workers: int) -> list[str]:
    return [sys.executable, "-m", "esper_agents.cli", "generate", "--spec", str(spec), "--out", str(out),
            "--workers", str(workers), "--no-progress"]  # fmt: skip


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow, id="process-pool")])
def test_sigkill_mid_run_then_resume(tmp_path: Path, workers: int) -> None:
    """Kill ``esper generate`` (in-process, or a spawn pool whose workers must die with it) after its
    first episode, rerun the same command, and find exactly the plan: nothing lost or duplicated."""
    spec = tmp_path / "resume.toml"
    spec.write_text(SPEC)
    out = tmp_path / "pack"
    planned = {t.episode_id for t in plan_uniform(load_spec(spec))}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        _cli(spec, out, workers), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 180
        while not list(out.glob("episodes/*.json")):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "no episode written in time"
            time.sleep(0.02)
        children = _children(proc.pid)
        assert len(children) >= (workers if workers > 1 else 0)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    written = {p.stem for p in (out / "episodes").glob("*.json")}
    assert 1 <= len(written) < len(planned), "the kill must land mid-run"
    # the pool's workers die with their parent (PR_SET_PDEATHSIG), nothing computes for nobody
    deadline = time.monotonic() + 15
    while any(_alive(w) for w in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in children)

    done = subprocess.run(
        _cli(spec, out, 1), check=False, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert f"resuming {out}: {len(written)} of {len(planned)}" in done.stderr
    assert "transitions/min per core" in done.stdout

    pack = open_pack(out)  # every checksum verified
    assert sorted(pack.episode_ids) == sorted(planned)
    hashes = [pack.metadata(i).trajectory_hash for i in pack.episode_ids]
    assert len(set(hashes)) == len(hashes)
    leftovers = [
        p.name
        for d in (out, out / "episodes", out / "plan")
        for p in d.iterdir()
        if p.name.startswith(".tmp")
    ]
    assert leftovers == []
    assert {p.stem for p in (out / "episodes").glob("*.npz")} == set(planned)
    assert len(read_plan(out)) == 1


@pytest.mark.slow
def test_ray_backend(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.replace("episodes_per_cell = 4", "episodes_per_cell = 2"))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = generate(
            load_spec(spec), tmp_path / "pack", workers=2, backend="ray", progress=False, log=lambda m: None
        )
    finally:
        ray.shutdown()
    assert result.backend == "ray" and result.new_episodes == result.planned == 4
    pack = open_pack(tmp_path / "pack")
    assert sorted(pack.episode_ids) == sorted(t.episode_id for t in plan_uniform(load_spec(spec)))
