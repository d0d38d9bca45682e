"""The raw runs' backup during a Tiled outage: write, read back, replay into Tiled.

When Tiled refuses a raw run's document, the whole run (every document from the
start document on, then each later one) goes to ``<backup dir>/<uid>.jsonl``:
one complete JSON object ``{"name": ..., "doc": ...}`` per line, flushed as it is
written. Arrays are stored as ``{"__ndarray__": {"dtype", "shape", "data"}}`` so
they read back with their dtype and shape; numpy scalars as plain numbers. The
file holds the documents exactly as the RunEngine emitted them.

:func:`replay_backup` writes such a file into Tiled once the server is back and
moves it to ``<backup dir>/replayed/``. A partial run the outage left in Tiled
(start, some bursts, no stop) is deleted first and written again from the
backup's documents: its catalog entries and the tables Tiled wrote from those
same documents go; the cameras' HDF5 files are external data, which Tiled never
deletes. No document is changed: the run is the one the RunEngine emitted.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from xfusion_bluesky.errors import InvalidInputError

__all__ = [
    "REPLAYED_DIR",
    "BackupFile",
    "backup_is_complete",
    "backup_path",
    "decode_line",
    "encode_line",
    "list_backups",
    "read_backup",
    "replay_all",
    "replay_backup",
]

logger = logging.getLogger(__name__)

#: Subfolder of the backup directory that replayed files are moved to.
REPLAYED_DIR = "replayed"
_SUFFIX = ".jsonl"
_ARRAY_TAG = "__ndarray__"

Document = tuple[str, dict[str, Any]]


def backup_path(directory: str | Path, uid: str) -> Path:
    """Return where raw run ``uid``'s backup goes: ``directory/<uid>.jsonl``."""
    return Path(directory) / f"{uid}{_SUFFIX}"


def _encode(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {
            _ARRAY_TAG: {
                "dtype": value.dtype.str,
                "shape": list(value.shape),
                "data": value.ravel().tolist(),
            }
        }
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    # Kept as text rather than dropping the document: the line stays whole.
    logger.warning(
        "backup: a %s value is stored as its repr: %r", type(value).__name__, value
    )
    return repr(value)


def _decode(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and _ARRAY_TAG in obj:
        spec = obj[_ARRAY_TAG]
        return np.asarray(spec["data"], dtype=np.dtype(spec["dtype"])).reshape(
            spec["shape"]
        )
    return obj


def encode_line(name: str, doc: dict[str, Any]) -> str:
    """Return one document as one JSON line (no newline), arrays tagged."""
    return json.dumps({"name": name, "doc": doc}, default=_encode)


def decode_line(line: str) -> Document:
    """Return ``(name, doc)`` from a line of :func:`encode_line`, arrays restored."""
    item = json.loads(line, object_hook=_decode)
    return str(item["name"]), item["doc"]


class BackupFile:
    """One raw run's backup file, appended one flushed line per document.

    Parameters
    ----------
    directory : str or Path
        The backup directory (created if missing).
    uid : str
        The run's uid: the file is ``directory/<uid>.jsonl``.
    """

    def __init__(self, directory: str | Path, uid: str) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.path = backup_path(directory, uid)
        self._file: IO[str] | None = self.path.open("a", encoding="utf-8")

    def write_line(self, line: str) -> None:
        """Append an :func:`encode_line` line and flush it to the OS."""
        if self._file is None:
            raise ValueError(f"backup {self.path} is closed")
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        """Flush to disk and close."""
        if self._file is not None:
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None


def read_backup(path: str | Path) -> list[Document]:
    """Read a backup file; return its ``(name, doc)`` pairs in order.

    Raises
    ------
    InvalidInputError
        A line that is not a whole document (named by file and line number).
    """
    path = Path(path)
    docs = []
    with path.open(encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                docs.append(decode_line(line))
            except (ValueError, KeyError, TypeError) as err:
                raise InvalidInputError(
                    f"backup {path} line {number} is not a whole document: {err}"
                ) from err
    return docs


def backup_is_complete(docs: list[Document]) -> bool:
    """Tell whether the documents run from a start to its stop document."""
    return bool(docs) and docs[0][0] == "start" and docs[-1][0] == "stop"


def list_backups(directory: str | Path) -> list[Path]:
    """List the backup files not replayed yet, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    files = [p for p in directory.glob(f"*{_SUFFIX}") if p.is_file()]
    return sorted(files, key=lambda p: p.stat().st_mtime)


def replay_backup(path: str | Path, raw: Any, *, partial: bool = False) -> str | None:
    """Write a backed-up raw run into Tiled; move the file to ``replayed/``.

    Parameters
    ----------
    path : str or Path
        A ``<uid>.jsonl`` backup file.
    raw : tiled container
        The raw-run container (``TiledConnection.raw``).
    partial : bool
        Also replay a backup without a stop document (its RunEngine died); the
        run then stays unfinished in Tiled.

    Returns
    -------
    str or None
        The replayed run's uid; None when Tiled already has the finished run
        (replaying twice changes nothing).

    Raises
    ------
    InvalidInputError
        The file is not a backup, or has no stop document and ``partial`` is
        False (the run may still be being written).
    """
    from bluesky_tiled_plugins import TiledWriter

    path = Path(path)
    docs = read_backup(path)
    if not docs or docs[0][0] != "start":
        raise InvalidInputError(f"backup {path} does not begin with a start document")
    uid = str(docs[0][1]["uid"])
    if not partial and not backup_is_complete(docs):
        raise InvalidInputError(
            f"backup {path} has no stop document: the run may still be being "
            "written; pass partial=True (--partial) if its RunEngine died"
        )
    existing = _metadata(raw, uid)
    if existing is not None and existing.get("stop"):
        logger.info(
            "raw run %s is already complete in Tiled: %s not replayed", uid, path
        )
        _move_replayed(path)
        return None
    if existing is not None:
        logger.warning(
            "raw run %s is partial in Tiled (no stop document): writing it again "
            "from %s (its HDF5 files stay)",
            uid,
            path,
        )
        raw[uid].delete(recursive=True, external_only=False)
    writer = TiledWriter(raw, batch_size=1, max_array_size=0)
    for name, doc in docs:
        writer(name, doc)
    _move_replayed(path)
    logger.info("raw run %s replayed into Tiled from %s", uid, path)
    return uid


def replay_all(directory: str | Path, raw: Any) -> Iterator[tuple[Path, str | None]]:
    """Replay every complete backup in ``directory``; yield ``(file, uid or None)``.

    A backup without a stop document is left for later (its run may still be
    going); a file that fails is logged and left in place for the next try.
    """
    for path in list_backups(directory):
        try:
            if not backup_is_complete(read_backup(path)):
                logger.info("backup %s has no stop document yet: left for later", path)
                continue
            yield path, replay_backup(path, raw)
        except Exception:  # one bad file must not hold up the others
            logger.exception("backup %s could not be replayed; it stays", path)


def _metadata(raw: Any, uid: str) -> dict[str, Any] | None:
    try:
        return dict(raw[uid].metadata)
    except KeyError:
        return None


def _move_replayed(path: Path) -> None:
    if path.parent.name == REPLAYED_DIR:
        return
    target_dir = path.parent / REPLAYED_DIR
    target_dir.mkdir(exist_ok=True)
    target = target_dir / path.name
    n = 1
    while target.exists():  # an earlier replay of the same run: keep both
        target = target_dir / f"{path.stem}.{n}{_SUFFIX}"
        n += 1
    shutil.move(str(path), str(target))
