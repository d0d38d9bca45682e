"""Subscribes bluesky-tiled-plugins' TiledWriter for raw runs.

Raw runs are written only by the maintained ``bluesky_tiled_plugins.TiledWriter``
(not the older copy in ``bluesky.callbacks.tiled_writer``): it registers the
cameras' HDF5 files as external data from their StreamResource/StreamDatum
documents and copies nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bluesky import RunEngine
from bluesky_tiled_plugins import TiledWriter

__all__ = ["make_raw_writer", "subscribe_raw_writer"]

logger = logging.getLogger(__name__)


def make_raw_writer(
    raw: Any, *, backup_directory: str | Path | None = None, batch_size: int = 1
) -> TiledWriter:
    """Return a TiledWriter into the raw-run container ``raw``.

    Parameters
    ----------
    raw : tiled container
        Usually ``TiledConnection.raw`` (a CatalogOfBlueskyRuns).
    backup_directory : str or Path, optional
        Where the documents of a run go as JSONL if writing to Tiled fails.
    batch_size : int
        Documents buffered before a write; 1 makes each burst readable as soon as
        its event is emitted (live viewers, and the stop document is not held up
        by a batch).
    """
    return TiledWriter(
        raw,
        backup_directory=None if backup_directory is None else str(backup_directory),
        batch_size=batch_size,
        # Every array (frame times too) as its own array node: arrays of up to 16
        # elements would otherwise go into the SQL table and read back as strings.
        max_array_size=0,
    )


def subscribe_raw_writer(
    RE: RunEngine,
    raw: Any,
    *,
    backup_directory: str | Path | None = None,
    batch_size: int = 1,
) -> int:
    """Subscribe a :func:`make_raw_writer` TiledWriter to ``RE``; return the token."""
    writer = make_raw_writer(
        raw, backup_directory=backup_directory, batch_size=batch_size
    )
    token = RE.subscribe(writer)
    logger.info("raw runs go to Tiled %s", getattr(raw, "uri", raw))
    return int(token)
