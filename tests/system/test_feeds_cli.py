"""`xfusion-bluesky worker` in its own process, fed by Tiled's websocket or by 0MQ.

Both workers run with --no-catch-up: the run can only reach them through the feed.
"""

import selectors
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from bluesky.callbacks.zmq import Publisher
from servers import free_port

from xfusion_bluesky.catalog import fetch_fused
from xfusion_bluesky.plans.dual_camera import dual_camera_scan


def _wait_for_line(process, text, timeout):
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"the worker exited with {process.returncode}")
            if selector.select(timeout=0.5) and text in process.stdout.readline():
                return
    raise AssertionError(f"no {text!r} from the worker within {timeout} s")


@contextmanager
def cli_worker(tmp_path, *args):
    """Run `xfusion-bluesky worker ARGS`; stop it with SIGTERM; it must exit 0."""
    log = tmp_path / "worker.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "xfusion_bluesky", "-v", "worker", *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            _wait_for_line(process, "fusion worker on", 120)
            yield process
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0, log.read_text()[-3000:]
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stdout.close()


@pytest.mark.slow
def test_tiled_subscription_feeds_the_worker(RE, tiled, sim_devices, tmp_path):
    args = ["--tiled", tiled.uri, "--method", "bicubic", "--no-catch-up"]
    with cli_worker(tmp_path, *args):
        (uid,) = RE(dual_camera_scan())
        fused = fetch_fused(tiled.raw, uid, wait=120)
    assert fused.status == "success", fused.reason
    assert fused.frames.shape[0] == 128
    log = (tmp_path / "worker.log").read_text()
    assert f"Tiled feed: run {uid[:8]} finished" in log
    assert tiled.uri.split("api_key=")[1] not in log  # the key is never logged


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


@pytest.mark.slow
def test_zmq_proxy_feeds_the_worker(RE, tiled, sim_devices, tmp_path, zmq_proxy):
    in_port, out_port = zmq_proxy
    args = ["--tiled", tiled.uri, "--zmq", f"127.0.0.1:{out_port}"]
    with cli_worker(tmp_path, *args, "--method", "bicubic", "--no-catch-up"):
        publisher = Publisher(f"127.0.0.1:{in_port}")
        try:
            RE.subscribe(publisher)
            time.sleep(1.5)  # PUB/SUB slow joiner, on both sides of the proxy
            (uid,) = RE(dual_camera_scan())
            fused = fetch_fused(tiled.raw, uid, wait=120)
        finally:
            publisher.close()
    assert fused.status == "success", fused.reason
    assert f"run {uid[:8]} finished: queued" in (tmp_path / "worker.log").read_text()
