"""The benchmark scripts import their shared module as ``_common``, as Python finds it beside a script
run as ``python benchmarks/NAME.py``; ``runpy.run_path`` does not put that folder on ``sys.path``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(autouse=True)
def benchmarks_on_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    yield
