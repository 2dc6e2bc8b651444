"""Packs: the one on-disk format of generated episodes (``datasets/PACK_FORMAT.md``), and reading it.

::

    PACK/
      pack.json                    header: format, versions, generation spec, env/policy/action tables
      plan/round-000.json          the episodes each generation round planned (written before it runs)
      episodes/<episode_id>.npz    per-step arrays (numpy, no object arrays: np.load(allow_pickle=False))
      episodes/<episode_id>.json   metadata + sha256 of the .npz + its own checksum; written LAST
      .lock                        held (flock) by the process writing the pack

An episode exists exactly when its ``.json`` does. Every file is written with
:func:`esper_agents.common.io.atomic_write` (a temporary file in the same directory, fsynced, then
renamed over its final name and the directory fsynced), so a process killed at any moment leaves complete episodes, at most one ``.npz`` whose
``.json`` never landed, and ``.tmp-*`` files;
:meth:`esper_agents.generation.pack_writer.PackWriter.open` removes the last two.
Nothing is read with pickle and nothing existing is overwritten unless ``force=True``.

Loading (:func:`open_pack`) checks the format and schema versions, the header's types and env
version, that every planned episode is present (unless ``partial``) and, per episode, the JSON
checksum and the ``.npz`` sha256; loading an episode checks its arrays against the header
(:mod:`~esper_agents.generation.validation`). Any problem raises :class:`PackError` naming the
file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from esper_agents.common.io import canonical_json
from esper_agents.generation.collector import EpisodeRecord
from esper_agents.generation.schema import SCHEMA_VERSION, EpisodeMetadata
from esper_agents.generation.validation import check_env_version, check_episode, check_header
from esper_env.settings import EnvSettings

FORMAT_NAME = "esper-pack"
FORMAT_VERSION = 1
EPISODE_FORMAT = "esper-pack-episode"
HEADER = "pack.json"
EPISODES = "episodes"
PLAN = "plan"
LOCK = ".lock"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


class PackError(Exception):
    """A pack that cannot be read or written as asked; the message names the file and the problem."""


# ---------------------------------------------------------------------------------------------
# Low-level helpers


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def with_checksum(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` plus ``checksum``: the sha256 of its canonical JSON (without the checksum)."""
    body = {k: v for k, v in doc.items() if k != "checksum"}
    return {**body, "checksum": sha256_bytes(canonical_json(body))}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (the pack format stores non-finite numbers as null)")


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_bytes(), parse_constant=_reject_constant)
    except FileNotFoundError:
        raise PackError(f"{path}: {what} is missing") from None
    except RecursionError:
        raise PackError(f"{path}: {what} is nested too deeply to be a pack file") from None
    except (OSError, ValueError) as err:
        raise PackError(f"{path}: {what} is not valid JSON ({err})") from None
    if not isinstance(doc, dict):
        raise PackError(f"{path}: {what} must be a JSON object, got {type(doc).__name__}")
    return doc


def _check_checksum(path: Path, doc: Mapping[str, Any], what: str) -> None:
    stored = doc.get("checksum")
    body = {k: v for k, v in doc.items() if k != "checksum"}
    actual = sha256_bytes(canonical_json(body))
    if stored != actual:
        raise PackError(
            f"{path}: {what} checksum mismatch (stored {stored!r}, computed {actual!r}): the file is corrupt"
        )


def check_schema_version(version: Any, path: Path) -> None:
    """Schemas 2.0.x up to this reader's minor version (2.1.x) are readable; anything else is refused."""
    major, minor = SCHEMA_VERSION.split(".")[:2]
    parts = version.split(".") if isinstance(version, str) else []
    ok = len(parts) >= 2 and parts[0] == major and parts[1].isdigit() and int(parts[1]) <= int(minor)
    if not ok:
        raise PackError(
            f"{path}: schema_version {version!r} is not supported (this reader reads {major}.0 to "
            f"{SCHEMA_VERSION})"
        )


def check_episode_id(episode_id: str) -> str:
    if not isinstance(episode_id, str) or not _ID_RE.match(episode_id):
        raise PackError(f"episode id {episode_id!r} is not valid: use letters, digits, '.', '_' and '-' only")
    return episode_id


