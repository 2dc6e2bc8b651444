"""The README's example runs, and the env card's generated tables (docs/ENV_CARD.md) are current."""

from __future__ import annotations

import re
from pathlib import Path

from esper_env.env_card import main as env_card_main
from esper_env.env_card import render

README = Path(__file__).resolve().parents[2] / "README.md"
ENV_CARD = README.parent / "docs" / "ENV_CARD.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_readme_custom_agent_example_runs(capsys) -> None:
    block = next(b for b in python_blocks(README.read_text()) if "legal_actions" in b)
    code_lines = [
        line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("import")
    ]
    assert len(code_lines) <= 14, "the quickstart example should stay short"
    exec(compile(block, "README.md", "exec"), {})  # noqa: S102  (running the README's own example is the test)
    out = capsys.readouterr().out
    assert out.startswith("max_epochs ")


def test_readme_generated_tables_are_current() -> None:
    text = ENV_CARD.read_text()
    assert "<!-- BEGIN features -->" in text and "<!-- BEGIN blueprints -->" in text
    assert render(text) == text, "run: python -m esper_env.env_card docs/ENV_CARD.md"
    assert env_card_main(["--check", str(ENV_CARD)]) == 0
    assert "(docs/ENV_CARD.md)" in README.read_text(), "the README links the env card"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    setup = README.read_text().split("## Set-up", 1)[1]
    commands = re.search(r"```bash\n(.*?)```", setup, flags=re.DOTALL).group(1).strip().splitlines()
    assert len(commands) == 2, "the set-up is two commands: install and run, then test"
    ci_script = (README.parent / ".ci" / "run").read_text().strip().splitlines()
    assert ci_script[-1] == commands[1]
    assert "ruff check" in commands[1] and "ruff format --check" in commands[1] and "pytest" in commands[1]
