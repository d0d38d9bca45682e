"""Write raw runs to Tiled with TiledWriter, backed up whole when Tiled fails.

Raw runs are written only by the maintained ``bluesky_tiled_plugins.TiledWriter``
(not the older copy in ``bluesky.callbacks.tiled_writer``): it registers the
cameras' HDF5 files as external data from their StreamResource/StreamDatum
documents and copies nothing.

Each run gets its own TiledWriter. When Tiled refuses one of its documents (the
server is down, say), that writer is abandoned for the rest of the run and the
whole run — every document from its start, then each later one — goes to
``<backup dir>/<uid>.jsonl`` (:mod:`~xfusion_bluesky.catalog.backup`), to be
replayed with ``xfusion-bluesky replay`` or by the fusion worker. The RunEngine
never sees an exception from this callback: a scan goes on through an outage.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from bluesky import RunEngine

from xfusion_bluesky.catalog.backup import BackupFile, encode_line

__all__ = ["RawWriter", "make_raw_writer", "subscribe_raw_writer"]

logger = logging.getLogger(__name__)

#: Seconds a look at a Tiled server that failed a run may take (see RawWriter).
PROBE_TIMEOUT_S = 3.0


class _RunWriter:
    """One raw run: TiledWriter first; on its first failure, the backup file."""

    def __init__(
        self, raw: Any, uid: str, backup_directory: Path | None, batch_size: int
    ) -> None:
        self.uid = uid
        self._raw = raw
        self._batch_size = batch_size
        self._backup_directory = backup_directory
        self._primary: Any = None
        # Each document as a line, encoded when it arrives (a later mutation by
        # another callback cannot change the backup): written if Tiled fails.
        self._lines: list[str] = []
        self._backup: BackupFile | None = None
        self.failed = False

    def fail_over(self, reason: str) -> None:
        """Send the run to its backup from its first document (Tiled is down)."""
        self.failed = True
        self._start_backup("start", reason)

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        line = encode_line(name, doc) if self._backup_directory else ""
        if self.failed:
            if self._backup is not None:
                self._backup.write_line(line)
            return
        self._lines.append(line)
        try:
            if self._primary is None:
                from bluesky_tiled_plugins import TiledWriter

                self._primary = TiledWriter(
                    self._raw,
                    batch_size=self._batch_size,
                    # Every array (frame times too) as its own array node: arrays
                    # of up to 16 elements would otherwise go into the SQL table
                    # and read back as strings.
                    max_array_size=0,
                )
            self._primary(name, doc)
        except Exception as err:
            self.failed = True
            self._primary = None
            self._start_backup(name, f"{type(err).__name__}: {err}")
            return
        if name == "stop":
            self._lines.clear()

    def _start_backup(self, name: str, reason: str) -> None:
        reason = reason.splitlines()[0] if reason else "no reason given"
        if self._backup_directory is None:
            logger.error(
                "Tiled refused the %r document of raw run %s (%s) and there is no "
                "backup directory: the rest of this run is NOT stored",
                name,
                self.uid,
                reason,
            )
            self._lines.clear()
            return
        self._backup = BackupFile(self._backup_directory, self.uid)
        for line in self._lines:
            self._backup.write_line(line)
        self._lines.clear()
        logger.error(
            "Tiled refused the %r document of raw run %s (%s): the whole run goes "
            "to %s; replay it with `xfusion-bluesky replay` once Tiled is back",
            name,
            self.uid,
            reason,
            self._backup.path,
        )

    def close(self) -> None:
        """End the run: close its backup file, if any."""
        if self._backup is not None:
            self._backup.close()
            logger.warning(
                "raw run %s is complete in its backup %s", self.uid, self._backup.path
            )
            self._backup = None


class RawWriter:
    """RunEngine callback: each raw run to Tiled, or whole to its backup file.

    Parameters
    ----------
    raw : tiled container
        Usually ``TiledConnection.raw`` (a CatalogOfBlueskyRuns).
    backup_directory : str or Path, optional
        Where a run goes as ``<uid>.jsonl`` if writing it to Tiled fails; None
        logs the loss instead.
    batch_size : int
        Documents buffered by TiledWriter before a write.
    """

    def __init__(
        self,
        raw: Any,
        *,
        backup_directory: str | Path | None = None,
        batch_size: int = 1,
    ) -> None:
        try:
            # Fetched once now, while Tiled answers: TiledWriter asks for it, and a
            # run started during an outage must fail over, not fail here.
            raw = raw.include_data_sources()
        except Exception:
            logger.warning("Tiled does not answer yet; raw runs may go to backup")
        self.raw = raw
        self.backup_directory = (
            None if backup_directory is None else Path(backup_directory)
        )
        self.batch_size = int(batch_size)
        self._runs: dict[str, _RunWriter] = {}
        # Which run a descriptor / (stream) resource belongs to, for routing.
        self._owner: dict[str, str] = {}
        #: When a write to Tiled last failed (epoch s); None while Tiled answers.
        self.down_since: float | None = None

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        """Take one document from the RunEngine; never raise."""
        try:
            self._route(name, doc)
        except Exception:  # the RunEngine must never stop for the catalog
            logger.exception("raw writer failed on a %r document", name)

    def _route(self, name: str, doc: dict[str, Any]) -> None:
        if name == "start":
            uid = str(doc["uid"])
            run = self._runs[uid] = _RunWriter(
                self.raw, uid, self.backup_directory, self.batch_size
            )
            if self.down_since is not None and self.backup_directory is not None:
                # Tiled's client retries a refused request for up to 45 s: while
                # the server is known down, one quick look spares each new run that.
                if self._tiled_answers():
                    self.down_since = None
                else:
                    run.fail_over(
                        "Tiled has not answered since "
                        + time.strftime("%H:%M:%S", time.localtime(self.down_since))
                    )
            self._feed(run, name, doc)
            return
        run_uid = self._run_of(name, doc)
        owner = self._runs.get(run_uid) if run_uid else None
        if owner is None:
            logger.error("raw writer: a %r document of no open run dropped", name)
            return
        if name in ("descriptor", "resource", "stream_resource"):
            self._owner[str(doc["uid"])] = owner.uid
        try:
            self._feed(owner, name, doc)
        finally:
            if name == "stop":
                owner.close()
                del self._runs[owner.uid]
                self._owner = {k: v for k, v in self._owner.items() if v != owner.uid}

    def _feed(self, run: _RunWriter, name: str, doc: dict[str, Any]) -> None:
        was_failed = run.failed
        run(name, doc)
        if run.failed and not was_failed and self.down_since is None:
            self.down_since = time.time()

    def _tiled_answers(self) -> bool:
        """Tell whether Tiled answers a request at all within a few seconds."""
        try:
            response = self.raw.context.http_client.get(
                self.raw.uri, timeout=PROBE_TIMEOUT_S
            )
        except Exception:
            return False
        return int(response.status_code) < 500

    def _run_of(self, name: str, doc: dict[str, Any]) -> str | None:
        if name in ("stop", "descriptor"):
            return str(doc["run_start"])
        if name in ("resource", "stream_resource") and doc.get("run_start"):
            return str(doc["run_start"])
        link = {
            "event": "descriptor",
            "event_page": "descriptor",
            "stream_datum": "stream_resource",
            "datum": "resource",
            "datum_page": "resource",
        }.get(name)
        if link is not None:
            return self._owner.get(str(doc[link]))
        # A resource without run_start: the only open run, if there is one.
        return next(iter(self._runs)) if len(self._runs) == 1 else None


def make_raw_writer(
    raw: Any, *, backup_directory: str | Path | None = None, batch_size: int = 1
) -> RawWriter:
    """Return the RunEngine callback that writes raw runs into ``raw``.

    Parameters
    ----------
    raw : tiled container
        Usually ``TiledConnection.raw`` (a CatalogOfBlueskyRuns).
    backup_directory : str or Path, optional
        Where a run goes as ``<uid>.jsonl`` (whole, one document per line) if
        writing it to Tiled fails.
    batch_size : int
        Documents buffered before a write; 1 makes each burst readable as soon as
        its event is emitted (live viewers, and the stop document is not held up
        by a batch).
    """
    return RawWriter(raw, backup_directory=backup_directory, batch_size=batch_size)


def subscribe_raw_writer(
    RE: RunEngine,
    raw: Any,
    *,
    backup_directory: str | Path | None = None,
    batch_size: int = 1,
) -> int:
    """Subscribe a :func:`make_raw_writer` callback to ``RE``; return the token."""
    writer = make_raw_writer(
        raw, backup_directory=backup_directory, batch_size=batch_size
    )
    token = RE.subscribe(writer)
    logger.info(
        "raw runs go to Tiled %s%s",
        getattr(raw, "uri", raw),
        f" (backup: {backup_directory})" if backup_directory else "",
    )
    return int(token)
