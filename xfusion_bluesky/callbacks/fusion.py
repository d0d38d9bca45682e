"""FusionCallback: on a stop document, queue the run uid for a worker; never raises.

The callback sits on the RunEngine (``RE.subscribe(FusionCallback(worker))``) or on
a 0MQ ``RemoteDispatcher`` and does two cheap things per run: it notes at
``start`` whether the run asked for fusion (``start["fusion"]["requested"]``) and
at ``stop`` queues the uid with a non-blocking put. Everything else — reading the
run back from Tiled, fusing, writing the derived run — happens in the worker, off
the RunEngine's thread. A run that did not end with ``exit_status="success"`` is
handed over too: the worker fuses the bursts it recorded and lists the missing
ones in the derived run (or records a ``failed`` one when none was recorded),
so that decision is found where a result would be. A worker that
can take no runs (stopped, gave up) gets none: the callback says so in a warning.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

__all__ = ["FusionCallback", "Submitter", "fusion_requested"]

logger = logging.getLogger(__name__)

#: Starts remembered at most; a RunEngine that crashed between start and stop
#: must not grow the table for ever.
MAX_OPEN_RUNS = 1000


class Submitter(Protocol):
    """What the callback hands uids to: a :class:`~.worker.FusionWorker`.

    One with ``accepting`` (and ``state``, ``error``) is asked first whether it
    will take the run.
    """

    def submit(self, uid: str) -> None:
        """Queue raw run ``uid`` for fusion without blocking."""


def fusion_requested(start: dict[str, Any]) -> bool:
    """Tell whether a start document asks for automatic fusion.

    Parameters
    ----------
    start : dict
        A run's start document; ``dual_camera_scan`` writes
        ``fusion = {"requested": True, "method": ..., "lr_separation": ...}``.
    """
    fusion = start.get("fusion")
    return isinstance(fusion, dict) and fusion.get("requested") is True


class FusionCallback:
    """Queue every finished fusion-requested run for a worker; never raise.

    Parameters
    ----------
    worker : Submitter
        Has a non-blocking ``submit(uid)`` (a started
        :class:`~xfusion_bluesky.callbacks.worker.FusionWorker`).
    submit_unseen : bool
        Hand over a stop whose start this callback never saw (a 0MQ subscriber
        that joined mid-run): the worker reads the start document from Tiled and
        skips the run if it did not ask for fusion.

    Notes
    -----
    The RunEngine stops a run when a callback raises, so ``__call__`` catches
    every exception and logs it: a broken worker costs the fused result, never
    the scan.

    Examples
    --------
    >>> worker = FusionWorker(bl.connection.uri).start()  # doctest: +SKIP
    >>> bl.RE.subscribe(FusionCallback(worker))  # doctest: +SKIP
    """

    def __init__(self, worker: Submitter, *, submit_unseen: bool = True) -> None:
        self.worker = worker
        self.submit_unseen = submit_unseen
        # run uid -> whether its start asked for fusion
        self._requested: dict[str, bool] = {}

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        """Take one document; act on ``start`` and ``stop`` only."""
        try:
            if name == "start":
                self._start(doc)
            elif name == "stop":
                self._stop(doc)
        except Exception:  # the RunEngine boundary: log, never raise (STYLE §5)
            logger.exception("fusion callback failed on a %r document", name)

    def _start(self, doc: dict[str, Any]) -> None:
        if len(self._requested) >= MAX_OPEN_RUNS:
            self._requested.pop(next(iter(self._requested)))
        self._requested[str(doc["uid"])] = fusion_requested(doc)

    def _stop(self, doc: dict[str, Any]) -> None:
        uid = str(doc["run_start"])
        requested = self._requested.pop(uid, None)
        if requested is False:
            logger.debug("run %s did not request fusion", uid[:8])
            return
        if requested is None and not self.submit_unseen:
            logger.debug("run %s: start not seen, not handed over", uid[:8])
            return
        status = doc.get("exit_status")
        if not getattr(self.worker, "accepting", True):
            self._refused(uid)
            return
        self.worker.submit(uid)
        if status == "success":
            logger.info("run %s finished: queued for fusion", uid[:8])
        else:
            # The worker fuses what was recorded and lists the missing bursts.
            logger.info(
                "run %s ended with exit_status %r: queued for its recorded bursts",
                uid[:8],
                status,
            )

    def _refused(self, uid: str) -> None:
        state = getattr(self.worker, "state", "unavailable")
        error = getattr(self.worker, "error", None)
        logger.warning(
            "run %s finished but the fusion worker is %s%s: not queued. Start "
            "automatic fusion again (bl.start_fusion(); it catches up on this "
            "run) or fuse it by hand (xfusion-bluesky fuse %s)",
            uid[:8],
            state,
            f" ({error})" if error else "",
            uid[:8],
        )
