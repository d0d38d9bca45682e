import threading

import bluesky.preprocessors as bpp
import numpy as np
import pytest
from bluesky import Msg
from bluesky.utils import RunEngineInterrupted

from xfusion_bluesky.devices.sim import SimTimingGenerator
from xfusion_bluesky.plans.dual_camera import dual_camera_scan


def test_timeout_fails_the_run_and_disarms(RE, tiled, sim_devices):
    sim_devices.hs.timing = SimTimingGenerator(name="unplugged")  # never fires
    uids = []
    RE.subscribe(lambda name, doc: uids.append(doc["uid"]), "start")
    with pytest.raises(TimeoutError, match="hs did not store their burst within 1 s"):
        RE(dual_camera_scan(timeout_s=1.0))
    stop = tiled.raw[uids[0]].stop
    assert stop["exit_status"] == "fail"
    assert "hs did not store" in stop["reason"]
    for camera in (sim_devices.uhs, sim_devices.hs):
        assert camera.cam.acquire.get() == 0
        assert camera.cam.trigger_mode.get() == "Internal"  # restored


def _pause_after_first_event(RE):
    """Ask for a deferred pause (Ctrl-C once) from another thread after event 1."""

    def request(name, doc):
        if doc["seq_num"] == 1:  # request_pause blocks: not from the RE's thread
            threading.Thread(target=RE.request_pause, args=(True,)).start()

    RE.subscribe(request, "event")


@pytest.mark.slow  # a real scan, fused or interrupted: ~2-4 s
def test_paused_and_resumed_scan_is_consistent(RE, tiled, sim_devices, recorded):
    _pause_after_first_event(RE)
    with pytest.raises(RunEngineInterrupted):
        RE(dual_camera_scan(num_bursts=3))
    (uid,) = RE.resume()
    run = tiled.raw[uid]
    assert run.stop["exit_status"] == "success"
    assert run.stop["num_events"]["primary"] == 3
    assert np.array_equal(run["primary"]["uhs_image"].read(), np.stack(recorded["uhs"]))
    assert np.array_equal(run["primary"]["hs_image"].read(), np.stack(recorded["hs"]))


@pytest.mark.slow  # a real scan, fused or interrupted: ~2-4 s
def test_aborted_scan_keeps_what_it_recorded(RE, tiled, sim_devices, recorded):
    _pause_after_first_event(RE)
    with pytest.raises(RunEngineInterrupted):
        RE(dual_camera_scan(num_bursts=3))
    (uid,) = RE.abort(reason="sample moved")
    run = tiled.raw[uid]
    assert run.stop["exit_status"] == "abort"
    assert run["primary"]["uhs_image"].shape[0] == len(recorded["uhs"]) < 3
    assert np.array_equal(run["primary"]["uhs_image"].read(), np.stack(recorded["uhs"]))
    assert sim_devices.uhs.cam.acquire.get() == 0


def _defer_pause_during_burst(plan, timing, burst):
    """Ask for a deferred pause (one Ctrl-C) once ``timing`` has fired burst ``burst``.

    ``Msg("pause", defer=True)`` takes the RunEngine's path of a first Ctrl-C
    (``request_pause(defer=True)``) at a known point of the plan, without a signal.
    """
    fired = 0

    def ctrl_c():
        yield Msg("pause", None, defer=True)

    def after(msg):
        nonlocal fired
        if msg.command == "trigger" and msg.obj is timing:
            fired += 1
            if fired == burst:
                return None, ctrl_c()
        return None, None

    return bpp.plan_mutator(plan, after)


@pytest.mark.slow  # a real scan, paused: ~2-4 s
@pytest.mark.parametrize("num_bursts", [1, 2])
def test_a_deferred_pause_in_the_last_burst_pauses_after_it(
    RE, tiled, sim_devices, recorded, num_bursts
):
    plan = _defer_pause_during_burst(
        dual_camera_scan(num_bursts=num_bursts), sim_devices.timing, num_bursts
    )
    with pytest.raises(RunEngineInterrupted):
        RE(plan)  # used to run to its end: the pause was acknowledged, then dropped
    assert RE.state == "paused"
    assert len(recorded["uhs"]) == num_bursts  # the burst in progress was kept
    (uid,) = RE.resume()
    run = tiled.raw[uid]
    assert run.stop["exit_status"] == "success"
    assert run.stop["num_events"]["primary"] == num_bursts
    assert len(recorded["uhs"]) == num_bursts  # resuming took no burst again


@pytest.mark.slow  # a real scan, paused: ~2-4 s
def test_a_deferred_pause_in_an_earlier_burst_pauses_before_the_next(
    RE, tiled, sim_devices, recorded
):
    plan = _defer_pause_during_burst(
        dual_camera_scan(num_bursts=3), sim_devices.timing, 1
    )
    with pytest.raises(RunEngineInterrupted):
        RE(plan)
    assert len(recorded["uhs"]) == 1
    (uid,) = RE.resume()
    assert tiled.raw[uid].stop["num_events"]["primary"] == 3


@pytest.mark.slow  # a real calibration burst, paused: ~2-4 s
def test_a_deferred_pause_in_the_calibration_burst_pauses_after_it(
    RE, tiled, sim_devices
):
    from xfusion_bluesky.plans.calibration import registration_scan

    plan = _defer_pause_during_burst(registration_scan(), sim_devices.timing, 1)
    with pytest.raises(RunEngineInterrupted):
        RE(plan)
    assert RE.state == "paused"
    (uid,) = RE.resume()
    assert tiled.raw[uid].stop["exit_status"] == "success"
