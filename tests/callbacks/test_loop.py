"""serve() and pending_runs() against the session's Tiled, run in the test's thread.

Each test queues its jobs and a final None before calling serve(), so the loop
catches up, takes the jobs in order and returns: no threads, no sleeps.
"""

import os
import queue
import threading
import time

import pytest

from xfusion_bluesky.callbacks.loop import WorkerConfig, pending_runs, serve
from xfusion_bluesky.catalog import fetch_fused
from xfusion_bluesky.pipeline import fuse_run


def run_loop(tiled, *jobs, stop=False, **options):
    """Serve ``jobs`` (uids, numbered from 0) then stop; return the emitted events."""
    config = WorkerConfig(tiled.uri, **{"poll_s": None, "stop_wait_s": 0.3, **options})
    items = queue.Queue()
    for job, uid in enumerate(jobs):
        items.put((job, uid))
    items.put(None)
    flag = threading.Event()
    if stop:
        flag.set()
    events = []
    serve(config, items, flag, lambda kind, payload: events.append((kind, payload)))
    return events


def results(events):
    return [payload for kind, payload in events if kind == "result"]


def test_pending_runs_are_requested_finished_unfused_and_oldest_first(
    tiled, catalogs, since, write_run
):
    first = write_run()
    write_run(requested=False)
    write_run(finished=False)
    cut = time.time()
    second = write_run()
    assert pending_runs(catalogs, since=since) == [first, second]
    assert pending_runs(catalogs, since=cut) == [second]
    fuse_run(tiled.raw, first, method="bicubic")  # a failed record is an outcome too
    assert pending_runs(catalogs, since=since) == [second]
    assert second in pending_runs(catalogs)  # no window: every run of the server


def test_catch_up_fuses_what_is_pending_before_taking_jobs(tiled, since, write_run):
    missed = write_run()
    events = run_loop(tiled, since=since)
    assert [kind for kind, _ in events] == ["result", "caught_up"]
    (outcome,) = results(events)
    assert (outcome.raw_uid, outcome.trigger, outcome.job) == (missed, "catch-up", None)
    fused = fetch_fused(tiled.raw, missed)
    assert (outcome.status, outcome.derived_uid) == (fused.status, fused.uid)
    assert fused.status == "failed"
    assert outcome.reason == fused.reason.splitlines()[0] != ""
    assert run_loop(tiled, since=since) == [("caught_up", None)]  # nothing left


@pytest.mark.slow
def test_jobs_are_fused_in_order_after_the_catch_up(tiled, since, write_run):
    uids = [write_run() for _ in range(3)]
    events = run_loop(tiled, *uids, since=since, catch_up=False)
    assert events[0] == ("caught_up", None)
    outcomes = results(events)
    assert [(r.raw_uid, r.job, r.trigger) for r in outcomes] == [
        (uid, job, "submitted") for job, uid in enumerate(uids)
    ]
    assert [r.raw_uid for r in outcomes if r.derived_uid] == uids
    assert {fetch_fused(tiled.raw, uid).raw_uid for uid in uids} == set(uids)


@pytest.mark.slow
def test_runs_that_cannot_be_fused_are_skipped_with_the_reason_and_the_loop_goes_on(
    tiled, write_run
):
    not_requested = write_run(requested=False)
    running = write_run(finished=False)
    last = write_run()
    events = run_loop(
        tiled, "no-such-run", not_requested, running, last, catch_up=False
    )
    outcomes = results(events)
    assert [r.status for r in outcomes[:3]] == ["skipped"] * 3
    assert all(r.derived_uid is None for r in outcomes[:3])
    assert "no raw run no-such-run" in outcomes[0].reason
    assert "did not request fusion" in outcomes[1].reason
    assert "no stop document in Tiled within 0.3 s" in outcomes[2].reason
    assert outcomes[3].raw_uid == last
    assert outcomes[3].derived_uid == fetch_fused(tiled.raw, last).uid


def test_a_run_whose_outcome_cannot_be_recorded_is_an_error_and_the_loop_goes_on(
    tiled, write_run, monkeypatch
):
    import xfusion_bluesky.pipeline

    real_fuse_run = xfusion_bluesky.pipeline.fuse_run
    broken, fine = write_run(), write_run()

    def fuse_or_lose_tiled(target, uid, **options):
        if uid == broken:  # as when Tiled refuses the write of the derived run
            raise ConnectionError("refused: http://h/api/v1?api_key=s3cret\nmore")
        return real_fuse_run(target, uid, **options)

    monkeypatch.setattr(xfusion_bluesky.pipeline, "fuse_run", fuse_or_lose_tiled)
    outcomes = results(run_loop(tiled, broken, fine, catch_up=False))
    assert [r.status for r in outcomes] == ["error", "failed"]
    assert outcomes[0].derived_uid is None
    assert outcomes[0].reason == "ConnectionError: refused: http://h/api/v1?api_key=***"
    assert fetch_fused(tiled.raw, fine).status == "failed"


def test_a_poll_finds_a_run_nobody_submitted(tiled, since, write_run):
    config = WorkerConfig(tiled.uri, since=since, poll_s=0.2, catch_up=False)
    jobs, stop, events, written = queue.Queue(), threading.Event(), [], []

    def emit(kind, payload):
        events.append((kind, payload))
        if kind == "caught_up":  # written after the loop started: only a poll sees it
            written.append(write_run())
        if kind == "result":
            jobs.put(None)

    timer = threading.Timer(60, jobs.put, (None,))  # a loop that never polls ends
    timer.start()
    try:
        serve(config, jobs, stop, emit)
    finally:
        timer.cancel()
    (outcome,) = results(events)
    assert (outcome.raw_uid, outcome.trigger) == (written[0], "poll")


def test_a_set_stop_or_a_gone_parent_ends_the_loop_before_its_jobs(tiled, write_run):
    uid = write_run()
    stopped = run_loop(tiled, uid, stop=True, catch_up=False)
    orphaned = run_loop(tiled, uid, parent_pid=os.getpid(), catch_up=False)
    assert stopped == orphaned == [("caught_up", None)]
    assert run_loop(tiled, uid, catch_up=False)[1][1].raw_uid == uid


@pytest.mark.slow  # ~1 s: kept out of the quick loop
def test_an_unfinished_run_is_not_marked_orphaned_before_its_timeout(
    tiled, catalogs, since, write_run
):
    from xfusion_bluesky.catalog.orphans import ORPHAN_AFTER_S, orphaned_runs

    unfinished = write_run(finished=False)
    assert WorkerConfig(tiled.uri).orphan_after_s == ORPHAN_AFTER_S
    assert unfinished not in [o.raw_uid for o in results(run_loop(tiled, since=since))]
    assert orphaned_runs(catalogs, since=since) == []
    late = time.time() + 2 * ORPHAN_AFTER_S
    (found,) = orphaned_runs(catalogs, since=since, now=late)
    assert found[0] == unfinished
    # orphan_after_s=None never marks.
    events = run_loop(tiled, since=since, orphan_after_s=None)
    assert unfinished not in [o.raw_uid for o in results(events)]
