"""FusionWorker: fuses finished runs off the RunEngine, in a child process or a thread.

``FusionWorker(uri).start()`` runs :func:`~xfusion_bluesky.callbacks.loop.serve` in a
``spawn``-ed child process (default: torch gets its own interpreter and never holds
the RunEngine's GIL) or, with ``mode="thread"``, in a daemon thread (laptops, and
the standalone ``xfusion-bluesky worker`` that is itself the separate process).
``submit(uid)`` never blocks; ``wait_idle()`` waits until everything submitted has an
outcome; ``close()`` stops it; ``state`` is one of :data:`STATES`. Each outcome
is logged on this side, one line per run. In process mode the child's log records
and outcomes come back through one queue and are re-emitted on this side's
loggers, and a child that dies (killed, out of memory) is replaced by a fresh one,
which catches up on what the dead one left.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from typing import Any

from xfusion_bluesky.callbacks.child import (
    RestartPolicy,
    close_queues,
    log_outcome,
    open_channels,
    spawn_child,
)
from xfusion_bluesky.callbacks.loop import (
    CONNECT_WAIT_S,
    FusionOutcome,
    WorkerConfig,
    redact,
    serve,
)
from xfusion_bluesky.catalog.lookup import one_api_key
from xfusion_bluesky.catalog.orphans import ORPHAN_AFTER_S
from xfusion_bluesky.errors import InvalidInputError

__all__ = ["CATCH_UP_S", "MODES", "STATES", "FusionWorker"]

logger = logging.getLogger(__name__)

#: How the worker runs.
MODES = ("process", "thread")
#: ``FusionWorker.state``: not started yet (``submit`` queues), connecting and
#: catching up, waiting, a submitted run without an outcome yet; and three states
#: that take no runs: closed, the loop ended on an error (``error`` says which),
#: or the child died too often (see ``max_restarts``).
STATES = ("new", "starting", "idle", "fusing", "stopped", "failed", "gave_up")
#: States in which ``submit`` hands a run to a loop that will take it.
ACCEPTING = STATES[:4]
#: With ``since=None``, catch-up looks this many seconds back (7 days): a fresh
#: worker on a facility server must not start on years of old runs (fuse those
#: with ``fuse UID``). The CLI's ``--catch-up-s`` takes the same unit.
CATCH_UP_S = 7 * 86400.0
#: Seconds ``close()`` gives a terminated child to go.
TERMINATE_WAIT_S = 5.0


class FusionWorker:
    """Fuse every finished fusion-requested run of a Tiled server, in the background.

    Parameters
    ----------
    tiled_uri : str
        The server, e.g. ``bl.connection.uri`` or ``http://host:8000/api/v1``.
    api_key : str, optional
        Its API key, when not in the URI. It needs read access to raw runs and
        write access to the ``fused`` container, nothing more.
    mode : {"process", "thread"}
        A spawned child process (default) or a daemon thread of this process.
    method : str, optional
        Fuse with this method instead of the one the start document names.
    model : str or path, optional
        Checkpoint for the network methods; None: the shipped weights.
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... (one worker per GPU scales out).
    batch_size : int, optional
        Windows per forward pass (halved after an out-of-memory error).
    catch_up : bool
        On start, fuse every requested raw run that has no finished derived run.
    since : float, optional
        Catch up on runs started after this time (epoch s); default
        :data:`CATCH_UP_S` seconds before ``start()``; 0 for all.
    poll_s : float or None
        Look for missed runs this often (s); None: only on start.
    torch_threads : int, optional
        Torch threads; default in process mode one core fewer than the machine
        has (the acquisition keeps one), in thread mode torch's own default.
    stop_wait_s : float
        How long a submitted run may take to show its stop document in Tiled.
    max_restarts : int
        Process mode: replace a child that died abnormally at most this often
        per hour.
    backup_dir : str or path, optional
        The raw runs' backups (``data_dir/backup``): each catch-up replays the
        complete ones into Tiled. None: none replayed.
    orphan_after_s : float or None
        A requested raw run still without a stop document this long (s) after
        its start is marked orphaned (a ``failed`` derived run); None: never.
    connect_wait_s : float
        How long the loop waits for a Tiled that does not answer (it stays
        ``starting``) before it gives up; 0: it gives up at once.
    adapt : dict or None
        Adapt the network to each burst before fusing it: ``AdaptSettings``
        fields (``{}``: the default recipe); None (default): no adaptation.

    Notes
    -----
    The child is started with ``multiprocessing``'s ``spawn`` without running the
    main module again (a script's top level or an IPython startup file).

    Examples
    --------
    >>> with FusionWorker(bl.connection.uri) as worker:  # doctest: +SKIP
    ...     bl.RE.subscribe(FusionCallback(worker))
    ...     bl.RE(dual_camera_scan())
    ...     worker.wait_idle(300)
    """

    def __init__(
        self,
        tiled_uri: str,
        *,
        api_key: str | None = None,
        mode: str = "process",
        method: str | None = None,
        model: str | os.PathLike[str] | None = None,
        device: str = "cpu",
        batch_size: int | None = None,
        catch_up: bool = True,
        since: float | None = None,
        poll_s: float | None = 60.0,
        torch_threads: int | None = None,
        stop_wait_s: float = 30.0,
        max_restarts: int = 3,
        backup_dir: str | os.PathLike[str] | None = None,
        orphan_after_s: float | None = ORPHAN_AFTER_S,
        connect_wait_s: float = CONNECT_WAIT_S,
        adapt: dict[str, Any] | None = None,
    ) -> None:
        if mode not in MODES:
            raise InvalidInputError(f"mode must be one of {MODES}; got {mode!r}")
        uri: object = tiled_uri  # typed as object: anything may be passed
        if not isinstance(uri, str) or not uri:
            raise InvalidInputError(
                f"tiled_uri must be the server's URI (a str); got {tiled_uri!r}: "
                "a process cannot inherit a client"
            )
        api_key = one_api_key(tiled_uri, api_key)
        if poll_s is not None and not poll_s > 0:
            raise InvalidInputError(f"poll_s must be > 0 or None; got {poll_s!r}")
        if torch_threads is None and mode == "process":
            torch_threads = max(1, (os.cpu_count() or 1) - 1)
        self.mode = mode
        self.max_restarts = int(max_restarts)
        self._restarts = RestartPolicy(self.max_restarts)
        #: The server and the key to pass beside it (None when the URI has it).
        self.tiled_uri, self.api_key = tiled_uri, api_key
        self._options: dict[str, Any] = {
            "tiled_uri": tiled_uri,
            "api_key": api_key,
            "method": method,
            "model": None if model is None else os.fspath(model),
            "device": device,
            "batch_size": batch_size,
            "catch_up": catch_up,
            "since": since,
            "poll_s": poll_s,
            "stop_wait_s": float(stop_wait_s),
            "backup_dir": None if backup_dir is None else os.fspath(backup_dir),
            "orphan_after_s": orphan_after_s,
            "connect_wait_s": float(connect_wait_s),
            "torch_threads": torch_threads,
            "adapt": None if adapt is None else dict(adapt),
        }
        self.config: WorkerConfig | None = None
        self.error: str | None = None
        self._changed = threading.Condition()
        self._submitted = 0
        self._done: set[int] = set()
        self._results: list[FusionOutcome] = []
        self._caught_up = False
        self._runner: Any = None
        self._reader: threading.Thread | None = None
        self._closed = False
        self._jobs: Any = None
        self._stop: Any = None
        self._events: Any = None
        if mode == "process":
            self._jobs, self._stop, self._events = open_channels()
        else:
            self._jobs = queue.Queue()
            self._stop = threading.Event()

    def __repr__(self) -> str:
        uri = redact(str(self._options["tiled_uri"]))
        return f"<FusionWorker {self.mode} {self.state} on {uri}>"

    def __enter__(self) -> FusionWorker:
        if self._runner is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """The child's process id (process mode, once started)."""
        return getattr(self._runner, "pid", None) if self.mode == "process" else None

    @property
    def results(self) -> list[FusionOutcome]:
        """Every outcome so far, in order (submitted runs and catch-ups)."""
        with self._changed:
            return list(self._results)

    def is_alive(self) -> bool:
        """Tell whether the loop is running."""
        return self._runner is not None and self._runner.is_alive()

    @property
    def state(self) -> str:
        """One of :data:`STATES`, as things are now."""
        with self._changed:
            if self._restarts.gave_up:
                return "gave_up"
            if self._closed:
                return "stopped"
            if self._runner is None:
                return "new"
            # A dead child the reader is about to replace is "starting" again.
            if not self.is_alive() and not self._reader_alive():
                return "failed"
            if not self._caught_up or not self.is_alive():
                return "starting"
            return "fusing" if len(self._done) < self._submitted else "idle"

    @property
    def accepting(self) -> bool:
        """Tell whether a submitted run will be taken (states new to fusing)."""
        return self.state in ACCEPTING

    def start(self) -> FusionWorker:
        """Start the loop (it catches up first); return self.

        Raises
        ------
        RuntimeError
            Started before, or closed (a closed worker's queues are gone, so a
            loop started then could never be stopped): make a new one.
        """
        if self._closed:
            raise RuntimeError("this FusionWorker is closed: make a new one")
        if self._runner is not None:
            raise RuntimeError("this FusionWorker was started already")
        since = self._options["since"]
        if since is None:
            since = time.time() - CATCH_UP_S
        parent = os.getpid() if self.mode == "process" else None
        self.config = WorkerConfig(
            **{**self._options, "since": since or None, "parent_pid": parent}
        )
        if self.mode == "process":
            self._spawn()
            self._reader = threading.Thread(
                target=self._read_events, name="xfusion-fusion-events", daemon=True
            )
            self._reader.start()
        else:
            self._runner = threading.Thread(
                target=self._thread_main, name="xfusion-fusion-worker", daemon=True
            )
            self._runner.start()
        logger.info(
            "fusion worker started (%s%s) on %s",
            self.mode,
            f", pid {self.pid}" if self.pid else "",
            redact(self.config.tiled_uri),
        )
        return self

    def submit(self, uid: str) -> None:
        """Queue raw run ``uid`` for fusion; never blocks (unbounded queue).

        A closed worker's queue is gone: the uid is dropped with a warning (the
        next worker's catch-up finds the run).
        """
        with self._changed:  # a restart may be swapping the queue
            if self._closed:
                logger.warning("fusion worker is closed: raw run %s not queued", uid)
                return
            job = self._submitted
            self._submitted += 1
            self._jobs.put((job, str(uid)))

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until the catch-up is over and every submitted run has an outcome.

        Parameters
        ----------
        timeout : float, optional
            Seconds; None waits for ever.

        Returns
        -------
        bool
            True when idle; False on timeout or when the loop is not running.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                if not self.is_alive() and not self._reader_alive():
                    return False  # a loop that is gone is not idle
                if self._caught_up and len(self._done) >= self._submitted:
                    return True
                left = 0.5 if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.5))

    def close(self, timeout: float = 10.0) -> None:
        """Stop after the current run; past ``timeout`` s, end a child process.

        A child ended mid-run leaves its derived run unfinished; the next worker
        finds its writer gone, deletes it and fuses the run again.
        """
        with self._changed:  # after this, the reader restarts nothing
            if self._closed:
                return
            self._closed = True
        if self._runner is None:
            self._close_channels()
            return
        self._stop.set()
        self._jobs.put(None)
        self._runner.join(timeout)
        if self._runner.is_alive():
            if self.mode == "process":
                logger.warning(
                    "fusion worker busy after %.0f s: terminating it (pid %s)",
                    timeout,
                    self.pid,
                )
                self._runner.terminate()
                self._runner.join(TERMINATE_WAIT_S)
            else:
                logger.warning(
                    "fusion worker thread busy after %.0f s: it ends with the process",
                    timeout,
                )
        if self._reader is not None:
            self._reader.join(TERMINATE_WAIT_S)
        self._close_channels()
        with self._changed:
            self._changed.notify_all()

    def _close_channels(self) -> None:
        if self.mode == "process":
            close_queues(self._jobs, self._events)

    # -- the child process --------------------------------------------------------

    def _spawn(self) -> None:
        if self.config is None:  # start() sets it first
            raise RuntimeError("FusionWorker child spawned without a config")
        self._runner = spawn_child(self.config, self._jobs, self._stop, self._events)

    def _restart(self) -> bool:
        """Replace a child that died on its own; False when it must not be."""
        exitcode = self._runner.exitcode
        with self._changed:
            if self._closed or exitcode == 0:  # closed, or ended after "fatal"
                return False
            refusal = self._restarts.refuse(exitcode)
            if refusal is not None:
                self.error = refusal
                logger.error("%s", self.error)
                return False
            logger.error(
                "fusion worker process %s died (exit code %s): starting another, "
                "which catches up on what it left",
                self._runner.pid,
                exitcode,
            )
            old = (self._jobs, self._events)
            # Its queued uids are lost with it; the new child's catch-up finds them.
            self._done.update(range(self._submitted))
            self._caught_up = False
            self._jobs, self._stop, self._events = open_channels()
            self._spawn()
        close_queues(*old)
        return True

    # -- events from the loop -----------------------------------------------------

    def _on_event(self, kind: str, payload: Any) -> None:
        if kind == "log":
            logging.getLogger(payload.name).handle(payload)
            return
        if kind == "result":
            log_outcome(payload)
        with self._changed:
            if kind == "result":
                self._results.append(payload)
                if payload.job is not None:
                    self._done.add(payload.job)
            elif kind == "caught_up":
                self._caught_up = True
            elif kind == "fatal":
                self.error = str(payload)
            self._changed.notify_all()

    def _read_events(self) -> None:
        """Process mode: re-emit the child's events here until it has exited."""
        while True:
            runner = self._runner
            try:
                kind, payload = self._events.get(timeout=0.2)
            except queue.Empty:
                if runner.is_alive() or self._restart():
                    continue
                break
            except Exception:  # closed under us, or a message cut by a kill
                if self._closed:
                    break
                continue
            try:
                self._on_event(kind, payload)
            except Exception:  # a bad record must not end the reader
                logger.exception("could not handle a fusion worker event")
        with self._changed:
            self._changed.notify_all()

    def _reader_alive(self) -> bool:
        return self._reader is not None and self._reader.is_alive()

    def _thread_main(self) -> None:
        if self.config is None:  # start() sets it before the thread exists
            raise RuntimeError("FusionWorker thread started without a config")
        try:
            serve(self.config, self._jobs, self._stop, self._on_event)
        except Exception as err:  # the loop catches per run; this is a last resort
            logger.exception("fusion worker thread died")
            self._on_event("fatal", f"{type(err).__name__}: {err}")
