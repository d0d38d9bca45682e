"""Give an orphaned raw run an outcome: a ``failed`` derived run that says why.

A raw run is orphaned when it asked for fusion, has had no stop document for
longer than a timeout (:data:`ORPHAN_AFTER_S`) and has no backup to replay: its
RunEngine died mid-run, or Tiled failed and the backup is elsewhere. Without a
stop document it can never be fused, so the worker marks it with
:func:`mark_orphan`: a derived run with ``exit_status="fail"``, a reason naming
the time since when no stop came, and ``fusion.orphaned: true``. The marker is a
final outcome only while the raw run stays unfinished; if its backup is
replayed later, :func:`~xfusion_bluesky.catalog.progress.pending_runs` lists the
run again and it gets fused.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from xfusion_bluesky.catalog.connect import Catalogs
from xfusion_bluesky.catalog.derived import fusion_key, write_failed_run
from xfusion_bluesky.catalog.progress import finished_outcomes

__all__ = ["ORPHAN_AFTER_S", "OrphanedRun", "mark_orphan", "orphaned_runs"]

logger = logging.getLogger(__name__)

#: Seconds without a stop document after which a raw run is taken as orphaned.
ORPHAN_AFTER_S = 3600.0

#: ``(uid, start document)`` of an orphaned raw run.
OrphanedRun = tuple[str, dict[str, Any]]


def orphaned_runs(
    catalogs: Catalogs,
    *,
    after_s: float = ORPHAN_AFTER_S,
    since: float | None = None,
    now: float | None = None,
) -> list[OrphanedRun]:
    """List fusion-requested raw runs with no stop document after ``after_s``.

    Parameters
    ----------
    catalogs : Catalogs
        From :func:`~xfusion_bluesky.catalog.connect.open_catalogs`.
    after_s : float
        A run started longer ago than this without a stop document is orphaned.
    since : float, optional
        Only raw runs started at or after this time (epoch s).
    now : float, optional
        The current time (epoch s); default ``time.time()``.

    Returns
    -------
    list of (str, dict)
        Uid and start document of each orphaned run without any finished derived
        run (a marker included), oldest first.
    """
    from tiled.queries import Eq, Key

    now = time.time() if now is None else now
    runs = catalogs.raw.search(Eq("start.fusion.requested", True))
    runs = runs.search(Key("start.time") < now - after_s)
    if since is not None:
        runs = runs.search(Key("start.time") >= since)
    outcomes = finished_outcomes(catalogs, since=since)
    found = []
    for node in runs.values():
        metadata = node.metadata
        start = dict(metadata.get("start") or {})
        uid = str(start.get("uid"))
        if not metadata.get("stop") and sum(outcomes.get(uid, (0, 0))) == 0:
            found.append((float(start.get("time") or 0.0), uid, start))
    return [(uid, start) for _, uid, start in sorted(found, key=lambda x: x[:2])]


def mark_orphan(
    catalogs: Catalogs,
    uid: str,
    start: dict[str, Any],
    *,
    after_s: float,
    now: float | None = None,
) -> str:
    """Write the ``failed`` derived run that marks raw run ``uid`` as orphaned.

    Parameters
    ----------
    catalogs : Catalogs
        Where to write (``catalogs.fused``).
    uid : str
        The raw run.
    start : dict
        Its start document (scan id, sample and requested method are copied).
    after_s : float
        The timeout that was exceeded (recorded).
    now : float, optional
        The current time (epoch s).

    Returns
    -------
    str
        The marker's uid.
    """
    now = time.time() if now is None else now
    started = float(start.get("time") or 0.0)
    requested = start.get("fusion") or {}
    since = datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds")
    reason = (
        f"orphaned: the raw run has had no stop document since it started at "
        f"{since} ({now - started:.0f} s, more than {after_s:g} s) and no backup "
        "of it was found; replay its backup (xfusion-bluesky replay) to fuse it"
    )
    fusion = {
        "method": requested.get("method"),
        "lr_separation": requested.get("lr_separation"),
        "model": {"name": None, "path": None, "sha256": None},
        "key": fusion_key(uid, "orphaned", None),
        "orphaned": True,
        "orphaned_since": started,
        "orphaned_after_s": float(after_s),
        "started": now,
    }
    return write_failed_run(
        catalogs.fused, raw_uid=uid, fusion=fusion, reason=reason, raw_start=start
    )
