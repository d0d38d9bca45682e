"""Glue to the RunEngine: a callback queues finished runs, a worker fuses them.

``RE.subscribe(FusionCallback(FusionWorker(uri).start()))`` fuses every run whose
start document requests it, off the RunEngine (``setup(..., fusion="process")``
does exactly that); ``TiledFeed`` and ``ZmqFeed`` feed a worker on another host.
Importing this package does not import torch: the worker's loop does, in its own
process.
"""

from xfusion_bluesky.callbacks.feeds import TiledFeed, ZmqFeed
from xfusion_bluesky.callbacks.fusion import FusionCallback, fusion_requested
from xfusion_bluesky.callbacks.loop import FusionOutcome, pending_runs
from xfusion_bluesky.callbacks.worker import FusionWorker

__all__ = [
    "FusionCallback",
    "FusionOutcome",
    "FusionWorker",
    "TiledFeed",
    "ZmqFeed",
    "fusion_requested",
    "pending_runs",
]
