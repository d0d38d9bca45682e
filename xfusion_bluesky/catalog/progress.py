"""Which raw runs are fused: the idempotency lookup and the worker's catch-up query.

A fusion is identified by its key (raw uid, method, model sha256, parameters; see
:func:`~xfusion_bluesky.catalog.derived.fusion_key`). :func:`existing_fusion`
finds the derived run with that key, replacing one whose writer died mid-run;
:func:`pending_runs` lists the raw runs that asked for fusion and have no
finished derived run. Both read derived runs of every stored format.

An orphan marker (a ``failed`` derived run with ``fusion.orphaned: true``, see
:mod:`~xfusion_bluesky.catalog.orphans`) is the outcome of a raw run only while
that run has no stop document: once its backup is replayed, the run is pending
again and gets fused.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

from xfusion_bluesky.catalog.connect import Catalogs
from xfusion_bluesky.catalog.queries import FusedRun, find_by_key
from xfusion_bluesky.stored_format import DERIVED_LINK_KEYS

__all__ = [
    "ORPHAN_MARKER",
    "STALE_AFTER_S",
    "existing_fusion",
    "finished_outcomes",
    "is_abandoned",
    "pending_runs",
    "process_gone",
]

logger = logging.getLogger(__name__)

#: An unfinished derived run older than this (s) whose writer cannot be checked
#: is taken as abandoned and replaced.
STALE_AFTER_S = 3600.0
#: Every ``exit_status`` a stop document can hold: a derived run with one is final.
_EXIT_STATUSES = ["success", "fail", "abort"]
#: Start-document key (true) of a derived run that only marks an orphaned raw run.
ORPHAN_MARKER = "fusion.orphaned"


def existing_fusion(
    catalogs: Catalogs, key: str, *, stale_after_s: float = STALE_AFTER_S
) -> FusedRun | None:
    """Return the finished or live derived run with fusion ``key``, or None.

    An unfinished run whose writer is gone (:func:`is_abandoned`) is deleted so
    the fusion can be done again; finished runs are never touched.
    """
    found = None
    for fused in find_by_key(catalogs, key):
        if fused.finished:
            found = found or fused
        elif is_abandoned(fused, stale_after_s):
            logger.warning(
                "derived run %s was abandoned mid-fusion (writer %s): replacing it",
                fused.uid,
                fused.metadata.get("worker"),
            )
            fused.node.delete(recursive=True, external_only=False)
        else:
            found = found or fused
    return found


def is_abandoned(fused: FusedRun, stale_after_s: float = STALE_AFTER_S) -> bool:
    """Tell whether an unfinished derived run's writer is gone.

    On this host the writer's pid is checked; elsewhere the run is abandoned once
    it is older than ``stale_after_s``.
    """
    worker = fused.metadata.get("worker") or {}
    gone = process_gone(worker.get("host"), worker.get("pid"))
    if gone is not None:
        return gone
    started = float(fused.fusion.get("started") or 0)
    return time.time() - started > stale_after_s


def process_gone(host: str | None, pid: int | str | None) -> bool | None:
    """Tell whether process ``pid`` of ``host`` has ended; None: cannot tell.

    Only a process of this host can be checked. This process counts as gone: a
    writer that asks whether its own run is abandoned is not writing it.
    """
    if host != socket.gethostname() or not pid:
        return None
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return None  # another user's live process
    return False


def pending_runs(catalogs: Catalogs, *, since: float | None = None) -> list[str]:
    """List fusion-requested, finished raw runs with no finished fusion.

    An orphan marker is no fusion: a raw run marked while it had no stop
    document and replayed since is listed.

    Parameters
    ----------
    catalogs : Catalogs
        From :func:`~xfusion_bluesky.catalog.connect.open_catalogs`.
    since : float, optional
        Only raw runs started at or after this time (epoch s).

    Returns
    -------
    list of str
        Raw uids, oldest first. A run whose derived run is still being written is
        listed: its writer may have been killed (``fuse_run`` decides).
    """
    from tiled.queries import Eq, Key

    requested = catalogs.raw.search(Eq("start.fusion.requested", True))
    if since is not None:
        requested = requested.search(Key("start.time") >= since)
    outcomes = finished_outcomes(catalogs, since=since)
    found: list[tuple[float, str]] = []
    for node in requested.values():
        metadata = node.metadata
        start = metadata.get("start") or {}
        uid = str(start.get("uid"))
        # A run without a stop is still being written (or its RunEngine died:
        # see catalog.orphans). An orphan marker does not count once it has one.
        if metadata.get("stop") and outcomes.get(uid, (0, 0))[0] == 0:
            found.append((float(start.get("time") or 0.0), uid))
    return [uid for _, uid in sorted(found)]


def finished_outcomes(
    catalogs: Catalogs, *, since: float | None = None
) -> dict[str, tuple[int, int]]:
    """Count the finished derived runs of each raw run.

    Parameters
    ----------
    catalogs : Catalogs
        From :func:`~xfusion_bluesky.catalog.connect.open_catalogs`.
    since : float, optional
        Only derived runs started at or after this time (epoch s).

    Returns
    -------
    dict
        ``{raw uid: (fusions, orphan markers)}``: finished derived runs that are
        fusion outcomes, and those that only mark the raw run as orphaned.
    """
    from tiled.queries import Eq, In, Key

    finished = catalogs.fused.search(In("stop.exit_status", _EXIT_STATUSES))
    if since is not None:
        finished = finished.search(Key("start.time") >= since)
    every = _counts(finished)
    markers = _counts(finished.search(Eq(f"start.{ORPHAN_MARKER}", True)))
    return {
        uid: (count - markers.get(uid, 0), markers.get(uid, 0))
        for uid, count in every.items()
    }


def _counts(runs: Any) -> dict[str, int]:
    """Count derived runs per raw uid, over every stored format's link key."""
    links = [f"start.{key}" for key in DERIVED_LINK_KEYS]
    distinct = runs.distinct(*links, counts=True)["metadata"]
    counts: dict[str, int] = {}
    for link in links:
        for item in distinct.get(link) or []:
            uid = str(item["value"])
            counts[uid] = counts.get(uid, 0) + int(item.get("count") or 0)
    return counts
