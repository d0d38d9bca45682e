"""The fusion worker's child process: its entry point and its log/event channel.

:class:`~xfusion_bluesky.callbacks.worker.FusionWorker` spawns :func:`child_main`;
the child runs :func:`~xfusion_bluesky.callbacks.loop.serve` and sends its log
records and outcomes back through one queue, which the parent re-emits.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import signal
from typing import Any

from xfusion_bluesky.callbacks.loop import WorkerConfig, serve

__all__ = ["child_main", "close_queues"]


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
