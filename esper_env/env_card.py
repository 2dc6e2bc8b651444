"""The env card's tables (docs/ENV_CARD.md), generated from the code so they cannot drift.

    python -m esper_env.env_card docs/ENV_CARD.md          # rewrite the generated blocks in place
    python -m esper_env.env_card --check docs/ENV_CARD.md  # exit 1 if any block is stale

A generated block sits between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` markers.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

from esper_env.blueprints import blueprint_table_markdown
from esper_env.configs import ENVIRONMENT_CONFIGS, FIDELITIES
from esper_env.datasets import ENV_IDS, env_version
from esper_env.hosts import HOSTS, build_host, count_parameters
from esper_env.lifecycle import ALPHA_TARGETS, SPEED_EPOCHS, TEMPO_EPOCHS, AlphaCurve, BlendStyle, Op
from esper_env.observation import feature_table
from esper_env.spaces import OP_HEADS
from esper_env.versions import VERSIONS

INFO_KEYS: tuple[tuple[str, str, str], ...] = (
    ("action_mask", "reset, step", "flat bool mask over the concatenated head values (MaskablePPO format)"),
    ("epoch", "reset, step", "epochs trained so far"),
    ("val_accuracy", "reset, step", "validation accuracy of the last epoch (-1 before any)"),
    ("slot_stages", "reset, step", "lifecycle stage name of each slot"),
    (
        "instance",
        "reset, step",
        "the task instance's index (envs with an instance distribution, such as Esper-Micro)",
    ),
    (
        "instance_fields",
        "reset",
        "the instance's fields: widths, bottleneck, learning rate, rent, blobs, spread, noise, batch size, optimizer",
    ),
    ("action_valid", "step", "False if the action was illegal and ran as WAIT"),
    ("requested_action", "step", "the action as given"),
    ("executed_action", "step", "the canonical action executed (WAIT if illegal)"),
    ("reward_components", "step", "raw reward terms (see Rewards); the reward is `relabel` of them"),
    ("epoch_result", "step", "train/val loss and accuracy of the epoch, divergence flag and reason"),
    ("termination_reason", "last step", '"max_epochs", "diverged" or "early_stop"'),
    ("final_val_accuracy", "last step", "validation accuracy after the last epoch"),
    ("best_val_accuracy", "last step", "best validation accuracy of the episode"),
    ("test_accuracy", "last step", "test-split accuracy of the final network (never an agent signal)"),
    ("host_params", "last step", "host parameters, fossilized seeds included"),
    ("base_host_params", "last step", "parameters of the host before any growth"),
    ("seed_params", "last step", "parameters of seeds not fossilized"),
    (
        "score",
        "last step",
        "benchmark score: final val accuracy - 0.03 (an instance: its rent) x log2(network size / base host size)",
    ),
    ("seeds_created", "last step", "seeds germinated in the episode"),
    ("seeds_fossilized", "last step", "seeds fossilized"),
    ("seeds_pruned", "last step", "seeds pruned"),
    ("episode_return", "last step", "sum of rewards"),
    ("episode_length", "last step", "steps taken"),
)


def op_table() -> str:
    rows = ["| op | name | heads read | effect |", "|---|---|---|---|"]
    effects = {
        Op.WAIT: "nothing; train one epoch",
        Op.GERMINATE: "create a seed in a DORMANT slot (GERMINATED)",
        Op.ADVANCE: "GERMINATED->TRAINING, TRAINING->BLENDING (gate: 2 epochs), BLENDING->HOLDING (gate: alpha at target)",
        Op.SET_ALPHA_TARGET: "new alpha target and ramp for a BLENDING/HOLDING seed (back to BLENDING)",
        Op.PRUNE: "ramp alpha to 0, delete the seed, embargo the slot",
        Op.FOSSILIZE: "make a HOLDING seed permanent (gate: contribution measured in HOLDING)",
    }
    for op in Op:
        heads = ", ".join(OP_HEADS[op]) or "-"
        rows.append(f"| {int(op)} | {op.name} | {heads} | {effects[op]} |")
    return "\n".join(rows)


def head_table() -> str:
    return "\n".join(
        [
            "| head | values |",
            "|---|---|",
            "| style | " + ", ".join(f"{int(s)} {s.name}" for s in BlendStyle) + " |",
            "| tempo | "
            + ", ".join(f"{int(t)} {t.name} ({n} epochs)" for t, n in TEMPO_EPOCHS.items())
            + " |",
            "| alpha_target | " + ", ".join(f"{i} = {a}" for i, a in enumerate(ALPHA_TARGETS)) + " |",
            "| alpha_speed | "
            + ", ".join(f"{int(s)} {s.name} ({n} epochs)" for s, n in SPEED_EPOCHS.items())
            + " |",
            "| alpha_curve | " + ", ".join(f"{int(c)} {c.name}" for c in AlphaCurve) + " |",
        ]
    )


def version_table() -> str:
    rows = ["| version | ids | dynamics |", "|---|---|---|"]
    for v, d in VERSIONS.items():
        ids = ", ".join(f"`{i}`" for i in ENV_IDS if env_version(i) == v)
        newest = [i for i in ENV_IDS if env_version(i) == v and "version" not in ENV_IDS[i]]
        current = " (current for " + ", ".join(f"`{i}`" for i in newest) + ")" if newest else ""
        rows.append(f"| v{v}{current} | {ids} | {d.summary} |")
    return "\n".join(rows)


def info_table() -> str:
    rows = ["| key | when | meaning |", "|---|---|---|"]
    rows += [f"| `{k}` | {when} | {what} |" for k, when, what in INFO_KEYS]
    return "\n".join(rows)


def preset_table() -> str:
    rows = [
        "| config | architecture | optimizer | lr | seed lr | batch | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in ENVIRONMENT_CONFIGS.values():
        seed_lr = c.learning_rate * c.seed_lr_multiplier
        rows.append(
            f"| `{c.config_id}` | {c.architecture} | {c.optimizer} | {c.learning_rate:g} | {seed_lr:g} "
            f"| {c.batch_size} | {c.notes} |"
        )
    return "\n".join(rows)


def fidelity_table() -> str:
    rows = ["| fidelity | train images / epoch | validation | test | resolution |", "|---|---|---|---|---|"]
    for f in FIDELITIES.values():
        rows.append(
            f"| `{f.name}` | {f.train_images:,} | {f.val_images:,} | {f.test_images:,} | {f.resolution}x{f.resolution} |"
        )
    return "\n".join(rows)


def host_table() -> str:
    rows = ["| host | parameters (10 classes) | slots (channels) |", "|---|---|---|"]
    for name in HOSTS:
        host = build_host(name, 10, seed=0)
        slots = ", ".join(f"{n} ({c})" for n, c in zip(host.slot_names, host.slot_channels))
        rows.append(f"| {name} | {count_parameters(host):,} | {slots} |")
    return "\n".join(rows)


BLOCKS: dict[str, Callable[[], str]] = {
    "features": feature_table,
    "ops": op_table,
    "heads": head_table,
    "info": info_table,
    "versions": version_table,
    "presets": preset_table,
    "fidelities": fidelity_table,
    "hosts": host_table,
    "blueprints": lambda: blueprint_table_markdown([8, 32, 64, 128, 256]),
}


def render(text: str) -> str:
    """``text`` with every generated block replaced by its current content."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in BLOCKS:
            raise ValueError(f"unknown generated block {name!r}; valid blocks are: {', '.join(BLOCKS)}")
        return f"<!-- BEGIN {name} -->\n{BLOCKS[name]()}\n<!-- END {name} -->"

    return re.sub(r"<!-- BEGIN (\S+) -->.*?<!-- END \1 -->", fill, text, flags=re.DOTALL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Regenerate or check the env card's tables (docs/ENV_CARD.md)."
    )
    parser.add_argument("path", type=Path)
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated block is stale")
    args = parser.parse_args(argv)
    text = args.path.read_text()
    new = render(text)
    if args.check:
        if new != text:
            print(f"{args.path}: generated blocks are stale; run python -m esper_env.env_card {args.path}")
            return 1
        return 0
    args.path.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
