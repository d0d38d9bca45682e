"""The worker's loop: catch up, then fuse each queued uid; never dies on a run.

:func:`serve` is the body of a :class:`~xfusion_bluesky.callbacks.worker.FusionWorker`,
in a child process or a thread alike. It connects to Tiled by URI (a process cannot
inherit a client), fuses every fusion-requested raw run that has no finished derived
run yet (:func:`~xfusion_bluesky.catalog.progress.pending_runs`: after a crash
nothing is lost), then takes uids from its queue and looks again every ``poll_s``
seconds in case a notification went missing. Each catch-up first replays the
raw runs' backups left by a Tiled outage (``backup_dir``), then marks raw runs
without a stop document for longer than ``orphan_after_s`` as orphaned (a
``failed`` derived run; see :mod:`~xfusion_bluesky.catalog.orphans`), so every
run reaches an outcome. Each run goes through
:func:`~xfusion_bluesky.pipeline.fuse_run` inside ``try/except``: a bad run becomes
a ``failed`` derived run (or, when Tiled itself fails, a logged error) and the loop
goes on. What happened to each run is reported through
``emit("result", FusionOutcome)``.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from xfusion_bluesky.callbacks.fusion import fusion_requested
from xfusion_bluesky.catalog.backup import backup_path, replay_all
from xfusion_bluesky.catalog.connect import redact
from xfusion_bluesky.catalog.orphans import ORPHAN_AFTER_S, mark_orphan, orphaned_runs
from xfusion_bluesky.catalog.progress import pending_runs

__all__ = [
    "FusionOutcome",
    "WorkerConfig",
    "pending_runs",
    "redact",
    "serve",
]

logger = logging.getLogger(__name__)

#: Longest the loop blocks on its queue before it checks ``stop`` and the parent.
IDLE_TICK_S = 0.5
#: Seconds between two looks at a submitted run whose stop is not in Tiled yet.
STOP_POLL_S = 0.2
#: How long a worker waits for an unreachable Tiled (a server restart takes
#: seconds to minutes); a worker started then must not give up at once.
CONNECT_WAIT_S = 600.0
#: Longest pause between two tries to reach Tiled.
CONNECT_RETRY_MAX_S = 30.0

#: ``emit(kind, payload)``: ``("result", FusionOutcome)``, ``("caught_up", int)``,
#: ``("fatal", str)``.
Emit = Callable[[str, Any], None]


class JobQueue(Protocol):
    """``queue.Queue`` or ``multiprocessing.Queue`` of ``(job, uid)`` or None (stop)."""

    def get(self, block: bool = ..., timeout: float | None = ...) -> Any:
        """Return the next item; raise ``queue.Empty`` after ``timeout``."""


class StopFlag(Protocol):
    """``threading.Event`` or ``multiprocessing.Event``."""

    def is_set(self) -> bool:
        """Tell whether the worker should stop."""


@dataclass(frozen=True)
class WorkerConfig:
    """What the loop needs; plain values so it crosses a process boundary.

    Attributes
    ----------
    tiled_uri : str
        Tiled server URI (an embedded server's carries ``?api_key=``).
    api_key : str or None
        API key for a URI without one.
    method, model : str or None
        Override the start document's method; checkpoint path (None: shipped).
    device : str
        Where the network runs.
    batch_size : int or None
        Windows per forward pass.
    catch_up : bool
        Fuse pending runs when the loop starts.
    since : float or None
        Only raw runs started after this (epoch s) are caught up; None: all.
    poll_s : float or None
        Seconds between catch-ups while running; None: only at start.
    stop_wait_s : float
        How long a submitted run may take to show its stop document in Tiled.
    torch_threads : int or None
        ``torch.set_num_threads`` for the loop's process; None leaves torch's.
    parent_pid : int or None
        Exit when this process is gone (a child whose RunEngine died).
    backup_dir : str or None
        The raw runs' backup directory (``data_dir/backup``): each catch-up
        replays the complete backups in it into Tiled. None: none replayed.
    orphan_after_s : float or None
        A fusion-requested raw run with no stop document this long after its
        start, and no backup in ``backup_dir``, is marked orphaned (a ``failed``
        derived run). None: never marked.
    connect_wait_s : float
        How long a worker that finds Tiled unreachable (a restart, an outage)
        keeps trying to connect before it gives up; 0: not at all.
    adapt : dict or None
        ``AdaptSettings`` fields: adapt the network to each burst before fusing
        it (``{}``: the default recipe); None: no adaptation.
    """

    tiled_uri: str
    api_key: str | None = None
    method: str | None = None
    model: str | None = None
    device: str = "cpu"
    batch_size: int | None = None
    catch_up: bool = True
    since: float | None = None
    poll_s: float | None = 60.0
    stop_wait_s: float = 30.0
    torch_threads: int | None = None
    parent_pid: int | None = None
    backup_dir: str | None = None
    orphan_after_s: float | None = ORPHAN_AFTER_S
    connect_wait_s: float = CONNECT_WAIT_S
    adapt: dict[str, Any] | None = None


@dataclass(frozen=True)
class FusionOutcome:
    """What the worker did with one raw run.

    Attributes
    ----------
    raw_uid : str
        The raw run.
    status : str
        ``"success"`` / ``"failed"`` (a derived run records it), ``"running"``
        (another live worker writes it), ``"skipped"`` (not requested, no stop
        document, unknown uid) or ``"error"`` (nothing could be recorded, e.g.
        Tiled unreachable; a later catch-up retries).
    derived_uid : str or None
        The derived run, when there is one.
    reason : str
        Why it failed or was skipped; empty for a success.
    wall_s : float
        Seconds spent on it.
    trigger : str
        ``"submitted"``, ``"catch-up"`` or ``"poll"``.
    job : int or None
        Sequence number of a submitted job.
    frames : int or None
        Fused frames written, when a derived run records them.
    """

    raw_uid: str
    status: str
    derived_uid: str | None = None
    reason: str = ""
    wall_s: float = 0.0
    trigger: str = "submitted"
    job: int | None = None
    frames: int | None = None


def serve(config: WorkerConfig, jobs: JobQueue, stop: StopFlag, emit: Emit) -> None:
    """Run the worker until ``stop`` is set, None is queued, or the parent exits.

    Parameters
    ----------
    config : WorkerConfig
        Where Tiled is and how to fuse.
    jobs : queue
        ``(job, uid)`` items; None ends the loop.
    stop : Event
        Set to end the loop after the current run.
    emit : callable
        ``emit(kind, payload)``; see :data:`Emit`.
    """
    if config.torch_threads is not None:
        import torch

        torch.set_num_threads(max(1, int(config.torch_threads)))
    loop = _connect(config, emit, stop)
    if loop is None:
        return
    try:
        loop.run(jobs, stop)
    finally:
        loop.close()


def _connect(config: WorkerConfig, emit: Emit, stop: StopFlag) -> _Loop | None:
    """Open Tiled, trying again while it does not answer; None when it never did.

    Only an unreachable server is waited for (``connect_wait_s``); a refused key
    or a wrong address ends the worker at once, with the reason.
    """
    import httpx

    deadline = time.monotonic() + config.connect_wait_s
    delay = 1.0
    while True:
        try:
            return _Loop(config, emit)
        except httpx.TransportError as err:
            if stop.is_set() or time.monotonic() + delay > deadline:
                error: Exception = err
            else:
                logger.warning(
                    "Tiled at %s does not answer (%s): trying again in %.0f s",
                    redact(config.tiled_uri),
                    type(err).__name__,
                    delay,
                )
                if _sleep_unless(stop, delay):
                    return None
                delay = min(2 * delay, CONNECT_RETRY_MAX_S)
                continue
        except Exception as err:  # worker boundary: say why, then stop
            error = err
        message = (
            f"fusion worker cannot open Tiled at {redact(config.tiled_uri)}: "
            f"{type(error).__name__}: {redact(str(error))}"
        )
        # No traceback kept (logger.exception would hold it in log records): its
        # frames hold the half-built client, which must go now, not at exit.
        logger.error("%s", message)
        emit("fatal", message)
        return None


def _sleep_unless(stop: StopFlag, seconds: float) -> bool:
    """Sleep ``seconds``, in ticks; return True as soon as ``stop`` is set."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if stop.is_set():
            return True
        time.sleep(min(IDLE_TICK_S, max(0.0, deadline - time.monotonic())))
    return stop.is_set()


class _Loop:
    """One connection to Tiled and the fuse-one-run step.

    Networks are loaded once per process by the fusion package's cached loader,
    so every run after the first reuses them.
    """

    def __init__(self, config: WorkerConfig, emit: Emit) -> None:
        from xfusion_bluesky.catalog.connect import open_catalogs

        self.config = config
        self.emit = emit
        self.catalogs = open_catalogs(config.tiled_uri, api_key=config.api_key)

    def run(self, jobs: JobQueue, stop: StopFlag) -> None:
        poll_s = self.config.poll_s
        if self.config.catch_up:
            self.catch_up("catch-up", stop)
        self.emit("caught_up", None)
        next_poll = time.monotonic() + poll_s if poll_s else math.inf
        while not stop.is_set() and self._parent_alive():
            wait = min(IDLE_TICK_S, max(0.0, next_poll - time.monotonic()))
            try:
                item = jobs.get(timeout=wait)
            except queue.Empty:
                item = ()
            if item is None:
                break
            if item:
                job, uid = item
                self.fuse(str(uid), trigger="submitted", job=int(job))
            if poll_s and time.monotonic() >= next_poll:
                self.catch_up("poll", stop)
                next_poll = time.monotonic() + poll_s
        logger.info("fusion worker stopped")

    def close(self) -> None:
        """Close the Tiled client (its sockets)."""
        self.catalogs.root.context.close()

    def _parent_alive(self) -> bool:
        # A child whose RunEngine process died is re-parented: stop, do not linger.
        parent = self.config.parent_pid
        return parent is None or os.getppid() == parent

    def catch_up(self, trigger: str, stop: StopFlag) -> int:
        """Replay backups, mark orphans, fuse every pending run; return how many."""
        self.replay_backups()
        if self.config.orphan_after_s is not None:
            self.mark_orphans(trigger)
        try:
            uids = pending_runs(self.catalogs, since=self.config.since)
        except Exception:  # Tiled down: the next poll tries again
            logger.exception("fusion worker could not list pending runs")
            return 0
        if uids or trigger == "catch-up":
            logger.info("%s: %d raw run(s) to fuse", trigger, len(uids))
        for uid in uids:
            if stop.is_set():
                break
            self.fuse(uid, trigger=trigger)
        return len(uids)

    def replay_backups(self) -> list[str]:
        """Replay the complete raw-run backups into Tiled; return the uids."""
        if not self.config.backup_dir:
            return []
        replayed = []
        try:
            for path, uid in replay_all(self.config.backup_dir, self.catalogs.raw):
                logger.info("backup %s replayed (raw run %s)", path.name, uid)
                if uid is not None:
                    replayed.append(uid)
        except Exception:  # Tiled or the disk: the next catch-up tries again
            logger.exception("fusion worker could not replay the backups")
        return replayed

    def mark_orphans(self, trigger: str) -> list[FusionOutcome]:
        """Mark raw runs with no stop document and no backup as orphaned."""
        after_s = self.config.orphan_after_s
        after_s = ORPHAN_AFTER_S if after_s is None else float(after_s)
        try:
            orphans = orphaned_runs(
                self.catalogs, after_s=after_s, since=self.config.since
            )
        except Exception:  # Tiled down: the next catch-up tries again
            logger.exception("fusion worker could not list orphaned runs")
            return []
        outcomes = []
        for uid, start in orphans:
            backup = self.config.backup_dir
            if backup and backup_path(backup, uid).exists():
                continue  # still being backed up: replayed once it has a stop
            tick = time.perf_counter()
            try:
                derived = mark_orphan(self.catalogs, uid, start, after_s=after_s)
            except Exception:
                logger.exception("could not mark raw run %s as orphaned", uid)
                continue
            outcome = FusionOutcome(
                raw_uid=uid,
                status="failed",
                derived_uid=derived,
                reason=f"orphaned: no stop document after {after_s:g} s",
                wall_s=time.perf_counter() - tick,
                trigger=trigger,
            )
            logger.debug(
                "raw run %s: failed -> derived run %s (%s): %s",
                uid[:8],
                derived[:8],
                trigger,
                outcome.reason,
            )
            self.emit("result", outcome)
            outcomes.append(outcome)
        return outcomes

    def fuse(self, uid: str, *, trigger: str, job: int | None = None) -> FusionOutcome:
        """Fuse raw run ``uid`` (unless skipped); emit and return the outcome."""
        from xfusion_bluesky.fusion.adaptation import AdaptSettings
        from xfusion_bluesky.pipeline import fuse_run

        tick = time.perf_counter()
        derived, status, reason, frames = None, "skipped", "", None
        try:
            start = self._finished_start(uid)
            if start is None:
                reason = (
                    f"no stop document in Tiled within {self.config.stop_wait_s:g} s "
                    "(still running?): a later catch-up fuses it"
                )
            elif not fusion_requested(start):
                reason = "the run did not request fusion (start.fusion.requested)"
            else:
                fused = fuse_run(
                    self.catalogs.root,
                    uid,
                    method=self.config.method,
                    model=self.config.model,
                    device=self.config.device,
                    batch_size=self.config.batch_size,
                    adapt=(
                        None
                        if self.config.adapt is None
                        else AdaptSettings.from_dict(self.config.adapt)
                    ),
                )
                derived, status, reason = fused.uid, fused.status, fused.reason
                frames = fused.outcome.get("frames_written")
        except KeyError:
            reason = f"no raw run {uid} in Tiled"
        except Exception as err:  # worker boundary: the next run still gets fused
            logger.exception("fusion of raw run %s failed in the worker", uid)
            status, reason = "error", f"{type(err).__name__}: {redact(str(err))}"
        outcome = FusionOutcome(
            raw_uid=uid,
            status=status,
            derived_uid=derived,
            reason=reason.splitlines()[0] if reason else "",
            wall_s=time.perf_counter() - tick,
            trigger=trigger,
            job=job,
            frames=None if frames is None else int(frames),
        )
        # The parent says it at INFO (callbacks.child.log_outcome).
        logger.debug(
            "raw run %s: %s%s in %.1f s (%s)%s",
            uid[:8],
            status,
            f" -> derived run {derived[:8]}" if derived else "",
            outcome.wall_s,
            trigger,
            f": {outcome.reason}" if outcome.reason else "",
        )
        self.emit("result", outcome)
        return outcome

    def _finished_start(self, uid: str) -> dict[str, Any] | None:
        """Return the raw run's start once its stop is in Tiled; None on timeout.

        A 0MQ or callback notification can overtake TiledWriter's write of the
        stop document; fusing then would record a spurious "still running" failure.

        Raises
        ------
        KeyError
            No such raw run, even after waiting.
        """
        deadline = time.monotonic() + self.config.stop_wait_s
        while True:
            try:
                metadata = self.catalogs.raw[uid].metadata
                if metadata.get("stop"):
                    return dict(metadata["start"])
                missing: KeyError | None = None
            except KeyError as err:
                missing = err
            if time.monotonic() >= deadline:
                if missing is not None:
                    raise missing
                return None
            time.sleep(STOP_POLL_S)
