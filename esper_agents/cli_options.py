"""The pieces every ``esper`` subcommand shares: argument types, the registries flags take their
names from, the help formatter, the parent parsers (env, pack, progress, device), and the
translation of parsed flags into library arguments.

Kept apart from :mod:`esper_agents.cli` so that the subcommand implementations
(``esper_agents.*.commands``) can use them without importing the command line itself.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the settings module is imported when flags are read, not when the parser is built
    from esper_env.settings import EnvSettings


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}")
    return value


def unit_float(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}")
    return value


#: ``esper_env.instances.MAX_LEVELS``, repeated so that building the parser imports no numpy.
MAX_LEVELS = 2**31 - 1


def level_int(text: str) -> int:
    value = int(text)
    if not 0 <= value < MAX_LEVELS:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, {MAX_LEVELS}), got {text!r}")
    return value


# argparse names the type in its message ("invalid positive_int value: '0'") unless __name__ reads well.
positive_int.__name__ = "positive integer"
non_negative_int.__name__ = "non-negative integer"
unit_float.__name__ = "number in [0, 1]"
level_int.__name__ = "instance index"


class Names:
    """The names of a library registry (``module.attr``, a tuple or a dict's keys), as argparse
    ``choices``; the module is imported on first use, not when the parser is built."""

    def __init__(self, module: str, attr: str) -> None:
        self.module = module
        self.attr = attr

    def _names(self) -> tuple[str, ...]:
        return tuple(getattr(importlib.import_module(self.module), self.attr))

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, value: object) -> bool:
        return value in self._names()

    def __len__(self) -> int:
        return len(self._names())


ENV_IDS = Names("esper_env.datasets", "CURRENT_ENV_IDS")
PRESETS = Names("esper_env.configs", "ENVIRONMENT_CONFIGS")
FIDELITIES = Names("esper_env.configs", "FIDELITIES")
REWARD_MODES = Names("esper_env.rewards", "REWARD_MODES")
POLICY_IDS = Names("esper_agents.policies", "POLICY_IDS")
ALGORITHMS = Names("esper_agents.offline.train", "ALGORITHMS")
ONLINE_ALGORITHMS = Names("esper_agents.online.algorithms", "ONLINE_ALGORITHMS")
BACKENDS = Names("esper_agents.generation.backends", "BACKENDS")
DOWNLOADABLE = Names("esper_env.datasets", "DOWNLOADABLE")
EXPORT_FORMATS = Names("esper_agents.generation.exports", "EXPORT_FORMATS")
DISTRIBUTIONS = Names("esper_env.instances", "DISTRIBUTIONS")
SUITE_NAMES = Names("esper_agents.bench.suites", "SUITE_NAMES")
AGENT_NAMES = Names("esper_agents.bench.suites", "AGENT_NAMES")
#: ``esper_env.settings.DEVICES`` and ``DEFAULT_ENV_ID``, repeated so that building the parser imports
#: no torch (tests/cli/test_cli.py checks that they agree).
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_ENV = "Esper-SynthCIFAR-v2"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every default, except where there is none to show (flags, required options)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.required:
            return action.help
        return super()._get_help_string(action)


def env_arguments(fidelity: str | None) -> argparse.ArgumentParser:
    """The env arguments every subcommand that runs the env takes (``parents=[...]``); ``fidelity``
    is the subcommand's default (None: the env id's own)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--env", default=DEFAULT_ENV, choices=ENV_IDS, metavar="ID",
                   help="environment id, one of: %(choices)s")  # fmt: skip
    p.add_argument("--config", default="baseline", choices=PRESETS, metavar="PRESET",
                   help="environment preset, one of: %(choices)s")  # fmt: skip
    p.add_argument("--fidelity", default=fidelity, choices=FIDELITIES, metavar="NAME",
                   help="fidelity preset, one of: %(choices)s" + ("" if fidelity else " (default: the env id's)"))  # fmt: skip
    p.add_argument("--max-epochs", type=positive_int, default=25, help="epoch budget of an episode")
    add_reward_argument(p, "shaped")
    p.add_argument("--seed", type=int, default=0, help="RNG seed (the first episode's reset seed)")
    p.add_argument("--instances", default=None, choices=DISTRIBUTIONS, metavar="NAME",
                   help="task distribution each reset draws an instance from, one of: %(choices)s "
                        "(default: the env id's: Esper-Micro's bottlenecks, none for the image ids)")  # fmt: skip
    p.add_argument("--num-levels", type=level_int, default=0, metavar="N",
                   help="draw instances from [start-level, start-level + N) only (0: every index from "
                        "start-level on); needs a distribution")  # fmt: skip
    p.add_argument("--start-level", type=level_int, default=0, metavar="N",
                   help="the first instance index drawn (the held-out split: --start-level 1000000 --num-levels 100000)")  # fmt: skip
    return p


def add_reward_argument(parser: argparse.ArgumentParser, default: str | None, what: str = "") -> None:
    """``--reward MODE``: the reward the env returns (not ``--reward-mode``, which relabels a pack)."""
    parser.add_argument("--reward", default=default, choices=REWARD_MODES, metavar="MODE",
                        help="the env's reward mode, one of: %(choices)s" + what)  # fmt: skip


def pack_arguments(required: bool, help: str = "pack directory") -> argparse.ArgumentParser:
    """``--pack DIR`` and ``--partial``, the same in every subcommand that reads a pack."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--pack", required=required, default=None, metavar="DIR", help=help)
    p.add_argument("--partial", action="store_true",
                   help="read a pack whose generation did not finish (only the episodes present)")  # fmt: skip
    return p


def progress_argument() -> argparse.ArgumentParser:
    """``--no-progress``."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def device_argument(default: str = "auto", what: str = "the env's") -> argparse.ArgumentParser:
    """``--device``, passed to the env (``gym.make(..., device=...)``) or to what trains."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--device", default=default, choices=DEVICES,
                   help=f"{what} torch device (auto: cuda when available)")  # fmt: skip
    return p


def check_device(name: str | None) -> None:
    """``ValueError`` (one line) when ``--device cuda`` is asked for on a machine without CUDA."""
    if name == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ValueError(
                "--device cuda: no CUDA device is available on this machine; use --device cpu or auto"
            )


def torch_device(name: str) -> str:
    """d3rlpy's device string for a ``--device`` value."""
    if name == "auto":
        import torch

        name = "cuda" if torch.cuda.is_available() else "cpu"
    return f"{name}:0"


def env_settings(args: argparse.Namespace) -> EnvSettings:
    """The :class:`~esper_env.settings.EnvSettings` the env flags give (``--env``, ``--config``,
    ``--fidelity``, ``--max-epochs``, ``--reward``, ``--device``, ``--instances``, ``--num-levels``,
    ``--start-level``); ``ValueError`` on a bad value."""
    from esper_env.settings import EnvSettings

    return EnvSettings(env_id=args.env, config=args.config, fidelity=args.fidelity, max_epochs=args.max_epochs,
                       reward=args.reward, device=args.device, instances=args.instances,
                       num_levels=args.num_levels, start_level=args.start_level)  # fmt: skip
