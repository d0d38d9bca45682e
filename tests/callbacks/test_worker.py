"""FusionWorker against the session's Tiled: queue, outcomes, catch-up, shutdown.

Thread mode unless the test is about the child process; bicubic throughout.
"""

import logging
import os
import signal

import pytest

from xfusion_bluesky.callbacks import FusionCallback, FusionWorker
from xfusion_bluesky.catalog import fetch_fused, find_derived
from xfusion_bluesky.pipeline import fuse_run
from xfusion_bluesky.plans.dual_camera import dual_camera_scan

THREAD = {"mode": "thread", "method": "bicubic", "poll_s": None, "stop_wait_s": 5}


def test_submitted_runs_are_drained_in_order_before_wait_idle_returns(tiled, write_run):
    uids = [write_run() for _ in range(3)]
    worker = FusionWorker(tiled.uri, catch_up=False, **THREAD)
    for uid in uids:  # queued before the loop runs: nothing is lost
        worker.submit(uid)
    with worker:
        assert worker.wait_idle(60)
        outcomes = worker.results
    assert [(r.job, r.raw_uid, r.trigger) for r in outcomes] == [
        (job, uid, "submitted") for job, uid in enumerate(uids)
    ]
    for outcome in outcomes:
        fused = fetch_fused(tiled.raw, outcome.raw_uid)
        assert (fused.uid, fused.status) == (outcome.derived_uid, "failed")


@pytest.mark.slow  # a real scan, fused or interrupted: ~2-4 s
def test_a_failed_run_is_recorded_and_the_next_run_is_fused(
    RE, tiled, sim_devices, write_run
):
    broken = write_run()
    with FusionWorker(tiled.uri, catch_up=False, **THREAD) as worker:
        worker.submit(broken)
        token = RE.subscribe(FusionCallback(worker))
        try:
            (good,) = RE(dual_camera_scan())
        finally:
            RE.unsubscribe(token)
        assert worker.wait_idle(120)
        assert worker.is_alive()  # the failure did not end the loop
    assert [(r.raw_uid, r.status) for r in worker.results] == [
        (broken, "failed"),
        (good, "success"),
    ]
    failed, fused = fetch_fused(tiled.raw, broken), fetch_fused(tiled.raw, good)
    assert failed.status == "failed"
    assert failed.reason
    assert fused.status == "success", fused.reason
    assert fused.raw_uid == good
    assert fused.frames.shape == (128, 64, 96)


@pytest.mark.slow
def test_catch_up_fuses_each_missed_run_of_the_window_once(tiled, since, write_run):
    missed, fused_already = write_run(), write_run()
    done = fuse_run(tiled.raw, fused_already, method="bicubic")
    options = {**THREAD, "since": since}
    with FusionWorker(tiled.uri, **options) as worker:
        assert worker.wait_idle(60)
    assert [(r.raw_uid, r.trigger) for r in worker.results] == [(missed, "catch-up")]
    assert len(find_derived(tiled.raw, missed)) == 1
    assert [run.uid for run in find_derived(tiled.raw, fused_already)] == [done.uid]
    later = write_run()
    with FusionWorker(tiled.uri, **options) as again:  # the window holds three runs
        assert again.wait_idle(60)
    assert [r.raw_uid for r in again.results] == [later]
    with FusionWorker(tiled.uri, **options, catch_up=False) as off:
        assert off.wait_idle(60)
    assert off.results == []


def test_close_stops_the_loop_once_and_for_good(tiled, write_run):
    worker = FusionWorker(tiled.uri, catch_up=False, **THREAD)
    assert "thread new on" in repr(worker)
    worker.start()
    assert worker.is_alive()
    assert worker.state in ("starting", "idle")
    assert f"thread {worker.state} on" in repr(worker)
    with pytest.raises(RuntimeError, match="started already"):
        worker.start()
    worker.close()
    worker.close()  # a second close is a no-op
    assert not worker.is_alive()
    assert "thread stopped on" in repr(worker)
    worker.submit(write_run())  # dropped with a warning: nobody would take it
    assert not worker.wait_idle(1)
    assert worker.results == []
    with pytest.raises(RuntimeError, match="closed: make a new one"):
        worker.start()  # a loop nothing could stop
    assert not worker.is_alive()


@pytest.mark.slow
def test_process_worker_fuses_in_a_child_and_its_logs_come_back(
    tiled, since, write_run, caplog
):
    uid = write_run()
    options = {"method": "bicubic", "poll_s": None, "since": since}
    caplog.set_level(logging.INFO, logger="xfusion_bluesky")
    with FusionWorker(tiled.uri, **options) as worker:
        assert worker.pid not in (None, os.getpid())
        assert worker.wait_idle(120)
        child = worker._runner
    assert child.exitcode == 0  # it stopped when asked, it was not terminated
    (outcome,) = worker.results
    assert (outcome.raw_uid, outcome.status) == (uid, "failed")
    records = [r for r in caplog.records if r.process == child.pid]
    assert any("1 raw run(s) to fuse" in r.getMessage() for r in records)
    # One line per run, said by this side whatever the child's level.
    assert f"fusion of raw run {uid[:8]}: failed" in caplog.text
    assert "fusion worker cannot" not in caplog.text


@pytest.mark.slow
def test_a_child_that_keeps_dying_is_not_restarted_for_ever(tiled, since, write_run):
    options = {"method": "bicubic", "poll_s": None, "since": since}
    with FusionWorker(tiled.uri, max_restarts=0, **options) as worker:
        assert worker.wait_idle(120)
        os.kill(worker.pid, signal.SIGKILL)
        worker.submit(write_run())
        # A replacement would catch up on the run and be idle; none comes.
        assert not worker.wait_idle(60)
        assert not worker.is_alive()
    assert "died 1 times within an hour (exit code -9): not restarted" in worker.error
