"""Feeds for a worker on another host: Tiled's websocket, or bluesky's 0MQ proxy.

A worker that does not share the RunEngine's process learns that a run finished
from one of two places. :class:`TiledFeed` subscribes to the raw-run container
(Tiled ≥ 0.2 streams ``container-child-metadata-updated`` when TiledWriter adds the
stop document; the server needs a streaming cache). :class:`ZmqFeed` runs a
``bluesky.callbacks.zmq.RemoteDispatcher`` on the proxy's out port with a
:class:`~xfusion_bluesky.callbacks.fusion.FusionCallback`. Both run in a daemon
thread, hand uids over with a non-blocking ``submit`` and stop with ``close()``;
both may miss a message (websocket reconnect, 0MQ slow joiner), which the worker's
periodic catch-up covers.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from xfusion_bluesky.callbacks.fusion import fusion_requested
from xfusion_bluesky.errors import InvalidInputError

__all__ = ["TiledFeed", "ZmqFeed", "parse_address"]

logger = logging.getLogger(__name__)

#: Seconds to wait for the websocket to connect before giving up.
CONNECT_TIMEOUT_S = 30.0
#: Raw uids remembered to ignore a second metadata update of a finished run.
SEEN_RUNS = 1000


def parse_address(address: str) -> tuple[str, int]:
    """Split ``"HOST:PORT"`` into ``(host, port)``.

    Raises
    ------
    InvalidInputError
        Not ``HOST:PORT`` with an integer port.
    """
    host, _, port = str(address).rpartition(":")
    if not host or not port.isdigit():
        raise InvalidInputError(
            f"the 0MQ address must be HOST:PORT (the proxy's out port, e.g. "
            f"127.0.0.1:5578); got {address!r}"
        )
    return host, int(port)


class TiledFeed:
    """Submit each fusion-requested raw run when Tiled reports its stop document.

    Parameters
    ----------
    raw : tiled container
        The raw-run container (``open_catalogs(uri).raw``).
    submit : callable
        ``submit(uid)``, e.g. ``FusionWorker.submit``; must not block.
    """

    def __init__(self, raw: Any, submit: Callable[[str], None]) -> None:
        self.raw = raw
        self.submit = submit
        self._seen: deque[str] = deque(maxlen=SEEN_RUNS)
        self._subscription: Any = None

    def start(self, timeout: float = CONNECT_TIMEOUT_S) -> TiledFeed:
        """Connect the websocket (only updates from now on); return self.

        Raises
        ------
        TimeoutError
            No connection within ``timeout`` s (does the server have a
            ``streaming_cache``?).
        """
        subscription = self.raw.subscribe()
        # The registry keeps weak references: the bound method lives with self.
        subscription.child_metadata_updated.add_callback(self._on_update)
        # start_in_thread blocks until connected, for ever if it never does.
        starter = threading.Thread(
            target=subscription.start_in_thread,
            kwargs={"start": None},
            name="xfusion-tiled-feed-start",
            daemon=True,
        )
        starter.start()
        starter.join(timeout)
        if starter.is_alive():
            raise TimeoutError(
                f"the Tiled subscription did not connect within {timeout:g} s: "
                "does the server have a streaming cache (tiled config "
                "`streaming_cache: {uri: memory}`)?"
            )
        self._subscription = subscription
        logger.info("Tiled feed: subscribed to %s", "/".join(self.raw.path_parts))
        return self

    def _on_update(self, update: Any) -> None:
        try:
            metadata = update.metadata or {}
            start = metadata.get("start") or {}
            if not metadata.get("stop") or not fusion_requested(start):
                return
            uid = str(start.get("uid") or update.key)
            if uid in self._seen:  # a later metadata edit of a finished run
                return
            self._seen.append(uid)
            logger.info("Tiled feed: run %s finished", uid[:8])
            self.submit(uid)
        except Exception:  # a feed callback must not kill the subscription
            logger.exception("Tiled feed could not handle an update")

    def close(self) -> None:
        """Disconnect the websocket and join its thread."""
        if self._subscription is not None:
            self._subscription.disconnect()
            self._subscription = None


class ZmqFeed:
    """Run a 0MQ ``RemoteDispatcher`` with ``callback`` in a thread.

    Parameters
    ----------
    address : str
        The proxy's out port, ``"HOST:PORT"`` (``bluesky-0MQ-proxy --out-address``).
    callback : callable
        ``callback(name, doc)``, e.g. a ``FusionCallback``.

    Notes
    -----
    The dispatcher unpickles what it receives (bluesky's default serializer):
    let only trusted publishers reach the proxy (bind it to 127.0.0.1 or a
    private network, or use its CURVE options).
    """

    def __init__(self, address: str, callback: Callable[[str, dict[str, Any]], Any]):
        self.address = parse_address(address)
        self.callback = callback
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ZmqFeed:
        """Connect to the proxy and dispatch in a daemon thread; return self."""
        from bluesky.callbacks.zmq import RemoteDispatcher

        dispatcher = RemoteDispatcher(self.address)
        dispatcher.subscribe(self.callback)
        self._thread = threading.Thread(
            target=self._run, args=(dispatcher,), name="xfusion-zmq-feed", daemon=True
        )
        self._thread.start()
        logger.info("0MQ feed: listening to %s:%d", *self.address)
        return self

    def _run(self, dispatcher: Any) -> None:
        loop = dispatcher.loop

        def check_stop() -> None:
            # Runs inside the dispatcher's loop: stopping it from another thread
            # (or from a callback) raises "Cannot close a running event loop".
            if self._stop.is_set():
                for task in asyncio.all_tasks(loop):
                    task.cancel()
            else:
                loop.call_later(0.2, check_stop)

        loop.call_soon(check_stop)
        try:
            dispatcher.start()  # returns once its task is cancelled; closes the loop
        except asyncio.CancelledError:
            pass
        except Exception:
            logger.exception("0MQ feed stopped")

    def close(self, timeout: float = 5.0) -> None:
        """Stop the dispatcher and join its thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
