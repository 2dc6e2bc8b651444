"""The scripts in examples/ run end to end at the smallest settings and print a final accuracy in [0, 1].

The PPO scripts run in this process (runpy) at the tests' NANO fidelity; the CQL script, which imports
d3rlpy and so the old ``gym`` package, runs in a fresh interpreter, where its import banner would show.
"""

from __future__ import annotations

import contextlib
import io
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SMALL = ["--fidelity", "test", "--max-epochs", "3", "--config", "impaired"]
#: In this process only: "nano" is registered by the nano_fidelity fixture.
NANO_SMALL = ["--fidelity", "nano", "--max-epochs", "3", "--config", "impaired"]
#: (script, its smallest arguments): one PPO rollout of 50 env steps; 20 CQL gradient steps.
CASES = [
    pytest.param("maskable_ppo_compact.py", [*NANO_SMALL, "--steps", "50", "--n-envs", "1"], id="maskable-ppo"),
    pytest.param("recurrent_ppo.py", [*NANO_SMALL, "--steps", "50", "--n-envs", "1"], id="recurrent-ppo"),
    pytest.param("d3rlpy_cql_pack.py", [*SMALL, "--steps", "20", "--out", "{tmp}"], id="cql"),
    # Each case takes 15-25 s on two cores; this variant of the CQL script is left to `pytest -m slow`
    # so that the default suite spends about a minute on the examples.
    pytest.param("d3rlpy_cql_pack.py", [*SMALL, "--steps", "20", "--out", "{tmp}", "--masked"],
                 id="cql-masked", marks=pytest.mark.slow),
]  # fmt: skip


def _run_in_process(script: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python script args`` in this process (runpy, ``__main__``), its output captured."""
    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    with (
        pytest.MonkeyPatch.context() as patch,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        patch.chdir(cwd)
        patch.setattr(sys, "argv", [str(script), *args])
        try:
            runpy.run_path(str(script), run_name="__main__")
        except SystemExit as exit_:
            code = exit_.code
    returncode = code if isinstance(code, int) else (0 if code is None else 1)
    return subprocess.CompletedProcess([str(script), *args], returncode, out.getvalue(), err.getvalue())


FINAL = re.compile(r"^final_val_accuracy=(\S+) test_accuracy=(\S+)$", re.MULTILINE)


def test_every_example_is_tested() -> None:
    assert {case.values[0] for case in CASES} == {p.name for p in EXAMPLES.glob("*.py")}


@pytest.mark.parametrize(("script", "args"), CASES)
def test_example_runs_and_prints_final_accuracy(
    script: str, args: list[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    args = [a.replace("{tmp}", str(tmp_path / "out")) for a in args]
    if "nano" in args:
        request.getfixturevalue("nano_fidelity")
        done = _run_in_process(EXAMPLES / script, args, tmp_path)
    else:
        done = subprocess.run(
            [sys.executable, str(EXAMPLES / script), *args],
            check=False, cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    found = FINAL.findall(done.stdout)
    assert len(found) == 1, f"{script} printed no final accuracy line:\n{done.stdout}"
    val, test = (float(x) for x in found[0])
    assert 0.0 <= val <= 1.0 and 0.0 <= test <= 1.0
    assert "Gym has been unmaintained" not in done.stderr  # esper_agents hides the old gym's banner
    if script == "d3rlpy_cql_pack.py":
        assert (tmp_path / "out" / "pack" / "pack.json").is_file()
