"""TiledFeed over the session server's websocket; ZmqFeed through a real 0MQ proxy."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
from servers import free_port

from xfusion_bluesky.callbacks import FusionCallback, TiledFeed, ZmqFeed


def _wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# tiled's stream client opens its websocket without `with`; websockets warns on the
# first recv, in the subscription's thread, which the warning-as-error would end.
@pytest.mark.slow  # starts a Tiled server of its own
@pytest.mark.filterwarnings(
    "ignore:connect\\(\\) must be used as a context manager:DeprecationWarning"
)
def test_tiled_feed_submits_each_finished_requested_run_once(
    catalogs, write_run, caplog
):
    submitted = []

    def submit(uid):
        submitted.append(uid)
        if len(submitted) == 1:
            raise RuntimeError("the worker's queue is gone")

    feed = TiledFeed(catalogs.raw, submit).start(timeout=30)
    try:
        write_run(requested=False)
        write_run(finished=False)
        first = write_run()
        assert _wait_for(lambda: first in submitted)
        # A later edit of the finished run's metadata is not a second stop.
        catalogs.raw[first].update_metadata({"note": "edited"})
        second = write_run()
        assert _wait_for(lambda: second in submitted)
    finally:
        feed.close()
    # Updates arrive in order: the runs written first were seen and passed over.
    assert submitted == [first, second]
    assert "Tiled feed could not handle an update" in caplog.text


@pytest.fixture
def zmq_proxy():
    """bluesky-0MQ-proxy on two free loopback ports; yields (in_port, out_port)."""
    ports = free_port(), free_port()
    proxy = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "bluesky-0MQ-proxy"),
            "--in-address",
            f"tcp://127.0.0.1:{ports[0]}",
            "--out-address",
            f"tcp://127.0.0.1:{ports[1]}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield ports
    proxy.terminate()
    proxy.wait(10)


class Recorder:
    def __init__(self):
        self.uids = []

    def submit(self, uid):
        self.uids.append(uid)


def test_zmq_feed_hands_requested_runs_to_the_callback_and_stops(zmq_proxy):
    import bluesky.plans as bp
    from bluesky import RunEngine
    from bluesky.callbacks.zmq import Publisher
    from ophyd.sim import det

    in_port, out_port = zmq_proxy
    worker = Recorder()
    feed = ZmqFeed(f"127.0.0.1:{out_port}", FusionCallback(worker)).start()
    thread = feed._thread
    RE = RunEngine()
    publisher = Publisher(f"127.0.0.1:{in_port}")
    RE.subscribe(publisher)
    requested = []
    try:
        # PUB/SUB drops what is sent before both ends have joined: publish until
        # a run gets through (a stop without its start is handed over too).
        deadline = time.monotonic() + 30
        while not worker.uids and time.monotonic() < deadline:
            requested += RE(bp.count([det]), fusion={"requested": True})
            _wait_for(lambda: worker.uids, timeout=0.5)
        joined = len(worker.uids)
        RE(bp.count([det]))
        (last,) = RE(bp.count([det]), fusion={"requested": True})
        assert _wait_for(lambda: last in worker.uids)
    finally:
        publisher.close()
        feed.close()
    assert set(worker.uids[:joined]) <= set(requested)
    assert worker.uids[joined:] == [last]
    assert not thread.is_alive()


def test_zmq_feed_closes_with_nothing_to_listen_to():
    feed = ZmqFeed(f"127.0.0.1:{free_port()}", lambda name, doc: None).start()
    thread = feed._thread
    assert thread.is_alive()
    feed.close()
    assert not thread.is_alive()
