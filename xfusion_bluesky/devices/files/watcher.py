"""wait_for_new_file(): poll a directory for a new file that has stopped growing.

Vendor software writes a burst into a directory it is set to; nothing tells us
when. So the directory is polled: a file counts once its name matches the
pattern, it was not there when the camera was armed, it was modified after the
arming, and its size has stayed the same for ``settle_s``. Polling (not inotify)
works on the network shares such software writes to.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from xfusion_bluesky.errors import RecordingError

__all__ = [
    "Snapshot",
    "WatchCancelledError",
    "file_stamp",
    "snapshot",
    "wait_for_change",
    "wait_for_new_file",
]

#: A file's mtime may be this much before the arming (coarse file-system clocks).
MTIME_SLACK_S = 1.0


class WatchCancelledError(Exception):
    """The wait was cancelled (the camera was disarmed); not an error to report."""


@dataclass(frozen=True)
class Snapshot:
    """The matching files in a directory when a camera was armed, and when."""

    directory: Path
    pattern: str
    names: frozenset[str]
    armed_at: float


def _matches(directory: Path, pattern: str) -> Iterable[Path]:
    # Hidden files are the vendor's (or our conversion's) temporaries.
    return (p for p in directory.glob(pattern) if not p.name.startswith("."))


def snapshot(directory: str | Path, pattern: str) -> Snapshot:
    """Record the files matching ``pattern`` in ``directory`` now (at arming).

    Raises
    ------
    RecordingError
        The directory does not exist or cannot be listed.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise RecordingError(
            f"watched directory {directory} does not exist; create it or set the "
            "camera's watch_dir to where the vendor software saves its recordings"
        )
    try:
        names = frozenset(p.name for p in _matches(directory, pattern))
    except OSError as err:
        raise RecordingError(f"watched directory {directory}: {err}") from err
    return Snapshot(directory, pattern, names, time.time())


def wait_for_new_file(
    before: Snapshot,
    *,
    timeout_s: float,
    settle_s: float = 0.2,
    poll_s: float = 0.05,
    cancel: threading.Event | None = None,
) -> Path:
    """Wait for a new matching file whose size has stopped changing; return it.

    Parameters
    ----------
    before : Snapshot
        The directory as it was when the camera was armed (:func:`snapshot`).
    timeout_s : float
        Longest wait after the arming, in seconds.
    settle_s : float
        The file's size must stay the same this long.
    poll_s : float
        Polling interval.
    cancel : threading.Event, optional
        Set to stop waiting (raises :class:`WatchCancelledError`).

    Returns
    -------
    Path
        The oldest new file (by modification time), if several appeared.

    Raises
    ------
    RecordingError
        No new file settled within ``timeout_s`` of the arming; the message says
        what was watched and what was seen.
    WatchCancelledError
        ``cancel`` was set.
    """
    deadline = before.armed_at + timeout_s
    seen: dict[Path, tuple[int, float]] = {}  # path -> (size, since when)
    while True:
        if cancel is not None and cancel.is_set():
            raise WatchCancelledError
        now = time.time()
        candidates = []
        for path in _matches(before.directory, before.pattern):
            if path.name in before.names:
                continue
            try:
                stat = path.stat()
            except OSError:  # renamed or deleted between glob and stat
                continue
            if stat.st_mtime < before.armed_at - MTIME_SLACK_S:
                continue
            size, since = seen.get(path, (-1, now))
            if stat.st_size != size:
                seen[path] = (stat.st_size, now)
            elif stat.st_size > 0 and now - since >= settle_s:
                candidates.append((stat.st_mtime, os.fspath(path), path))
        if candidates:
            return min(candidates)[2]
        if now >= deadline:
            raise RecordingError(_timeout_message(before, timeout_s, seen))
        wait = min(poll_s, max(deadline - now, 0.0))
        if cancel is not None:
            if cancel.wait(wait):
                raise WatchCancelledError
        else:
            time.sleep(wait)


def file_stamp(path: Path) -> tuple[int, int] | None:
    """Return ``(size, mtime_ns)`` of ``path``, None if it cannot be seen."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_size, stat.st_mtime_ns)


def wait_for_change(
    path: Path,
    stamp: tuple[int, int] | None,
    *,
    deadline: float,
    settle_s: float,
    poll_s: float,
    cancel: threading.Event,
) -> bool:
    """Wait until ``path`` differs from ``stamp`` and settles again.

    Returns
    -------
    bool
        True once it changed and then stayed the same for ``settle_s``; False at
        ``deadline`` (epoch s).

    Raises
    ------
    WatchCancelledError
        ``cancel`` was set.
    """
    changed_at: float | None = None
    last = stamp
    while time.time() < deadline:
        if cancel.wait(poll_s):
            raise WatchCancelledError
        now = file_stamp(path)
        if now != last:
            last, changed_at = now, time.time()
        elif changed_at is not None and time.time() - changed_at >= settle_s:
            return True
    return False


def _timeout_message(
    before: Snapshot, timeout_s: float, seen: dict[Path, tuple[int, float]]
) -> str:
    where = f"{before.directory}/{before.pattern}"
    if not seen:
        return (
            f"no new file matching {where} within {timeout_s:g} s of arming: the "
            "vendor software did not save the burst (not armed? saving elsewhere "
            "or under another name? trigger not cabled?)"
        )
    files = ", ".join(f"{p.name} ({size} bytes)" for p, (size, _) in seen.items())
    return (
        f"new file(s) matching {where} still empty or growing {timeout_s:g} s after "
        f"arming: {files}; raise the camera's timeout_s for large bursts"
    )
