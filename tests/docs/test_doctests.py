"""The docstring examples run: every ``>>>`` example in ``esper_env`` and ``esper_agents``.

Equivalent to ``pytest --doctest-modules`` over the packages, but collected by module name so that
a module whose optional dependency is missing (Ray) is reported as skipped rather than as an error.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import esper_agents
import esper_env

OPTIONAL = {"ray"}


def modules_with_examples() -> list[str]:
    names = []
    for package in (esper_env, esper_agents):
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
            spec = importlib.util.find_spec(info.name)
            source = spec.loader.get_source(info.name) if spec and spec.loader else None
            if source and ">>>" in source:
                names.append(info.name)
    return sorted(names)


MODULES = modules_with_examples()


def test_the_packages_have_examples() -> None:
    assert len(MODULES) >= 3, MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    try:
        module = importlib.import_module(name)
    except ImportError as err:
        if err.name in OPTIONAL:
            pytest.skip(f"{name} needs {err.name}")
        raise
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module, name) if t.examples]
    assert tests, f"{name} mentions '>>>' but has no docstring example"
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
