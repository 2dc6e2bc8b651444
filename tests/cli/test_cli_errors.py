"""Every bad input the user can give the ``esper`` command ends in one clear line and exit 2."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from esper_agents import cli

ONLINE = ["train-online", "--algo", "maskable-ppo", "--out", "O"]

# argparse refuses these values itself: usage, then "esper CMD: error: argument ...", exit 2.
ARGPARSE_CASES = [
    (["train-offline", "--algo", "bc", "--pack", "P", "--out", "O", "--steps", "0"], "--steps: must be a positive integer"),
    (["train-offline", "--algo", "bc", "--pack", "P", "--out", "O", "--steps", "-5"], "--steps: must be a positive"),
    (["train-offline", "--algo", "bc", "--pack", "P", "--out", "O", "--steps", "4", "--steps-per-epoch", "0"],
     "--steps-per-epoch: must be a positive integer"),
    (["train-offline", "--algo", "bc", "--pack", "P", "--out", "O", "--steps", "4", "--fqe-steps", "-1"],
     "--fqe-steps: must be a non-negative integer"),
    (["train-offline", "--algo", "rwbc", "--pack", "P", "--out", "O", "--steps", "4", "--rwbc-quantile", "2"],
     "--rwbc-quantile: must be a number in \\[0, 1\\]"),
    (["evaluate", "--policy", "baseline", "--episodes", "0"], "--episodes: must be a positive integer"),
    (["evaluate", "--policy", "baseline", "--episodes", "-1"], "--episodes: must be a positive integer"),
    (["episode", "--max-epochs", "0"], "--max-epochs: must be a positive integer"),
    (["evaluate", "--policy", "baseline", "--max-epochs", "-3"], "--max-epochs: must be a positive integer"),
    (["health", "--pack", "P", "--clusters", "0"], "--clusters: must be a positive integer"),
    (["health", "--pack", "P", "--clusters", "-3"], "--clusters: must be a positive integer"),
    (["imitate-classic", "--out", "O", "--episodes", "0"], "--episodes: must be a positive integer"),
    (["generate", "--spec", "S", "--out", "O", "--workers", "0"], "--workers: must be a positive integer"),
    (["validate", "--pack", "P", "--episodes", "0"], "--episodes: must be a positive integer"),
    ([*ONLINE, "--steps", "0"], "--steps: must be a positive integer"),
    ([*ONLINE, "--steps", "many"], "--steps: invalid positive integer value: 'many'"),
    ([*ONLINE, "--steps", "10", "--n-envs", "0"], "--n-envs: must be a positive integer"),
    ([*ONLINE, "--steps", "10", "--checkpoint-every", "-1"], "--checkpoint-every: must be a positive integer"),
    (["bench", "--suite", "smoke", "--out", "O", "--workers", "0"], "--workers: must be a positive integer"),
    (["episode", "--num-levels", "-1"], "--num-levels: must be an integer in \\[0, 2147483647\\), got '-1'"),
    (["evaluate", "--policy", "baseline", "--start-level", "2147483647"], "--start-level: must be an integer in"),
    ([*ONLINE, "--steps", "10", "--start-level", "x"], "--start-level: invalid instance index value: 'x'"),
    (["bench", "--suite", "smoke", "--out", "O", "--offline-steps", "0"], "--offline-steps: must be a positive integer, got '0'"),
    (["bench", "--suite", "smoke", "--out", "O", "--online-steps", "-3"], "--online-steps: must be a positive integer, got '-3'"),
]  # fmt: skip

# A name no registry holds: argparse's "invalid choice: 'nope' (choose from ...)".
TRAIN = ["train-offline", "--pack", "P", "--out", "O", "--steps", "4"]
BAD_NAMES = [
    (["episode", "--env", "Nope-v0"], "--env", "Nope-v0", "Esper-SynthCIFAR-v2"),
    (["evaluate", "--policy", "baseline", "--env", "Nope-v0"], "--env", "Nope-v0", "Esper-SynthCIFAR-v2"),
    (["episode", "--config", "nope"], "--config", "nope", "impaired"),
    (["evaluate", "--policy", "baseline", "--config", "nope"], "--config", "nope", "baseline"),
    (["imitate-classic", "--out", "O", "--config", "nope"], "--config", "nope", "baseline"),
    (["episode", "--fidelity", "nope"], "--fidelity", "nope", "tiny"),
    (["evaluate", "--policy", "baseline", "--fidelity", "nope"], "--fidelity", "nope", "test"),
    ([*TRAIN, "--algo", "nope"], "--algo", "nope", "rwbc"),
    ([*TRAIN, "--algo", "bc", "--reward-mode", "nope"], "--reward-mode", "nope", "contribution"),
    (["export", "--pack", "P", "--out", "O", "--format", "d3rlpy", "--reward-mode", "nope"], "--reward-mode", "nope", "sparse"),
    (["generate", "--spec", "S", "--out", "O", "--backend", "nope"], "--backend", "nope", "ray"),
    (["export", "--pack", "P", "--out", "O", "--format", "nope"], "--format", "nope", "minari"),
    (["imitate-classic", "--out", "O", "--policy", "nope"], "--policy", "nope", "baseline"),
    (["episode", "--device", "tpu"], "--device", "tpu", "cuda"),
    ([*ONLINE[:2], "dqn", *ONLINE[3:], "--steps", "5"], "--algo", "dqn", "masked-recurrent-ppo"),
    ([*ONLINE, "--steps", "5", "--env", "Nope-v0"], "--env", "Nope-v0", "Esper-SynthCIFAR-v2"),
    ([*ONLINE, "--steps", "5", "--config", "nope"], "--config", "nope", "impaired"),
    (["bench", "--suite", "huge", "--out", "O"], "--suite", "huge", "tiny"),
    (["bench", "--suite", "smoke", "--out", "O", "--agents", "dqn"], "--agents", "dqn", "masked-recurrent-ppo"),
    (["bench", "--suite", "smoke", "--out", "O", "--backend", "nope"], "--backend", "nope", "ray"),
    # --reward: the env's reward mode, on every subcommand that runs the env
    (["episode", "--reward", "dense"], "--reward", "dense", "sparse"),
    (["evaluate", "--policy", "baseline", "--reward", "dense"], "--reward", "dense", "contribution"),
    ([*ONLINE, "--steps", "5", "--reward", "dense"], "--reward", "dense", "shaped"),
    (["bench", "--suite", "smoke", "--out", "O", "--reward", "dense"], "--reward", "dense", "sparse"),
    (["imitate-classic", "--out", "O", "--reward", "dense"], "--reward", "dense", "shaped"),
    (["episode", "--instances", "nope"], "--instances", "nope", "bottlenecks"),
    ([*ONLINE, "--steps", "5", "--instances", "nope"], "--instances", "nope", "bottlenecks"),
    (["generate", "--spec", "S", "--out", "O", "--reward", "dense"], "--reward", "dense", "contribution"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "flag", "bad", "valid"), BAD_NAMES)
def test_argparse_refuses_unknown_names(argv: list[str], flag: str, bad: str, valid: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        last.startswith(f"esper {argv[0]}: error: argument {flag}") and f"invalid choice: {bad!r}" in last
    ), last
    assert repr(valid) in last, last
    if flag == "--reward":  # one line naming every valid mode
        assert all(repr(mode) in last for mode in ("shaped", "sparse", "contribution")), last


@pytest.mark.parametrize(("argv", "message"), ARGPARSE_CASES)
def test_argparse_refuses_bad_numbers(argv: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.match(rf"esper {argv[0]}: error: argument {message}", last), last


def library_cases(tmp_path: Path, tiny_pack: Path) -> list[tuple[list[str], str]]:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    missing = str(tmp_path / "missing")
    train = ["train-offline", "--algo", "bc", "--steps", "2"]
    not_a_model = tmp_path / "model.zip"
    not_a_model.write_text("x")
    return [
        (["health", "--pack", str(tiny_pack), "--clusters", "100000", "--out", str(tmp_path / "h")], "n_clusters must be in 1.."),
        (["health", "--pack", missing], "not a directory"),
        (["health", "--pack", str(tiny_pack), "--out", str(a_file)], "is a file"),
        (["evaluate", "--policy", "baseline", "--pack", missing], "--pack needs a saved agent"),
        (["evaluate", "--policy", "baseline", "--out", str(tmp_path)], "is a directory"),
        ([*train, "--pack", missing, "--out", str(tmp_path / "t")], "not a directory"),
        ([*train, "--pack", str(tiny_pack), "--out", str(a_file)], "is a file"),
        (["export", "--pack", missing, "--format", "d3rlpy", "--out", str(tmp_path / "x.h5")], "not a directory"),
        (["validate", "--pack", missing], "not a directory"),
        (["generate", "--spec", missing, "--out", str(tmp_path / "g")], "spec file not found"),
        ([*ONLINE[:4], str(a_file), "--steps", "5"], "is a file"),
        (["evaluate", "--policy", str(not_a_model)], "not an SB3 model zip"),
        (["bench", "--suite", "smoke", "--out", str(a_file)], "exists and is not a directory"),
    ]  # fmt: skip


def test_library_errors_are_one_line_and_exit_2(tmp_path: Path, tiny_pack: Path, capsys) -> None:
    for argv, message in library_cases(tmp_path, tiny_pack):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("esper: error: ") and message in lines[0], (argv, err)
        assert "Traceback" not in err


def test_the_esper_command_serves_the_current_env_ids_only(capsys: pytest.CaptureFixture[str]) -> None:
    from esper_agents.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["episode", "--env", "Esper-SynthCIFAR-v0", "--fidelity", "test", "--max-epochs", "1"])
    assert exit_info.value.code == 2
    assert "Esper-SynthCIFAR-v0" in capsys.readouterr().err
