"""Read ahead and write behind: Tiled's share of a fusion, beside the fusion.

While burst k is fused, the *host thread* (:class:`HostThread`) checks burst k's
HS latency and reads, checks and registers burst k + 1 (:class:`ReadAhead`: one
burst ahead, so at most two bursts are in memory); the fused frames go through
a bounded queue to the *writer thread* (:class:`WriteBehind`), which writes
them to the derived run. The fusion waits on Tiled
only for the first burst's read and the last frames' write.

Neither thread decides anything. An exception raised there is raised again in
the calling thread where the sequential pipeline raised it: a read error when
that burst is taken, a write error at the next call handed over or when the
writer is closed (the writer's error first: it belongs to an earlier frame). So
every outcome, a failed derived run and its reason included, is the one the
sequential pipeline writes. Both threads are always joined.

:data:`OVERLAP` = False runs the same stages one after another in the calling
thread, in the sequential pipeline's order: the benchmark's baseline and the
tests' reference.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["OVERLAP", "HostThread", "Pending", "ReadAhead", "WriteBehind", "settle"]

#: Read ahead and write behind on threads (True), or every stage in turn in the
#: calling thread (False). Read when a fusion starts; stored nowhere.
OVERLAP = True

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
_STOP = object()


class Pending(Protocol[T_co]):
    """A result to be taken later: ``result()`` returns it or raises its error."""

    def result(self) -> T_co:
        """Return the result, or raise the error the work raised."""
        ...


class _Deferred(Generic[T]):
    """Work run in the caller when its result is first asked for (no thread)."""

    def __init__(self, fn: Callable[..., T], args: tuple[Any, ...]) -> None:
        self._fn, self._args = fn, args
        self._done = False
        self._value: Any = None
        self._error: BaseException | None = None

    def result(self) -> T:
        if not self._done:
            self._done = True
            try:
                self._value = self._fn(*self._args)
            except BaseException as err:
                self._error = err
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[no-any-return]


def settle(pending: Pending[Any]) -> None:
    """Wait until ``pending``'s work has ended, whatever its outcome.

    Deferred (sequential) work runs only when its result is taken: nothing to
    wait for.
    """
    if isinstance(pending, Future):
        wait_for([pending])


class HostThread:
    """One thread for the host's work of a fusion, in the order it is handed over.

    Parameters
    ----------
    threaded : bool
        False: nothing runs until its result is asked for, then in the caller.
    """

    def __init__(self, threaded: bool) -> None:
        self._pool = (
            ThreadPoolExecutor(1, thread_name_prefix="xfusion-read")
            if threaded
            else None
        )

    def submit(self, fn: Callable[..., T], *args: Any) -> Pending[T]:
        """Queue ``fn(*args)``; its result (or error) comes from ``.result()``."""
        if self._pool is None:
            return _Deferred(fn, args)
        return self._pool.submit(fn, *args)

    def close(self) -> None:
        """Drop the work not started, wait for the running one (a read)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> HostThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ReadAhead(Generic[T]):
    """Items ``read(0) … read(count − 1)``, each read while the one before is used.

    Taking item k queues item k + 1 on the host thread: one item ahead, never
    more, so a burst's frames are in memory at most twice over. ``first`` is
    item 0's read, queued at once (None when there are no items).
    """

    def __init__(self, host: HostThread, read: Callable[[int], T], count: int) -> None:
        self._host, self._read, self._count = host, read, count
        self._next: tuple[int, Pending[T]] | None = None
        self.first: Pending[T] | None = None
        if count > 0:
            self.first = host.submit(read, 0)
            self._next = (0, self.first)

    def get(self, index: int) -> T:
        """Return item ``index`` (raising its read's error); start the next one."""
        if self._next is not None and self._next[0] == index:
            pending = self._next[1]
        else:
            pending = self._host.submit(self._read, index)
        self._next = None
        if index + 1 < self._count:
            self._next = (index + 1, self._host.submit(self._read, index + 1))
        return pending.result()


class WriteBehind:
    """Calls on a writer, made in order on a thread of their own; a bounded queue.

    Parameters
    ----------
    threaded : bool
        False: each call is made at once, in the caller.
    max_pending : int
        Calls queued at most; the caller waits beyond that, so the frames in
        flight stay bounded (one write request's worth is a good size).

    Notes
    -----
    After a call fails the writer thread drops the calls still queued, as the
    sequential pipeline stops at its first failed write, and the error is raised
    in the caller at its next call or when the ``with`` block ends. Leaving the
    block waits for every queued call.
    """

    def __init__(self, *, threaded: bool, max_pending: int) -> None:
        self._queue: queue.Queue[Any] | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        if threaded:
            self._queue = queue.Queue(maxsize=max(1, int(max_pending)))
            self._thread = threading.Thread(
                target=self._drain, name="xfusion-write", daemon=True
            )

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Make ``fn(*args)`` on the writer thread, after every call before it."""
        if self._queue is None:
            fn(*args)
            return
        if self._error is not None:
            raise self._error
        self._queue.put((fn, args))

    def __enter__(self) -> WriteBehind:
        if self._thread is not None:
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._queue is None or self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join()
        if self._error is None or exc is self._error:
            return
        # The write failed on a frame made before whatever the caller raised
        # since; an interrupt (KeyboardInterrupt) still goes through.
        if exc is None or isinstance(exc, Exception):
            raise self._error

    def _drain(self) -> None:
        if self._queue is None:  # only started when threaded
            return
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is not None:
                continue
            fn, args = item
            try:
                fn(*args)
            except BaseException as err:  # raised again in the caller
                self._error = err