def encode_arrays(arrays: Mapping[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    for name, a in arrays.items():
        if np.asarray(a).dtype.kind == "O":
            raise PackError(f"array {name!r} has dtype object, which the pack format forbids")
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def decode_arrays(data: bytes, path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
        raise PackError(f"{path}: cannot read the arrays ({err})") from None


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class EpisodeEntry:
    """One complete episode of a pack: its metadata and where its arrays are."""

    episode_id: str
    metadata: EpisodeMetadata
    task: dict[str, Any]
    npz_path: Path
    npz_sha256: str
    json_path: Path


class Pack:
    """A pack opened for reading. Use :func:`open_pack`.

    ``pack.header`` is ``pack.json``; ``pack.entries`` the episodes (sorted by id);
    ``pack.load(id)`` / ``iter(pack)`` give :class:`EpisodeRecord` objects.
    """

    def __init__(self, path: Path, header: dict[str, Any], entries: list[EpisodeEntry], verify: bool) -> None:
        self.path = path
        self.header = header
        self.env = check_header(header)
        self.entries = entries
        self._by_id = {e.episode_id: e for e in entries}
        self._verify = verify

    # --- header shortcuts
    @property
    def environment(self) -> dict[str, Any]:
        return self.header["environment"]

    @property
    def settings(self) -> EnvSettings:
        """The env settings the pack was generated with (in the matrix's first config; an episode's
        config is its ``metadata.config_id``)."""
        return self.env.settings

    @property
    def action_names(self) -> list[str]:
        return [a["name"] for a in self.environment["actions"]]

    @property
    def n_actions(self) -> int:
        return int(self.environment["n_actions"])

    @property
    def observation_dim(self) -> int:
        return int(self.environment["observation_dim"])

    @property
    def num_slots(self) -> int:
        return int(self.environment["num_slots"])

    @property
    def max_epochs(self) -> int:
        return int(self.environment["max_epochs"])

    @property
    def reward_config(self) -> dict[str, Any]:
        return dict(self.environment["reward"])

    @property
    def name(self) -> str:
        return str(self.header.get("generation_spec", {}).get("name", self.path.name))

    @property
    def episode_ids(self) -> list[str]:
        return [e.episode_id for e in self.entries]

    @property
    def n_transitions(self) -> int:
        return int(sum(e.metadata.episode_length for e in self.entries))

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, episode_id: object) -> bool:
        return episode_id in self._by_id

    def metadata(self, episode_id: str) -> EpisodeMetadata:
        return self._entry(episode_id).metadata

    def _entry(self, episode_id: str) -> EpisodeEntry:
        try:
            return self._by_id[episode_id]
        except KeyError:
            raise PackError(f"{self.path}: no episode {episode_id!r}") from None

    def load(self, episode_id: str) -> EpisodeRecord:
        """The episode's metadata and arrays (sha256 checked when the pack was opened with verify)."""
        e = self._entry(episode_id)
        try:
            data = e.npz_path.read_bytes()
        except OSError as err:
            raise PackError(
                f"{e.npz_path}: cannot read the arrays of episode {episode_id!r} ({err})"
            ) from None
        if self._verify and sha256_bytes(data) != e.npz_sha256:
            raise PackError(
                f"{e.npz_path}: sha256 mismatch with {e.json_path.name} (stored {e.npz_sha256}, computed "
                f"{sha256_bytes(data)}): the file is corrupt"
            )
        arrays = decode_arrays(data, e.npz_path)
        try:
            check_episode(arrays, e.metadata.episode_length, self.env)
        except ValueError as err:
            raise PackError(f"{e.npz_path}: episode {episode_id!r}: {err}") from None
        return EpisodeRecord(e.metadata, arrays)

    def __iter__(self) -> Iterator[EpisodeRecord]:
        for e in self.entries:
            yield self.load(e.episode_id)

    def __repr__(self) -> str:
        return f"Pack({str(self.path)!r}, episodes={len(self)}, transitions={self.n_transitions})"


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """``pack.json`` of the pack at ``path``, validated (format, versions, checksum)."""
    root = Path(path)
    hp = root / HEADER
    if not root.is_dir():
        raise PackError(f"{root}: not a directory (a pack is a directory holding {HEADER})")
    header = _read_json(hp, "the pack header")
    if header.get("format") != FORMAT_NAME:
        raise PackError(f"{hp}: format {header.get('format')!r} is not {FORMAT_NAME!r}")
    fv = header.get("format_version")
    if not isinstance(fv, int) or fv > FORMAT_VERSION or fv < 1:
        raise PackError(
            f"{hp}: format_version {fv!r} is not supported (this reader reads up to {FORMAT_VERSION})"
        )
    check_schema_version(header.get("schema_version"), hp)
    _check_checksum(hp, header, "the pack header")
    try:
        check_header(header)
    except ValueError as err:
        raise PackError(f"{hp}: {err}") from None
    return header


def _read_entry(json_path: Path, verify: bool) -> EpisodeEntry:
    doc = _read_json(json_path, "episode metadata")
    if doc.get("format") != EPISODE_FORMAT:
        raise PackError(f"{json_path}: format {doc.get('format')!r} is not {EPISODE_FORMAT!r}")
    _check_checksum(json_path, doc, "episode metadata")
    meta = doc.get("metadata")
    if not isinstance(meta, dict):
        raise PackError(f"{json_path}: has no metadata object")
    check_schema_version(meta.get("schema_version"), json_path)
    episode_id = json_path.name[: -len(".json")]
    if meta.get("episode_id") != episode_id:
        raise PackError(
            f"{json_path}: metadata names episode {meta.get('episode_id')!r}, the file name {episode_id!r}"
        )
    arrays = doc.get("arrays")
    expected = episode_id + ".npz"
    if not isinstance(arrays, dict) or arrays.get("file") != expected:
        got = arrays.get("file") if isinstance(arrays, dict) else arrays
        raise PackError(f"{json_path}: arrays.file is {got!r}; it must be {expected!r}")
    if not isinstance(arrays.get("sha256"), str):
        raise PackError(f"{json_path}: arrays.sha256 must be a string, got {arrays.get('sha256')!r}")
    task = doc.get("task", {})
    if not isinstance(task, dict):
        raise PackError(f"{json_path}: task must be an object, got {type(task).__name__}")
    npz_path = json_path.with_name(expected)
    if not npz_path.is_file():
        raise PackError(f"{npz_path}: missing (listed by {json_path.name})")
    if verify:
        actual = sha256_file(npz_path)
        if actual != arrays.get("sha256"):
            raise PackError(
                f"{npz_path}: sha256 mismatch with {json_path.name} (stored {arrays.get('sha256')}, computed "
                f"{actual}): the file is corrupt"
            )
    try:
        metadata = EpisodeMetadata.from_dict(meta)
    except (TypeError, ValueError) as err:
        raise PackError(f"{json_path}: {err}") from None
    return EpisodeEntry(episode_id, metadata, dict(task), npz_path, arrays["sha256"], json_path)


def open_pack(path: str | os.PathLike | Pack, *, verify: bool = True, partial: bool = False) -> Pack:
    """Open the pack at ``path``; with ``verify`` every checksum is checked now (PackError if not).

    Every episode is checked against the header when it is loaded. A pack generated with
    another version of its env is refused, and so is one that lacks episodes its plan lists
    (a generation that did not finish) unless ``partial``.
    """
    if isinstance(path, Pack):
        return path
    root = Path(path)
    header = read_header(root)
    try:
        check_env_version(header["environment"]["env_id"])
    except ValueError as err:
        raise PackError(f"{root / HEADER}: {err}") from None
    ep_dir = root / EPISODES
    entries = [_read_entry(p, verify) for p in sorted(ep_dir.glob("*.json")) if not p.name.startswith(".")]
    if not partial:
        _check_complete(root, {e.episode_id for e in entries})
    return Pack(root, header, entries, verify)


def iter_records(pack: Pack | str | os.PathLike) -> Iterator[EpisodeRecord]:
    """Every episode of a pack (checksums verified), sorted by episode id."""
    yield from open_pack(pack)


def _check_complete(root: Path, present: set[str]) -> None:
    planned = [t["episode_id"] for r in read_plan(root) for t in r.get("episodes", []) if isinstance(t, dict)]
    missing = sorted(set(planned) - present)
    if missing:
        raise PackError(
            f"{root}: holds {len(planned) - len(missing)} of the {len(planned)} planned episodes (missing "
            f"{', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}): its generation did not finish. "
            f"Resume it by rerunning the same command (esper generate --spec SPEC --out {root}), or pass "
            "--partial (partial=True) to read only the episodes present"
        )


def read_plan(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The generation rounds recorded in ``PACK/plan/`` (in order), each checksum-validated."""
    plan_dir = Path(path) / PLAN
    rounds = []
    for p in sorted(plan_dir.glob("round-*.json")):
        doc = _read_json(p, "a plan round")
        _check_checksum(p, doc, "the plan round")
        rounds.append(doc)
    for i, r in enumerate(rounds):
        if r.get("round") != i:
            raise PackError(
                f"{plan_dir}: plan rounds are not numbered 0..{len(rounds) - 1} "
                f"(found round {r.get('round')!r} at position {i})"
            )
    return rounds
