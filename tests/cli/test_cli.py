"""The ``esper`` parser's conventions: ``--version``, help on every flag, names from the library."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from importlib.metadata import version

import pytest

from esper_agents import cli, cli_options
from esper_env.settings import DEVICES, EnvSettings


def walk(parser: argparse.ArgumentParser, name: str = "esper"):
    """Every (name, parser) pair under ``parser``, itself first."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from walk(sub, f"{name} {sub_name}")


def test_version_prints_the_distribution_version(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"esper {version('esper')}"


def test_every_subcommand_has_a_description_and_every_flag_help() -> None:
    parsers = list(walk(cli.build_parser()))
    assert len(parsers) == 12  # esper and its 11 subcommands
    for name, parser in parsers:
        assert parser.description and parser.description.strip(), name
        for action in parser._actions:
            assert action.help and action.help.strip(), (name, action.dest)
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    assert choice.help and choice.help.strip(), (name, choice.dest)


@pytest.mark.parametrize("command", ["episode", "health", "train-offline", "evaluate", "imitate-classic",
                                     "generate", "export", "validate", "download"])  # fmt: skip
def test_help_formats_and_shows_defaults(command: str, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # one line per flag: no wrap inside a default
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: esper {command}")
    if command in ("episode", "evaluate", "imitate-classic"):
        assert "(default: Esper-SynthCIFAR-v2)" in text and "(default: baseline)" in text


def test_choices_are_the_library_registries() -> None:
    import esper_env
    import esper_env.datasets
    from esper_agents.generation.backends import BACKENDS
    from esper_agents.generation.exports import EXPORT_FORMATS
    from esper_agents.offline.train import ALGORITHMS
    from esper_agents.policies import POLICY_IDS
    from esper_env.configs import ENVIRONMENT_CONFIGS, FIDELITIES

    assert tuple(cli_options.ENV_IDS) == esper_env.datasets.CURRENT_ENV_IDS
    assert set(cli_options.ENV_IDS) < set(esper_env.ENV_IDS)
    assert tuple(cli_options.PRESETS) == tuple(ENVIRONMENT_CONFIGS)
    assert tuple(cli_options.FIDELITIES) == tuple(FIDELITIES)
    assert tuple(cli_options.REWARD_MODES) == esper_env.REWARD_MODES
    assert tuple(cli_options.ALGORITHMS) == ALGORITHMS
    assert tuple(cli_options.BACKENDS) == tuple(BACKENDS)
    assert tuple(cli_options.EXPORT_FORMATS) == EXPORT_FORMATS
    assert tuple(cli_options.POLICY_IDS) == tuple(POLICY_IDS)
    assert tuple(cli_options.DOWNLOADABLE) == ("cifar10", "cifar100")


def test_top_level_help_imports_neither_torch_nor_d3rlpy() -> None:
    code = "import sys; from esper_agents import cli; cli.build_parser().format_help(); " \
           "print('torch' in sys.modules, 'd3rlpy' in sys.modules)"  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_d3rlpy_commands_print_no_gym_banner() -> None:
    code = "import sys; import esper_agents; import d3rlpy"
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stderr
    assert "Gym has been unmaintained" not in err


def test_device_reaches_the_env_and_the_learner() -> None:
    parser = cli.build_parser()
    episode = parser.parse_args(["episode", "--device", "cpu"])
    assert cli_options.env_settings(episode) == EnvSettings(max_epochs=25, config="baseline", device="cpu")
    assert cli_options.env_settings(episode).resolved_fidelity == "tiny"  # the default id's own fidelity
    micro = parser.parse_args(["episode", "--env", "Esper-Micro-v3"])
    assert cli_options.env_settings(micro).resolved_fidelity == "micro"  # not overridden by a CLI default
    assert cli_options.env_settings(parser.parse_args(["episode"])).device == "auto"  # the env's own default
    assert cli_options.DEFAULT_ENV == EnvSettings().env_id and cli_options.DEVICES == DEVICES
    train = parser.parse_args(["train-offline", "--algo", "bc", "--pack", "P", "--out", "O", "--steps", "1"])
    assert train.device == "cpu" and cli_options.torch_device(train.device) == "cpu:0"
    assert cli_options.torch_device("cuda") == "cuda:0"


def test_every_subcommand_that_runs_the_env_takes_reward() -> None:
    """``--reward`` is the env's reward mode; ``--reward-mode`` stays the pack relabeling."""
    parser = cli.build_parser()
    for argv in (["episode"], ["evaluate", "--policy", "baseline"], ["imitate-classic", "--out", "O"],
                 ["train-online", "--algo", "maskable-ppo", "--out", "O", "--steps", "1"]):  # fmt: skip
        args = parser.parse_args([*argv, "--reward", "sparse"])
        assert cli_options.env_settings(args).reward == "sparse", argv
        assert cli_options.env_settings(parser.parse_args(argv)).reward == "shaped", argv
    assert parser.parse_args(
        ["bench", "--suite", "smoke", "--out", "O", "--reward", "contribution"]
    ).reward == ("contribution")
    assert parser.parse_args(["bench", "--suite", "smoke", "--out", "O"]).reward is None  # the suite's
    assert (
        parser.parse_args(["generate", "--spec", "S", "--out", "O", "--reward", "sparse"]).reward == "sparse"
    )


def _episode_summary(capsys: pytest.CaptureFixture, *flags: str) -> dict:
    argv = ["episode", "--fidelity", "test", "--max-epochs", "4", "--seed", "3", *flags]
    assert cli.main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_episode_reward_changes_the_reward_the_env_returns(capsys: pytest.CaptureFixture) -> None:
    shaped = _episode_summary(capsys)
    sparse = _episode_summary(capsys, "--reward", "sparse")
    again = _episode_summary(capsys, "--reward", "shaped")
    assert shaped == again  # the same episode: the seed fixes it
    assert sparse["final_val_accuracy"] == shaped["final_val_accuracy"]  # the reward changes no dynamics
    assert sparse["episode_return"] != shaped["episode_return"]


def test_the_instance_flags_reach_the_settings_of_every_subcommand_that_runs_the_env() -> None:
    from esper_env.instances import DISTRIBUTIONS, HELDOUT_SPLIT, MAX_LEVELS

    assert tuple(cli_options.DISTRIBUTIONS) == tuple(DISTRIBUTIONS) and cli_options.MAX_LEVELS == MAX_LEVELS
    held = ["--start-level", str(HELDOUT_SPLIT.start_level), "--num-levels", str(HELDOUT_SPLIT.num_levels)]
    parser = cli.build_parser()
    episode_help = parser._subparsers._group_actions[0].choices["episode"].format_help()
    assert " ".join(held) in " ".join(episode_help.split())  # the help names the held-out split
    for argv in (["episode"], ["evaluate", "--policy", "baseline"], ["imitate-classic", "--out", "O"],
                 ["train-online", "--algo", "maskable-ppo", "--out", "O", "--steps", "1"]):  # fmt: skip
        settings = cli_options.env_settings(parser.parse_args([*argv, "--env", "Esper-Micro-v3", *held]))
        assert (settings.resolved_instances, settings.start_level, settings.num_levels) == (
            "bottlenecks",
            HELDOUT_SPLIT.start_level,
            HELDOUT_SPLIT.num_levels,
        ), argv
        plain = cli_options.env_settings(parser.parse_args(argv))
        assert (plain.instances, plain.num_levels, plain.start_level) == (None, 0, 0), argv
        synth = cli_options.env_settings(parser.parse_args([*argv, "--instances", "bottlenecks"]))
        assert synth.to_kwargs()["instances"] == "bottlenecks", argv


def test_episode_runs_the_fast_tier_and_names_its_instance(capsys: pytest.CaptureFixture) -> None:
    argv = ["episode", "--env", "Esper-Micro-v3", "--fidelity", "micro", "--max-epochs", "5", "--seed", "4",
            "--start-level", "100", "--num-levels", "10", "--device", "cpu"]  # fmt: skip
    assert cli.main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert 100 <= summary["instance"] < 110 and summary["episode_length"] == 5
    assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out) == summary  # the seed fixes the instance and the episode
    # A split without a distribution: one line, exit 2.
    assert cli.main(["episode", "--fidelity", "test", "--max-epochs", "1", "--num-levels", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("esper: error: num_levels=3") and "set instances" in err[0]
