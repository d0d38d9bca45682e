"""What a wait for a derived run shows and says: progress, or why none came.

``fetch_fused(..., wait=...)`` polls the catalog. While the worker writes the
derived run, :class:`WaitProgress` shows its frames written of the total (a bar
on a terminal, an INFO line every few seconds); when the wait runs out,
:func:`not_found_message` tells a fusion that is slow apart from one that never
started, so nobody restarts a worker that is busy.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from xfusion_bluesky.stored_format import raw_start_v1

if TYPE_CHECKING:
    from xfusion_bluesky.catalog.queries import FusedRun

__all__ = [
    "PROGRESS_EVERY_S",
    "RUNNING_POLL_S",
    "WaitProgress",
    "expected_frames",
    "not_found_message",
]

logger = logging.getLogger("xfusion_bluesky.catalog.queries")

#: Seconds between two progress lines in the log while waiting for a fusion.
PROGRESS_EVERY_S = 10.0
#: Seconds between two looks at a running fusion: each look is a few requests to
#: the server the worker writes to (in thread mode, in this very process).
RUNNING_POLL_S = 2.0


def expected_frames(run: FusedRun) -> int | None:
    """Return the fused frames ``run``'s raw run makes: UHS frames per burst × bursts.

    Parameters
    ----------
    run : FusedRun
        A derived run.

    Returns
    -------
    int or None
        None when the raw run's documents do not say, or it cannot be read.
    """
    try:
        metadata = run.raw.metadata
    except KeyError:  # the raw run is gone, or hidden from this key
        return None
    start = raw_start_v1(dict(metadata.get("start") or {}))
    per_burst = (start.get("uhs") or {}).get("frames_per_burst")
    stop = metadata.get("stop") or {}
    bursts = (stop.get("num_events") or {}).get("primary", start.get("num_points"))
    if not per_burst or bursts is None:
        return None
    return int(per_burst) * int(bursts)


class WaitProgress:
    """Show a running fusion's frames written of the total while a caller waits.

    Parameters
    ----------
    progress : bool, optional
        Show a tqdm bar; None: only on a terminal. The INFO lines come either way.
    """

    def __init__(self, progress: bool | None) -> None:
        self.progress = progress
        self.bar: Any = None
        self.logged_at = -float("inf")
        self.last: tuple[str, int] | None = None
        self.totals: dict[str, int | None] = {}

    def show(self, run: FusedRun) -> None:
        """Report ``run``'s progress: a line when it changed (at most every few s)."""
        if run.uid not in self.totals:  # the raw run is read once per derived run
            self.totals[run.uid] = expected_frames(run)
        written, total = run.frames_written, self.totals[run.uid]
        now = time.monotonic()
        changed = (run.uid, written) != self.last
        if self.last is None or (changed and now - self.logged_at >= PROGRESS_EVERY_S):
            logger.info(
                "%s fusion of raw run %s is running (derived run %s): %s frames "
                "written; waiting",
                run.method,
                run.raw_uid,
                run.uid,
                _of(written, total),
            )
            self.logged_at = now
        self.last = (run.uid, written)
        if self.bar is None:
            from tqdm import tqdm

            disable = None if self.progress is None else not self.progress
            self.bar = tqdm(
                total=total, desc=f"{run.method} fusion", unit="frame", disable=disable
            )
        self.bar.update(written - self.bar.n)

    def close(self) -> None:
        """End the bar, if one was shown."""
        if self.bar is not None:
            self.bar.close()


def not_found_message(
    raw_uid: str,
    runs: list[FusedRun],
    candidates: list[FusedRun],
    method: str,
    wait: float | None,
) -> str:
    """Say why a lookup of raw run ``raw_uid`` found no finished derived run.

    Parameters
    ----------
    raw_uid : str
        The raw run.
    runs : list of FusedRun
        All its derived runs.
    candidates : list of FusedRun
        Those of the method looked for (all unfinished, if any).
    method : str
        The method looked for.
    wait : float, optional
        How long the caller waited.

    Returns
    -------
    str
        A running fusion and its progress (wait longer); the methods there are
        (name one); or no derived run at all (is a worker running?).
    """
    waited = "" if wait is None else f" within {wait:g} s"
    if candidates:
        run = candidates[-1]
        return (
            f"raw run {raw_uid}: its {run.method} fusion did not finish{waited}; "
            f"derived run {run.uid} is running: "
            f"{_of(run.frames_written, expected_frames(run))} frames written. "
            "The fusion is slow, not lost: wait longer (a larger wait=) or fetch it "
            "again later"
        )
    if runs:
        methods = ", ".join(dict.fromkeys(run.method for run in runs))
        return (
            f"raw run {raw_uid} has no {method} derived run{waited}; it has: "
            f"{methods} (name one with method=, CLI --method)"
        )
    return (
        f"raw run {raw_uid} has no derived run{waited}: is a fusion worker running? "
        "(`xfusion-bluesky worker` or `xfusion-bluesky fuse UID`)"
    )


def _of(written: int, total: int | None) -> str:
    return f"{written} of {total}" if total else str(written)
