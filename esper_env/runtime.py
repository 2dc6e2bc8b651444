"""Runtime helpers shared by the env's modules: name lookup, torch threads and device resolution.

:func:`lookup` is the one way a name is resolved against a table (the error names the bad value
and lists the valid ones). :func:`torch_threads` scopes torch's intra-op thread count around a
block; :func:`resolve_device` turns ``"auto"`` into CUDA when present, else CPU. The module
imports torch only inside the functions that need it, so torch-free modules (``lifecycle``,
``datasets``, ``settings``) can use :func:`lookup`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["check_int", "lookup", "resolve_device", "torch_threads"]

T = TypeVar("T")


def lookup(kind: str, name: str, table: Mapping[str, T]) -> T:
    """Return ``table[name]`` or raise a ValueError that names ``name`` and lists the valid keys."""
    try:
        return table[name]
    except (KeyError, TypeError):
        valid = ", ".join(repr(k) for k in table)
        raise ValueError(f"unknown {kind} {name!r}; valid {kind}s are: {valid}") from None


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads (``None``: as they are), then restore them."""
    import torch

    if n is None or n == torch.get_num_threads():
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` picks CUDA when present, else CPU; anything else goes to ``torch.device``."""
    import torch

    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from err


def check_int(name: str, value: Any, minimum: int, *, optional: bool = False) -> int | None:
    """``value`` as an int if it is an integer (not a bool, str or float) >= ``minimum``."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = f"an integer >= {minimum}" + (" or None" if optional else "")
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return int(value)
