"""Read untrusted files within bounds: :func:`read_regular_file`, :func:`read_zip_entries`.

A saved model or agent is read only from a regular file (a symlink to ``/dev/zero`` or a FIFO is
refused without reading or blocking: the file is opened with ``O_NONBLOCK`` and checked with
``fstat``), and never past a size limit. A zip's entries are checked against their declared sizes
(compressed and uncompressed) before any is inflated, and each read is capped, so a small zip that
inflates to gigabytes is refused from its directory. Messages name the file.
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
from collections.abc import Mapping
from pathlib import Path

__all__ = ["MiB", "read_regular_file", "read_zip_entries"]

MiB = 1 << 20


def _size(n: int) -> str:
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{n} bytes"


def read_regular_file(path: str | os.PathLike, limit: int) -> bytes:
    """The bytes of ``path`` if it is a regular file (symlinks followed) of at most ``limit`` bytes.

    ``ValueError`` naming the file otherwise (a device, FIFO, socket or directory, or too large);
    ``OSError`` (e.g. FileNotFoundError) when it cannot be opened.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path}: is not a regular file (a device, FIFO or directory is not read)")
        if info.st_size > limit:
            raise ValueError(
                f"{path}: is {_size(info.st_size)}, more than the {_size(limit)} this file may have"
            )
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise ValueError(f"{path}: grew past the {_size(limit)} this file may have while it was read")
    return data


def read_zip_entries(path: str | os.PathLike, data: bytes, limits: Mapping[str, int]) -> dict[str, bytes]:
    """The entries of the zip ``data`` (read from ``path``), each within its limit in ``limits``.

    ``limits`` maps every entry the zip may hold to its largest uncompressed size; an entry not in
    it, a declared size over its limit, or an entry that inflates past its declared size is a
    ``ValueError`` naming the file and the entry.
    """
    p = Path(path)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            names = [i.filename for i in infos]
            extra = sorted(set(names) - set(limits))
            if extra:
                raise ValueError(
                    f"{p}: holds entries {extra} that are not part of this format ({sorted(limits)})"
                )
            if len(set(names)) != len(names):
                raise ValueError(f"{p}: holds an entry twice ({sorted(names)})")
            for info in infos:
                limit = limits[info.filename]
                if info.file_size > limit or info.compress_size > limit:
                    raise ValueError(
                        f"{p}: entry {info.filename!r} is {_size(info.file_size)} "
                        f"({_size(info.compress_size)} compressed), more than its limit of {_size(limit)}"
                    )
            out = {}
            for info in infos:
                with archive.open(info) as f:
                    content = f.read(limits[info.filename] + 1)
                if len(content) > limits[info.filename]:
                    raise ValueError(f"{p}: entry {info.filename!r} inflates past its limit")
                out[info.filename] = content
            return out
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as err:
        raise ValueError(f"{p}: is not a valid zip file ({type(err).__name__}: {err})") from None
