"""Files a kill cannot tear: :func:`atomic_write`, :func:`atomic_path`, :func:`canonical_json`, resumable JSONL.

* :func:`atomic_write` writes bytes or text all-or-nothing: a temporary file in the same directory
  (``.tmp-<name>-*``), fsynced, renamed over the final name (``os.replace``), the directory
  fsynced. The file gets the usual mode of a new file (``0o666`` less the umask), not mkstemp's
  0600. :func:`atomic_path` does the same for a writer that wants a path (h5py, csv).
* :func:`canonical_json`: sorted keys, no spaces, no NaN: the bytes a checksum is taken over.
* :func:`append_jsonl` / :func:`read_jsonl`: one JSON row per line, appended as it is made; a kill
  can tear only the last line, which :func:`read_jsonl` drops (:func:`repair_jsonl` also rewrites
  the file without it, so that later appends stay one row per line).

Nothing here imports more than the standard library.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "TMP_PREFIX",
    "append_jsonl",
    "atomic_path",
    "atomic_write",
    "canonical_json",
    "file_mode",
    "fsync_dir",
    "read_jsonl",
    "repair_jsonl",
    "write_json",
]

#: The prefix of every temporary file :func:`atomic_write` makes (a kill may leave one behind).
TMP_PREFIX = ".tmp-"


def canonical_json(obj: Any) -> bytes:
    """``obj`` as canonical JSON bytes: sorted keys, no spaces, non-finite numbers refused."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync a directory, so that a rename in it is durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_mode() -> int:
    """``0o666`` less the process umask: the mode ``open()`` would give a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` to write; on a clean exit it is fsynced and renamed over
    ``path`` (and the directory fsynced), on an error it is removed and ``path`` left as it was."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + "-", dir=path.parent)
    tmp = Path(name)
    try:
        os.fchmod(fd, file_mode())
        os.close(fd)
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` all-or-nothing (see the module docstring)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)


def write_json(path: str | os.PathLike, data: Any, indent: int | None = 1) -> None:
    """``data`` as readable JSON (one trailing newline), written atomically."""
    atomic_write(path, json.dumps(data, indent=indent) + "\n")


def append_jsonl(path: str | os.PathLike, row: Mapping[str, Any]) -> None:
    """Append ``row`` to ``path`` as one JSON line."""
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of ``path`` (none if it does not exist); a last line cut by a kill is dropped.

    A line that does not parse anywhere but last is a ``ValueError`` naming the file and line.
    """
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            if number == len(lines):
                break
            raise ValueError(
                f"{path}: line {number} is not JSON ({e}); only the last line can be torn"
            ) from e
    return rows


def repair_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """:func:`read_jsonl`, and rewrite ``path`` (atomically) without a torn last line."""
    rows = read_jsonl(path)
    atomic_write(path, "".join(json.dumps(r) + "\n" for r in rows))
    return rows
