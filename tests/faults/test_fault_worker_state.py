"""The worker's state is true, and automatic fusion stops and starts again.

Before: a worker that gave up still said ``idle``, scans still logged "queued for
fusion", and after ``close()`` + ``start_fusion()`` the old callback stayed
subscribed and logged a traceback on every scan.
"""

import logging
import os
import signal
import time

import pytest

from xfusion_bluesky.beamline import setup
from xfusion_bluesky.callbacks import FusionCallback, FusionWorker
from xfusion_bluesky.catalog import find_derived
from xfusion_bluesky.plans.dual_camera import dual_camera_scan
from xfusion_bluesky.settings import Settings

REQUESTED = {"fusion": {"requested": True, "method": "bicubic"}}
THREAD = {"method": "bicubic", "poll_s": None, "stop_wait_s": 5}


def _finish(callback, uid):
    callback("start", {"uid": uid, "time": 0.0, **REQUESTED})
    callback("stop", {"uid": "s", "run_start": uid, "exit_status": "success"})


def _derived(bl, uid):
    return [run.stop.get("exit_status") for run in find_derived(bl.tiled, uid)]


@pytest.fixture
def since():
    """Now: a worker catching up from here sees only this test's runs."""
    return time.time()


@pytest.fixture
def write_run(tiled):
    """Return ``write() -> uid``: a finished fusion-requested run of two documents.

    The pipeline records it as failed (it has no camera blocks): enough for a
    worker to have an outcome.
    """
    from bluesky_tiled_plugins import TiledWriter
    from event_model import compose_run

    def write() -> str:
        bundle = compose_run(metadata=REQUESTED)
        writer = TiledWriter(tiled.raw)
        writer("start", bundle.start_doc)
        writer("stop", bundle.compose_stop())
        return str(bundle.start_doc["uid"])

    return write


@pytest.fixture
def beamline(tmp_path):
    settings = Settings.from_env({"XFUSION_DATA": str(tmp_path)})
    bl = setup(roi="demo", settings=settings)
    yield bl
    bl.close()


def test_worker_state_follows_its_life(tiled, since, write_run):
    worker = FusionWorker(tiled.uri, mode="thread", since=since, **THREAD)
    assert (worker.state, worker.accepting) == ("new", True)  # submit queues
    with worker:
        assert worker.state in ("starting", "idle")
        assert worker.wait_idle(60)
        assert worker.state == "idle"
    assert (worker.state, worker.accepting) == ("stopped", False)
    assert "stopped" in repr(worker)


@pytest.mark.slow  # a child process: ~10 s
def test_a_worker_that_gave_up_says_so_and_scans_are_not_queued(
    tiled, since, write_run, caplog
):
    caplog.set_level(logging.INFO, logger="xfusion_bluesky")
    options = {"method": "bicubic", "poll_s": None, "since": since}
    with FusionWorker(tiled.uri, max_restarts=0, **options) as worker:
        callback = FusionCallback(worker)
        assert worker.wait_idle(120)
        assert worker.state == "idle"
        os.kill(worker.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while worker.state != "gave_up" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (worker.state, worker.accepting) == ("gave_up", False)
        assert not worker.wait_idle(1)
        caplog.clear()
        uid = write_run()
        _finish(callback, uid)
    assert "queued for fusion" not in caplog.text
    (record,) = [r for r in caplog.records if r.name.endswith(".fusion")]
    assert record.levelno == logging.WARNING
    assert "gave_up" in record.getMessage()
    assert "not queued" in record.getMessage()
    assert "Traceback" not in caplog.text


@pytest.mark.slow  # three scans and their fusions: ~15 s
def test_fusion_stops_and_starts_again_and_the_callback_follows(beamline, caplog):
    bl = beamline
    caplog.set_level(logging.INFO, logger="xfusion_bluesky")
    first = bl.start_fusion("thread", **THREAD)
    (fused,) = bl.RE(dual_camera_scan())
    assert first.wait_idle(120)
    bl.stop_fusion()
    assert first.state == "stopped"
    assert bl.fusion_worker is None
    caplog.clear()
    (missed,) = bl.RE(dual_camera_scan())  # no fusion now, and no complaint
    assert "fusion callback failed" not in caplog.text
    assert "queued" not in caplog.text
    second = bl.start_fusion("thread", **THREAD)
    (later,) = bl.RE(dual_camera_scan())
    assert second.wait_idle(120)
    assert {r.raw_uid for r in second.results} == {missed, later}
    for uid in (fused, missed, later):
        assert _derived(bl, uid) == ["success"], uid


@pytest.mark.slow  # two scans: ~10 s
def test_start_fusion_after_the_worker_was_closed_replaces_it_and_its_callback(
    beamline, caplog
):
    bl = beamline
    old = bl.start_fusion("thread", **THREAD)
    with pytest.raises(ValueError, match="already runs"):
        bl.start_fusion("thread", **THREAD)
    old.close()  # by hand, as in the issue
    new = bl.start_fusion("thread", **THREAD)
    caplog.clear()
    (uid,) = bl.RE(dual_camera_scan())
    assert new.wait_idle(120)
    assert "fusion callback failed" not in caplog.text
    assert "Traceback" not in caplog.text
    assert [r.raw_uid for r in new.results] == [uid]
    assert old.results == []
    assert _derived(bl, uid) == ["success"]
