"""Every command in the README runs as written: the ``run`` blocks are run in a scratch directory, the
``skip`` blocks are listed (as skipped tests) with their reason; links and paths point at real files.

Each bash block is preceded by ``<!-- readme-test: run -->`` or ``<!-- readme-test: skip: REASON -->``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BLOCK = re.compile(r"<!-- readme-test: (run|skip: (.*?)) -->\n```bash\n(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class Block:
    kind: str  # "run" or "skip"
    reason: str
    script: str
    line: int

    @property
    def commands(self) -> list[str]:
        return [c for c in self.script.splitlines() if c.strip() and not c.lstrip().startswith("#")]


def blocks(text: str) -> list[Block]:
    return [
        Block(
            "run" if m.group(1) == "run" else "skip",
            m.group(2) or "",
            m.group(3),
            text[: m.start()].count("\n") + 1,
        )
        for m in BLOCK.finditer(text)
    ]


TEXT = README.read_text()
BLOCKS = blocks(TEXT)


def test_every_bash_block_is_marked() -> None:
    assert TEXT.count("```bash") == len(BLOCKS), "a ```bash block of the README has no readme-test marker"
    assert sum(b.kind == "run" for b in BLOCKS) >= 3, "the README should run its quick commands"


def test_commands_copy_paste_as_they_stand() -> None:
    for block in BLOCKS:
        for command in block.commands:
            code = command.split(" #", 1)[0]
            assert not re.search(r"\w\|\w", code), (
                f"README line {block.line}: a choice list in a command: {code}"
            )
            assert "<" not in code and "..." not in code, f"README line {block.line}: a placeholder: {code}"


def _paths() -> set[str]:
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", TEXT)
    code = re.findall(
        r"`((?:docs|datasets|benchmarks|examples|esper_env|esper_agents|tests)/[\w./-]+)`", TEXT
    )
    commands = re.findall(r"((?:datasets|benchmarks|docs|examples)/[\w./-]+\.(?:toml|py|md))", TEXT)
    return {p for p in [*links, *code, *commands] if not p.startswith(("http://", "https://"))}


def test_links_and_paths_exist() -> None:
    missing = sorted(p for p in _paths() if not (ROOT / p.rstrip("/")).exists())
    assert not missing, f"the README names files that are not in the repository: {missing}"


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.kind == "skip"], ids=lambda b: f"line{b.line}")
def test_slow_commands_are_listed(block: Block) -> None:
    pytest.skip(f"{block.reason}: " + " && ".join(c.split(" #", 1)[0].strip() for c in block.commands))


def test_run_blocks_run_as_written(tmp_path: Path) -> None:
    """The ``run`` blocks, in README order, in one scratch directory (later blocks read what earlier
    ones wrote), with the repository's datasets/ beside them and this venv first on PATH."""
    for name in ("datasets", "docs", "benchmarks", "examples"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "MINARI_DATASETS_PATH": str(tmp_path / "minari-root")}  # fmt: skip
    outputs = []
    for block in (b for b in BLOCKS if b.kind == "run"):
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", block.script], cwd=tmp_path, env=env,
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert done.returncode == 0, (
            f"README line {block.line} failed:\n{block.script}\n{done.stderr[-3000:]}"
        )
        outputs.append(done.stdout)
    assert outputs[0].strip().startswith("0.68")  # the normalized-score example prints what its comment says
