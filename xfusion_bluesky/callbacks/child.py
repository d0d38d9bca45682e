"""The fusion worker's child process: its entry point and its log/event channel.

:class:`~xfusion_bluesky.callbacks.worker.FusionWorker` spawns :func:`child_main`
(:func:`spawn_child`) with fresh :func:`open_channels`; the child runs
:func:`~xfusion_bluesky.callbacks.loop.serve` and sends its log records and
outcomes back through one queue, which the parent re-emits, saying each outcome
in one line of its own (:func:`log_outcome`, also for a worker thread).
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

from xfusion_bluesky.callbacks.loop import FusionOutcome, WorkerConfig, serve

__all__ = [
    "RESTART_WINDOW_S",
    "RestartPolicy",
    "child_main",
    "close_queues",
    "log_outcome",
    "open_channels",
    "spawn_child",
]

#: The worker's logger: outcomes are said there, in the parent.
logger = logging.getLogger("xfusion_bluesky.callbacks.worker")

#: Child deaths counted against ``max_restarts``: those of the last hour. A run
#: that kills every child it meets must not make the worker loop for ever.
RESTART_WINDOW_S = 3600.0


class RestartPolicy:
    """Replace a dead child at most ``max_restarts`` times per hour, then give up."""

    def __init__(self, max_restarts: int) -> None:
        self.max_restarts = max_restarts
        self.gave_up = False
        self._deaths: list[float] = []

    def refuse(self, exitcode: int | None) -> str | None:
        """Count one more death; return why no child replaces it, or None."""
        now = time.monotonic()
        self._deaths = [t for t in self._deaths if now - t < RESTART_WINDOW_S]
        self._deaths.append(now)
        if len(self._deaths) <= self.max_restarts:
            return None
        self.gave_up = True
        return (
            f"the fusion worker process died {len(self._deaths)} times "
            f"within an hour (exit code {exitcode}): not restarted"
        )


def open_channels() -> tuple[Any, Any, Any]:
    """Return a new ``(jobs, stop, events)``: two queues and an event.

    Fresh ones for every child: one killed while holding a queue's or an
    event's lock would leave it locked for ever.
    """
    context = multiprocessing.get_context("spawn")
    return context.Queue(), context.Event(), context.Queue()


def spawn_child(config: WorkerConfig, jobs: Any, stop: Any, events: Any) -> Any:
    """Start :func:`child_main` in a spawned daemon process; return the process.

    The child logs at this process's ``xfusion_bluesky`` level.
    """
    level = logging.getLogger("xfusion_bluesky").getEffectiveLevel()
    process = multiprocessing.get_context("spawn").Process(
        target=child_main,
        args=(config, jobs, stop, events, level),
        name="xfusion-fusion-worker",
        daemon=True,  # ends with the RunEngine's process
    )
    with _main_not_rerun():
        process.start()
    return process


@contextlib.contextmanager
def _main_not_rerun() -> Iterator[None]:
    """Keep ``spawn`` from running the main module again in the child.

    The child needs nothing from it (:func:`child_main` lives here), and running
    it again does harm: in IPython it is the startup file being run (the
    profile's, which then failed in the child on a name defined by an earlier
    file, killing the first child every time), in a script its top level.
    ``spawn`` reads ``__spec__`` and ``__file__`` only while ``start()`` runs.
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    spec = getattr(main, "__spec__", None)
    path = main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__spec__ = spec
        if path is not None:
            main.__file__ = path


def log_outcome(outcome: FusionOutcome) -> None:
    """Log one line for a run's outcome (INFO; WARNING when not fused).

    Said by the parent, at its own level: a child at a quieter level (the CLI's
    default) still has each run reported.
    """
    frames = outcome.frames
    log = logger.info if outcome.status in ("success", "running") else logger.warning
    log(
        "fusion of raw run %s: %s%s%s in %.1f s (%s)%s",
        outcome.raw_uid[:8],
        outcome.status,
        f", derived run {outcome.derived_uid[:8]}" if outcome.derived_uid else "",
        f", {frames} frames" if frames is not None else "",
        outcome.wall_s,
        outcome.trigger,
        f": {outcome.reason}" if outcome.reason else "",
    )


def close_queues(*channels: Any) -> None:
    """Close multiprocessing queues without waiting to flush what nobody reads."""
    for channel in channels:
        channel.cancel_join_thread()
        channel.close()


class _EventHandler(logging.handlers.QueueHandler):
    """Send log records to the parent as ``("log", record)`` events."""

    def enqueue(self, record: logging.LogRecord) -> None:
        self.queue.put_nowait(("log", record))


def child_main(
    config: WorkerConfig, jobs: Any, stop: Any, events: Any, level: int
) -> None:
    """Entry point of the spawned worker process."""
    # Ctrl-C in IPython (pausing a scan) signals the whole process group; the
    # worker must not die of it mid-run. close() stops it through ``stop``.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    root = logging.getLogger()
    root.handlers[:] = [_EventHandler(events)]
    root.setLevel(logging.WARNING)
    logging.getLogger("xfusion_bluesky").setLevel(level)
    try:
        serve(config, jobs, stop, lambda kind, payload: events.put((kind, payload)))
    finally:
        if os.getppid() != config.parent_pid:
            # Nobody reads the events any more: exiting must not wait for the
            # full pipe to drain (an orphan hung there after its parent crashed).
            events.cancel_join_thread()
    _exit_now(events)


def _exit_now(events: Any) -> None:
    """End a child that stopped cleanly without finalising its interpreter.

    A spawned child exits through ``sys.exit``, and tearing down an interpreter
    that imported torch and Tiled took about 1 s: longer than the session's exit
    timeout, so every IPython exit ended by terminating an idle worker. Its
    events are flushed first; nothing else in the child holds unsaved state.
    """
    events.close()
    events.join_thread()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)
