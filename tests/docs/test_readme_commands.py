"""Every command in the README runs as written: the ``run`` blocks are run in a scratch directory, the
``skip`` blocks are listed (as skipped tests) with their reason; links and paths point at real files.

Each bash block is preceded by ``<!-- readme-test: run -->`` or ``<!-- readme-test: skip: REASON -->``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import runpy
import shlex
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
    commands = re.findall(r"(?<![\w/])((?:datasets|benchmarks|docs|examples)/[\w./-]+\.(?:toml|py|md))", TEXT)
    return {p for p in [*links, *code, *commands] if not p.startswith(("http://", "https://"))}


def test_links_and_paths_exist() -> None:
    missing = sorted(p for p in _paths() if not (ROOT / p.rstrip("/")).exists())
    assert not missing, f"the README names files that are not in the repository: {missing}"


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.kind == "skip"], ids=lambda b: f"line{b.line}")
def test_slow_commands_are_listed(block: Block) -> None:
    pytest.skip(f"{block.reason}: " + " && ".join(c.split(" #", 1)[0].strip() for c in block.commands))


#: Characters that make bash do more than run one program with its arguments: outside quotes, and
#: (the expansions) outside single quotes.
UNQUOTED_SHELL, EXPANSIONS = set("|&;<>(){}*?[]~!\\"), set("$`")


def _needs_bash(command: str) -> bool:
    quote = ""
    for char in command:
        if char == "#" and not quote:
            return False  # a comment: the rest is not run
        if quote != "'" and char in EXPANSIONS or not quote and char in UNQUOTED_SHELL:
            return True
        if char in "'\"" and quote in ("", char):
            quote = "" if quote else char
    return False


def _run_in_process(argv: list[str]) -> tuple[int, str, str]:
    """``esper ...`` through ``esper_agents.cli.main``, ``python -c CODE`` and ``python SCRIPT ...``
    through runpy: what the shell would run, in this process (no interpreter start, no re-import)."""
    from esper_agents import cli

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            if argv[0] == "esper":
                code = cli.main(argv[1:])
            elif argv[:2] == ["python", "-c"]:
                exec(compile(argv[2], "<readme>", "exec"), {"__name__": "__main__"})  # noqa: S102 (the README's code)
            else:
                saved = sys.argv
                sys.argv = argv[1:]
                try:
                    runpy.run_path(argv[1], run_name="__main__")
                finally:
                    sys.argv = saved
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return int(code or 0), out.getvalue(), err.getvalue()


def _in_process(command: str) -> list[str] | None:
    """The argv of an ``esper``/``python`` command that can run in this process, or None (bash runs it)."""
    if _needs_bash(command):
        return None
    argv = shlex.split(command, comments=True)
    if argv and argv[0] == "esper":
        return argv
    if (
        len(argv) == 3
        and argv[:2] == ["python", "-c"]
        or len(argv) >= 2
        and argv[0] == "python"
        and (argv[1].endswith(".py"))
    ):
        return argv
    return None


def test_run_blocks_run_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``run`` blocks, in README order, in one scratch directory (later blocks read what earlier
    ones wrote), with the repository's datasets/ beside them and this venv first on PATH.

    Each ``esper``/``python`` command runs in this process, as the shell would run it; the last
    command runs in bash through the installed ``esper`` console script (the entry-point check), as
    does any line with shell syntax."""
    for name in ("datasets", "docs", "benchmarks", "examples"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "MINARI_DATASETS_PATH": str(tmp_path / "minari-root")}  # fmt: skip
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MINARI_DATASETS_PATH", env["MINARI_DATASETS_PATH"])
    run_blocks = [b for b in BLOCKS if b.kind == "run"]
    last = (run_blocks[-1].line, run_blocks[-1].commands[-1])
    entry_point_ran = False
    outputs = []
    for block in run_blocks:
        stdout = ""
        for command in block.commands:
            argv = _in_process(command)
            if argv is None or (block.line, command) == last:
                done = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=tmp_path, env=env,
                                      capture_output=True, text=True, check=False)  # fmt: skip
                code, out, err = done.returncode, done.stdout, done.stderr
                entry_point_ran |= command.lstrip().startswith("esper ")
            else:
                code, out, err = _run_in_process(argv)
            assert code == 0, f"README line {block.line} failed:\n{block.script}\n{command}\n{err[-3000:]}"
            stdout += out
        outputs.append(stdout)
    assert outputs[0].strip().startswith("0.68")  # the normalized-score example prints what its comment says
    assert entry_point_ran, f"the README's last run command is not an esper command: {last[1]}"
