import logging

import bluesky.plans as bp
import pytest
from bluesky import RunEngine
from ophyd.sim import det

from xfusion_bluesky.callbacks import FusionCallback, FusionWorker, fusion_requested

REQUESTED = {"fusion": {"requested": True, "method": "bicubic"}}


class Recorder:
    def __init__(self):
        self.uids = []

    def submit(self, uid):
        self.uids.append(uid)


class Broken:
    def submit(self, uid):
        raise RuntimeError("queue is gone")


def _run(callback, uid, *, start_md=None, exit_status="success"):
    callback("start", {"uid": uid, "time": 0.0, **(start_md or {})})
    callback("descriptor", {"uid": "d", "run_start": uid})
    callback("stop", {"uid": "s", "run_start": uid, "exit_status": exit_status})


def test_fusion_requested_reads_the_start_document():
    assert fusion_requested(REQUESTED)
    assert not fusion_requested({"fusion": {"requested": False}})
    assert not fusion_requested({"fusion": "yes"})
    assert not fusion_requested({})


def test_only_requested_runs_are_handed_over():
    worker = Recorder()
    callback = FusionCallback(worker)
    _run(callback, "a", start_md=REQUESTED)
    _run(callback, "b")  # no fusion block
    _run(callback, "c", start_md={"fusion": {"requested": False}})
    assert worker.uids == ["a"]


def test_unsuccessful_runs_are_handed_over_to_record_the_decision(caplog):
    worker = Recorder()
    callback = FusionCallback(worker)
    with caplog.at_level(logging.INFO, logger="xfusion_bluesky.callbacks"):
        _run(callback, "a", start_md=REQUESTED, exit_status="abort")
    assert worker.uids == ["a"]
    assert "exit_status 'abort'" in caplog.text


def test_a_stop_whose_start_was_missed_is_handed_over_unless_told_not_to():
    worker = Recorder()
    FusionCallback(worker)("stop", {"run_start": "x", "exit_status": "success"})
    strict = Recorder()
    FusionCallback(strict, submit_unseen=False)(
        "stop", {"run_start": "x", "exit_status": "success"}
    )
    assert (worker.uids, strict.uids) == (["x"], [])


def test_callback_never_raises_even_on_garbage(caplog):
    callback = FusionCallback(Broken())
    _run(callback, "a", start_md=REQUESTED)  # submit raises: logged, not raised
    callback("start", {})  # no uid
    callback("stop", {"no": "run_start"})
    assert caplog.text.count("fusion callback failed") == 3


def test_runengine_finishes_its_scan_when_the_worker_is_broken(caplog):
    RE = RunEngine()
    stops = []
    RE.subscribe(FusionCallback(Broken()))
    RE.subscribe(lambda name, doc: stops.append(doc), "stop")
    (uid,) = RE(bp.count([det], num=2), **REQUESTED)
    assert stops[0]["exit_status"] == "success"
    assert stops[0]["run_start"] == uid
    assert "queue is gone" in caplog.text


def test_submit_queues_every_run_even_before_the_worker_runs():
    # A process worker that was never started: its queue still takes uids, in
    # order (an unbounded queue; a bounded one would block the RunEngine here).
    worker = FusionWorker("http://127.0.0.1:9/api/v1", mode="process")
    callback = FusionCallback(worker)
    try:
        for i in range(200):
            _run(callback, f"run-{i}", start_md=REQUESTED)
        queued = [worker._jobs.get(timeout=5) for _ in range(200)]
    finally:
        worker.close()
    assert queued == [(i, f"run-{i}") for i in range(200)]


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_worker_options_are_checked(mode):
    with pytest.raises(ValueError, match="poll_s must be > 0"):
        FusionWorker("http://h/api/v1", mode=mode, poll_s=0)
    with pytest.raises(ValueError, match="mode must be one of"):
        FusionWorker("http://h/api/v1", mode="gpu")
    with pytest.raises(ValueError, match="tiled_uri must be"):
        FusionWorker(None, mode=mode)  # a client cannot cross to a process


class GaveUp(Recorder):
    accepting = False
    state = "gave_up"
    error = "the fusion worker process died 4 times within an hour"


def test_a_worker_that_takes_no_runs_gets_none_and_the_log_says_why(caplog):
    worker = GaveUp()
    callback = FusionCallback(worker)
    with caplog.at_level(logging.INFO, logger="xfusion_bluesky"):
        _run(callback, "a1b2c3d4-run", start_md=REQUESTED)
    assert worker.uids == []
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "run a1b2c3d4 finished but the fusion worker is gave_up" in message
    assert "died 4 times" in message
    assert "bl.start_fusion()" in message
    assert "queued" not in message.replace("not queued", "")


def test_the_worker_logs_one_line_per_outcome(caplog):
    from xfusion_bluesky.callbacks.child import log_outcome
    from xfusion_bluesky.callbacks.loop import FusionOutcome

    with caplog.at_level(logging.INFO, logger="xfusion_bluesky"):
        log_outcome(FusionOutcome("a1b2c3d4-raw", "success", "e5f6a7b8-d", wall_s=41.2))
        log_outcome(FusionOutcome("b1b2c3d4-raw", "failed", reason="no HS frames"))
    success, failed = caplog.records
    assert success.levelno == logging.INFO
    assert success.getMessage() == (
        "fusion of raw run a1b2c3d4: success, derived run e5f6a7b8 "
        "in 41.2 s (submitted)"
    )
    assert failed.levelno == logging.WARNING
    assert failed.getMessage().endswith("failed in 0.0 s (submitted): no HS frames")
