"""RunEngine → Tiled → FusionWorker (child process) → derived run → fetch_fused."""

import os
import signal
import time

import numpy as np
import pytest

from xfusion_bluesky.callbacks import FusionCallback, FusionWorker
from xfusion_bluesky.catalog import fetch_fused, find_derived
from xfusion_bluesky.catalog.reader import open_raw_run
from xfusion_bluesky.devices.sim import SimTimingGenerator
from xfusion_bluesky.fusion import fuse_iter
from xfusion_bluesky.fusion.alignment import align_hr_times, register_fields
from xfusion_bluesky.plans.dual_camera import dual_camera_scan


def direct_fusion(raw, uid, method, frames=None):
    """Fuse a raw run's burst 0 by hand: frames and scores of the first `frames`."""
    run = open_raw_run(raw, uid)
    burst = run.burst(0)
    reg = run.start["registration"]
    registration = register_fields(
        tuple(run.start["uhs"]["frame_shape"]),
        tuple(run.start["hs"]["frame_shape"]),
        offset_hr_px=tuple(reg["offset_hr_px"]),
        flip_y=reg["flip_y"],
        flip_x=reg["flip_x"],
        scale=reg["scale"],
    )
    period = run.start["uhs"]["frame_period_s"]
    alignment = align_hr_times(burst.lr_times_s, burst.hr_times_s, period)
    lr, hr = registration.apply(burst.lr, burst.hr)
    stream = fuse_iter(lr, hr[alignment.kept], alignment.hr_index, method)
    fused, backward, forward = [], [], []
    for t, frame, scores in stream:
        if frames is not None and t >= frames:
            break
        fused.append(frame)
        backward.append(scores.backward_attention)
        forward.append(scores.forward_attention)
    stream.close()
    return np.stack(fused), np.array(backward), np.array(forward)


def assert_same_as_direct(fused, raw, uid, method, frames=None):
    expected, backward, forward = direct_fusion(raw, uid, method, frames)
    n = len(expected)
    got = fused.frames[:n].astype(np.float64)
    counts = np.clip(np.rint(expected), 0, 65535)  # the derived run stores uint16
    assert got.shape == expected.shape
    assert np.abs(got - counts).max() <= 0.5
    np.testing.assert_allclose(fused.backward_attention[:n], backward, rtol=1e-6)
    np.testing.assert_allclose(fused.forward_attention[:n], forward, rtol=1e-6)


@pytest.fixture(scope="module")
def worker(tiled):
    """One bicubic worker process for the module; catches up on this module's runs."""
    # No polls: a later test of this module fuses its own run with its own worker.
    options = {"method": "bicubic", "since": time.time(), "poll_s": None}
    with FusionWorker(tiled.uri, **options) as worker:
        yield worker


@pytest.mark.slow
def test_scan_is_fused_automatically_like_a_direct_fusion(
    RE, tiled, sim_devices, worker
):
    RE.subscribe(FusionCallback(worker))
    (uid,) = RE(dual_camera_scan())
    fused = fetch_fused(tiled.raw, uid, wait=120)
    assert fused.status == "success", fused.reason
    assert fused.frames.shape == (128, 64, 96)
    assert fused.backward_attention.shape == fused.frame_times_s.shape == (128,)
    assert_same_as_direct(fused, tiled.raw, uid, "bicubic")
    assert worker.wait_idle(60)
    # The start-up catch-up may have seen the run too: still one derived run.
    outcomes = {(r.status, r.derived_uid) for r in worker.results if r.raw_uid == uid}
    assert outcomes == {("success", fused.uid)}
    assert [run.uid for run in find_derived(tiled.raw, uid)] == [fused.uid]
    assert worker.pid != os.getpid()


def _failed_scan(RE, sim_devices):
    """Run a scan whose HS never fires: it ends with exit_status "fail"."""
    plugged = sim_devices.hs.timing
    sim_devices.hs.timing = SimTimingGenerator(name="unplugged")
    uids = []
    token = RE.subscribe(lambda name, doc: uids.append(doc["uid"]), "start")
    try:
        with pytest.raises(TimeoutError):
            RE(dual_camera_scan(timeout_s=0.5))
    finally:
        RE.unsubscribe(token)
        sim_devices.hs.timing = plugged
    return uids[0]


@pytest.mark.slow
def test_thread_worker_records_a_failed_run_and_fuses_the_next(
    RE, tiled, sim_devices, sim_bl
):
    bl = sim_bl
    worker = bl.start_fusion("thread", method="bicubic", since=time.time())
    try:
        # Its start-up catch-up would otherwise race the submission of the
        # failed run and fuse it twice (two outcomes for one derived run).
        assert worker.wait_idle(60)
        failed_uid = _failed_scan(RE, sim_devices)
        (uid,) = RE(dual_camera_scan())
        assert worker.wait_idle(120)
    finally:
        bl.stop_fusion()
    assert worker.state == "stopped"
    failed = fetch_fused(tiled.raw, failed_uid)
    assert failed.status == "failed"
    assert "exit_status 'fail'" in failed.reason
    assert "recorded no bursts" in failed.reason
    assert fetch_fused(tiled.raw, uid).status == "success"
    assert [r.status for r in worker.results] == ["failed", "success"]


def _frames_written(run):
    try:
        return run.node["primary"]["fused"].shape[0]
    except KeyError:
        return 0


def _wait_for_running(raw, uid, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = find_derived(raw, uid)
        if runs and _frames_written(runs[0]) >= 8:  # mid-fusion
            return runs[0]
        time.sleep(0.2)
    raise AssertionError(f"no derived run of {uid} started within {timeout} s")


@pytest.mark.slow
def test_killed_worker_restarts_and_fuses_the_run_exactly_once(RE, tiled, sim_devices):
    since = time.time()
    (uid,) = RE(dual_camera_scan())  # no callback: the worker finds it by catching up
    with FusionWorker(tiled.uri, since=since, poll_s=None) as worker:  # edvr_stf
        abandoned = _wait_for_running(tiled.raw, uid)
        killed = worker.pid
        os.kill(killed, signal.SIGKILL)
        assert worker.wait_idle(300)  # a new child caught up on the run
        assert worker.pid != killed
    assert abandoned.status == "running"
    assert [r.status for r in worker.results] == ["success"]
    (fused,) = find_derived(tiled.raw, uid)
    assert fused.status == "success", fused.reason
    assert fused.uid != abandoned.uid
    assert fused.metadata["fusion"]["method"] == "edvr_stf_detail"
    assert fused.frames.shape[0] == 128
    assert np.all(np.isfinite(fused.backward_attention))
    assert_same_as_direct(fused, tiled.raw, uid, "edvr_stf_detail", frames=12)
