"""Writing packs: :class:`PackWriter` creates a pack or reopens it to resume, one episode at a time.

Every file is written with :func:`~esper_agents.common.io.atomic_write` (temp file,
fsync, rename, directory fsync), an episode's arrays first and its metadata (the commit) last,
so a process killed at any moment leaves complete episodes, at most one ``.npz`` whose ``.json``
never landed, and ``.tmp-*`` files; :meth:`PackWriter.open` removes the last two. Nothing
existing is overwritten unless ``force=True``, and only one process writes a pack at a time
(``flock`` on ``.lock``). The format is in ``datasets/PACK_FORMAT.md``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from esper_agents.common.io import TMP_PREFIX, atomic_write, canonical_json, fsync_dir
from esper_agents.generation.collector import EpisodeRecord
from esper_agents.generation.packs import (
    EPISODE_FORMAT,
    EPISODES,
    FORMAT_NAME,
    FORMAT_VERSION,
    HEADER,
    LOCK,
    PLAN,
    PackError,
    check_episode_id,
    encode_arrays,
    read_header,
    sha256_bytes,
    with_checksum,
)
from esper_agents.generation.schema import SCHEMA_VERSION, STEP_ARRAYS, jsonable
from esper_agents.generation.validation import header_settings


class PackWriter:
    """Writes episodes into a pack; see :meth:`open`. Holds the pack's lock until :meth:`close`."""

    def __init__(self, root: Path, header: dict[str, Any], lock_fd: int) -> None:
        self.root = root
        self.header = header
        self._lock_fd: int | None = lock_fd
        self.episodes_dir = root / EPISODES
        self.plan_dir = root / PLAN

    @classmethod
    def open(cls, path: str | os.PathLike, header: Mapping[str, Any], *, force: bool = False) -> PackWriter:
        """Create the pack at ``path`` with ``header``, or reopen it to resume.

        * ``path`` missing or empty: a new pack.
        * ``path`` a pack with the same ``header["generation_spec"]``: reopened to add the episodes
          it lacks (resuming); leftover temporary files and arrays without metadata are removed.
        * ``path`` a pack generated from another spec: :class:`PackError`, unless ``force``, which
          deletes its episodes and plan and starts over.
        * ``path`` a non-empty directory that is not a pack, or a file: :class:`PackError`, even
          with ``force`` (it is not ours to delete).
        """
        root = Path(path)
        if root.exists() and not root.is_dir():
            raise PackError(f"{root}: exists and is not a directory")
        root.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise PackError(f"{root}: another process is writing this pack (its {LOCK} is locked)") from None
        try:
            header = cls._prepare(root, dict(header), force)
        except BaseException:
            os.close(lock_fd)
            raise
        writer = cls(root, header, lock_fd)
        writer.episodes_dir.mkdir(exist_ok=True)
        writer.plan_dir.mkdir(exist_ok=True)
        writer.cleanup()
        return writer

    @staticmethod
    def _prepare(root: Path, header: dict[str, Any], force: bool) -> dict[str, Any]:
        hp = root / HEADER
        # What a writer killed while creating the pack can leave: the lock, temp files, empty dirs.
        others = [
            p.name
            for p in root.iterdir()
            if p.name != LOCK
            and not p.name.startswith(TMP_PREFIX)
            and not (p.name in (EPISODES, PLAN) and p.is_dir() and not any(p.iterdir()))
        ]
        if hp.exists():
            same = False
            try:
                existing = read_header(root)
                # A pack written before the settings record stores fewer env keys: compare the settings read.
                ours = {**existing["generation_spec"], "env": header_settings(existing).to_dict()}
                same = canonical_json(ours) == canonical_json(header.get("generation_spec"))
            except PackError:
                if not force:
                    raise
            if same and not force:
                return existing
            if not force:
                raise PackError(
                    f"{root}: already holds a pack generated from a different spec (name "
                    f"{existing.get('generation_spec', {}).get('name')!r}); "
                    "pass force=True (--force) to overwrite it, "
                    "or choose another directory"
                )
            for name in (EPISODES, PLAN):
                shutil.rmtree(root / name, ignore_errors=True)
            hp.unlink()
        elif others:
            raise PackError(
                f"{root}: is not empty and not a pack (contains {sorted(others)[:5]}); "
                "refusing to write into it "
                "(even with force): choose an empty or new directory"
            )
        full = with_checksum(
            {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "schema_version": SCHEMA_VERSION,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                **{
                    k: v
                    for k, v in header.items()
                    if k not in ("format", "format_version", "schema_version", "checksum")
                },
            }
        )
        atomic_write(hp, canonical_json(jsonable(full)))
        (root / EPISODES).mkdir(exist_ok=True)
        (root / PLAN).mkdir(exist_ok=True)
        return full

    def cleanup(self) -> list[Path]:
        """Remove what a killed writer left: ``.tmp-*`` files and arrays whose metadata never landed."""
        removed = []
        for d in (self.root, self.episodes_dir, self.plan_dir):
            if not d.is_dir():
                continue
            for p in d.iterdir():
                if p.name.startswith(TMP_PREFIX):
                    p.unlink(missing_ok=True)
                    removed.append(p)
        for p in self.episodes_dir.glob("*.npz"):
            if not p.with_suffix(".json").exists():
                p.unlink(missing_ok=True)
                removed.append(p)
        if removed:
            fsync_dir(self.episodes_dir)
        return removed

    def has_episode(self, episode_id: str) -> bool:
        return (self.episodes_dir / f"{check_episode_id(episode_id)}.json").exists()

    def completed_ids(self) -> set[str]:
        return {
            p.name[: -len(".json")] for p in self.episodes_dir.glob("*.json") if not p.name.startswith(".")
        }

    def write_episode(
        self, record: EpisodeRecord, *, task: Mapping[str, Any] | None = None, force: bool = False
    ) -> Path:
        """Write one episode atomically: arrays first, metadata (the commit) last.

        Raises :class:`PackError` if the episode already exists, unless ``force``.
        """
        self._check_open()
        episode_id = check_episode_id(record.episode_id)
        jp = self.episodes_dir / f"{episode_id}.json"
        np_path = self.episodes_dir / f"{episode_id}.npz"
        if jp.exists() and not force:
            raise PackError(f"{jp}: episode {episode_id!r} already exists; pass force=True to overwrite it")
        try:
            record.check()
        except ValueError as err:
            raise PackError(f"{np_path}: {err}") from None
        unknown = sorted(set(record.arrays) - set(STEP_ARRAYS))
        if unknown:
            raise PackError(f"{np_path}: arrays {unknown} are not in schema {SCHEMA_VERSION}")
        data = encode_arrays(record.arrays)
        if jp.exists():
            jp.unlink()  # forced: un-commit first, so a crash in between leaves no stale metadata
            fsync_dir(self.episodes_dir)
        atomic_write(np_path, data)
        doc = with_checksum(
            {
                "format": EPISODE_FORMAT,
                "metadata": record.metadata.to_dict(),
                "task": jsonable(dict(task or {})),
                "arrays": {"file": np_path.name, "sha256": sha256_bytes(data), "bytes": len(data)},
            }
        )
        atomic_write(jp, canonical_json(doc))
        return jp

    def write_plan_round(self, round_doc: Mapping[str, Any]) -> Path:
        """Record a generation round's planned episodes (before running them); never overwritten."""
        self._check_open()
        k = int(round_doc["round"])
        p = self.plan_dir / f"round-{k:03d}.json"
        if p.exists():
            raise PackError(f"{p}: plan round {k} already exists")
        atomic_write(p, canonical_json(with_checksum(jsonable(dict(round_doc)))))
        return p

    def _check_open(self) -> None:
        if self._lock_fd is None:
            raise PackError(f"{self.root}: the pack writer is closed")

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
