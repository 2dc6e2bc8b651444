"""Crafted online model files: one ``ValueError`` naming the file, before anything large is built
(issue 24, items 4 and 5). The memory-bounded cases run the CLI in a subprocess whose address
space is capped at what the imports took plus 1 GiB."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from esper_agents.online.algorithms import ONLINE_ALGORITHMS, PPO_DEFAULTS, model_class
from esper_agents.online.envs import make_online_env
from esper_agents.online.saved import load_online_model
from esper_env.settings import EnvSettings

SETTINGS = EnvSettings(fidelity="test", max_epochs=4)
ROOT = Path(__file__).resolve().parents[2]


def run_bounded(argv: list[str], headroom_gib: float = 1.0) -> subprocess.CompletedProcess:
    """``esper ARGV`` in a subprocess whose address space is capped after the imports."""
    script = textwrap.dedent(
        f"""
        import resource, sys
        import torch, stable_baselines3, sb3_contrib, d3rlpy  # noqa: F401
        import esper_agents.cli, esper_agents.online.saved, esper_agents.offline.saved  # noqa: F401
        with open("/proc/self/status") as f:
            size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
        limit = size + int({headroom_gib} * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        sys.exit(esper_agents.cli.main({argv!r}))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, env=env, timeout=300
    )


def assert_one_line_refusal(result: subprocess.CompletedProcess, *needles: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.startswith("esper: error:")]
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr, result.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An untrained model zip of each algorithm (small LSTMs), saved by SB3."""
    root = tmp_path_factory.mktemp("models")
    out = {}
    for algo, record in ONLINE_ALGORITHMS.items():
        env = make_online_env(algo, SETTINGS)
        kwargs = dict(record.policy_kwargs)
        if "lstm_hidden_size" in kwargs:
            kwargs["lstm_hidden_size"] = 8
        model = model_class(algo)(
            record.policy, env, seed=0, device="cpu", policy_kwargs=kwargs, **PPO_DEFAULTS
        )
        model.save(root / f"{algo}.zip")
        out[algo] = root / f"{algo}.zip"
        env.close()
    return out


def craft(
    src: Path,
    dst: Path,
    data: Callable[[dict], None] | None = None,
    entries: Callable[[dict[str, bytes]], None] | None = None,
) -> Path:
    with zipfile.ZipFile(src) as z:
        content = {n: z.read(n) for n in z.namelist()}
    if data is not None:
        doc = json.loads(content["data"])
        data(doc)
        content["data"] = json.dumps(doc).encode()
    if entries is not None:
        entries(content)
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as z:
        for name, payload in content.items():
            z.writestr(name, payload)
    return dst


class Touch:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.path,))


CASES: dict[str, tuple[str, Callable | None, Callable | None, str]] = {
    "predict key": ("maskable-ppo", lambda d: d.update(predict=1), None, "'predict'"),
    "_setup_model key": ("maskable-ppo", lambda d: d.update(_setup_model="x"), None, "'_setup_model'"),
    "string policy_kwargs": ("maskable-ppo", lambda d: d.update(policy_kwargs="x"), None, "'policy_kwargs'"),
    "unknown policy kwarg": (
        "recurrent-ppo", lambda d: d["policy_kwargs"].update(features_extractor_class=1), None, "features_extractor",
    ),
    "gamma as a string": ("maskable-ppo", lambda d: d.update(gamma="0.9"), None, "'gamma'"),
    "huge n_steps": ("maskable-ppo", lambda d: d.update(n_steps=10**9), None, "'n_steps'"),
    "net_arch 30000": ("maskable-ppo", lambda d: d["policy_kwargs"].update(net_arch=[30000, 30000]), None, "net_arch"),
    "extra entry": ("maskable-ppo", None, lambda e: e.update({"evil.py": b"print(1)"}), "evil.py"),
    "data not utf-8": ("maskable-ppo", None, lambda e: e.update({"data": b"\xff\xfe{}"}), "UTF-8"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_crafted_json_and_entries_are_refused_by_name(
    models: dict[str, Path], tmp_path: Path, case: str
) -> None:
    algo, data, entries, needle = CASES[case]
    path = craft(models[algo], tmp_path / "crafted.zip", data, entries)
    env = make_online_env(algo, SETTINGS)
    try:
        with pytest.raises(ValueError, match=str(path)) as err:
            load_online_model(path, env, device="cpu")
    finally:
        env.close()
    assert needle in str(err.value)


@pytest.mark.parametrize("entry", ["policy.pth", "policy.optimizer.pth", "pytorch_variables.pth"])
def test_a_pickle_in_any_pth_entry_is_refused_and_never_run(
    models: dict[str, Path], tmp_path: Path, entry: str
) -> None:
    marker = tmp_path / "ran"
    path = craft(
        models["maskable-ppo"],
        tmp_path / "pickle.zip",
        None,
        lambda e: e.update({entry: pickle.dumps(Touch(marker))}),
    )
    env = make_online_env("maskable-ppo", SETTINGS)
    try:
        with pytest.raises(ValueError, match="not a tensors-only weights file"):
            load_online_model(path, env, device="cpu")
    finally:
        env.close()
    assert not marker.exists()


def test_weights_for_another_network_are_refused(models: dict[str, Path], tmp_path: Path) -> None:
    with zipfile.ZipFile(models["recurrent-ppo"]) as z:
        other = z.read("policy.pth")
    path = craft(
        models["maskable-ppo"], tmp_path / "other.zip", None, lambda e: e.update({"policy.pth": other})
    )
    env = make_online_env("maskable-ppo", SETTINGS)
    try:
        with pytest.raises(ValueError, match="weights do not fit the maskable-ppo network"):
            load_online_model(path, env, device="cpu")
    finally:
        env.close()


def test_a_device_or_fifo_is_refused_without_reading_it(tmp_path: Path) -> None:
    zero = tmp_path / "zero.zip"
    zero.symlink_to("/dev/zero")
    fifo = tmp_path / "run"
    fifo.mkdir()
    os.mkfifo(fifo / "model.zip")
    env = make_online_env("maskable-ppo", SETTINGS)
    try:
        for path in (zero, fifo):
            with pytest.raises(ValueError, match="not a regular file"):
                load_online_model(path, env, device="cpu")
    finally:
        env.close()


def eval_args(path: Path) -> list[str]:
    return ["evaluate", "--policy", str(path), "--fidelity", "test", "--max-epochs", "4", "--episodes", "1"]


def test_a_huge_lstm_is_refused_in_bounded_memory(models: dict[str, Path], tmp_path: Path) -> None:
    path = craft(
        models["recurrent-ppo"],
        tmp_path / "lstm.zip",
        lambda d: d["policy_kwargs"].update(lstm_hidden_size=40000),
    )
    assert_one_line_refusal(run_bounded(eval_args(path)), "lstm_hidden_size", "40000")


def test_a_huge_net_arch_is_refused_in_bounded_memory(models: dict[str, Path], tmp_path: Path) -> None:
    path = craft(
        models["maskable-ppo"],
        tmp_path / "arch.zip",
        lambda d: d["policy_kwargs"].update(net_arch=[30000, 30000]),
    )
    assert_one_line_refusal(run_bounded(eval_args(path)), "net_arch")


def test_a_zip_bomb_is_refused_from_its_declared_sizes(models: dict[str, Path], tmp_path: Path) -> None:
    """A small zip whose ``data`` entry inflates to 1.5 GiB, past the memory cap."""
    path = tmp_path / "bomb.zip"
    with (
        zipfile.ZipFile(models["maskable-ppo"]) as src,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as dst,
    ):
        for name in src.namelist():
            if name != "data":
                dst.writestr(name, src.read(name))
        with dst.open("data", "w", force_zip64=True) as f:
            chunk = b" " * (64 << 20)
            for _ in range(24):
                f.write(chunk)
    assert path.stat().st_size < 16 << 20
    assert_one_line_refusal(run_bounded(eval_args(path)), str(path), "'data'")
