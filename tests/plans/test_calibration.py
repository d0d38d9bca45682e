"""registration_scan and latency_scan on the misaligned simulation."""

import time

import numpy as np
import pytest

from xfusion_bluesky.errors import InvalidInputError, RegistrationError
from xfusion_bluesky.geometry import Similarity
from xfusion_bluesky.plans.calibration import registration_scan
from xfusion_bluesky.plans.dual_camera import compensate_latency, dual_camera_scan

UHS_PERIOD = 1 / 2e6


def misaligned(devices, seed):
    """Make the UHS field 96×128, the HS 3/4 of it, then misalign the pair.

    A field this size measures the rotation to ~0.03° at most: on the 64×96
    field of the tiny beamline, the noise alone takes some geometries to 0.05°.
    """
    from xfusion_bluesky.devices.sim import misalign

    for signal, value in ((devices.uhs.cam.size_y, 24), (devices.uhs.cam.size_x, 32)):
        signal.put(value)
    return misalign(devices.uhs, devices.hs, seed=seed, fit_hs_roi=True)


def stored_similarity(registration, hs_shape=(72, 96)):
    return Similarity(
        hs_shape,
        registration.scale_ratio.get(),
        registration.rotation_deg.get(),
        (registration.offset_y_hr_px.get(), registration.offset_x_hr_px.get()),
        registration.flip_y.get(),
        registration.flip_x.get(),
    )


def stop_of(tiled, uids):
    return tiled.raw[uids[-1]].stop


def start_uids(RE):
    uids = []
    RE.subscribe(lambda name, doc: uids.append(doc["uid"]), "start")
    return uids


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0])  # more seeds: benchmarks/bench_registration.py
def test_registration_scan_recovers_the_misaligned_sim(RE, tiled, sim_devices, seed):
    truth = misaligned(sim_devices, seed)
    registration = sim_devices.registration
    before = time.time()
    (scan_uid,) = RE(registration_scan())
    true = truth["hs_mount"].similarity((72, 96))
    got = stored_similarity(registration)
    stream = tiled.raw[scan_uid]["registration"].read()
    assert stream["registration_scale_ratio"].values[0] == got.scale_ratio
    registration_id = tiled.raw[scan_uid].start["registration_id"]
    assert stream["registration_measured_by"].values[0] == (
        f"registration_scan:{registration_id}"
    )
    assert abs(got.scale_ratio / true.scale_ratio - 1) <= 1e-3
    assert abs(got.rotation_deg - true.rotation_deg) <= 0.05
    assert got.point_rms_hr_px(true) <= 0.2
    assert (got.flip_y, got.flip_x) == (true.flip_y, true.flip_x)
    assert registration.measured_by.get() == f"registration_scan:{registration_id}"
    assert before <= registration.measured_at.get() <= time.time()
    assert registration.point_rms_std_hr_px.get() > 0
    uhs_roi = [int(v) for v in registration.measured_uhs_roi.get()]
    assert uhs_roi == list(sim_devices.uhs.settings().roi)
    assert sim_devices.timing.target.get() == "event"  # put back

    (uid,) = RE(dual_camera_scan())
    start = tiled.raw[uid].start
    block = start["registration"]
    assert block["scale_ratio"] == pytest.approx(got.scale_ratio)
    assert block["rotation_deg"] == pytest.approx(got.rotation_deg)
    np.testing.assert_allclose(block["matrix_hr"], got.matrix()[:2])
    assert set(block["uncertainty"]) == {
        "scale_ratio",
        "rotation_deg",
        "offset_hr_px",
        "point_rms_hr_px",
    }
    assert block["measured_rois"] == {
        "uhs": list(sim_devices.uhs.settings().roi),
        "hs": list(sim_devices.hs.settings().roi),
    }
    assert block["measured_at"] == pytest.approx(registration.measured_at.get())
    assert block["hs_latency_s"] == 0.0
    assert block["hs_latency_std_s"] is None
    assert block["latency_measured_by"] == "nominal"
    assert Similarity.from_metadata(block) == got
    sim = start["sim"]
    assert sim["hs_mount"]["scale_ratio"] == pytest.approx(true.scale_ratio)
    assert sim["hs_mount"]["rotation_deg"] == pytest.approx(true.rotation_deg)
    assert sim["uhs_latency_s"] == pytest.approx(truth["uhs_latency_s"])
    assert sim["hs_latency_s"] == pytest.approx(truth["hs_latency_s"])


@pytest.mark.slow
def test_an_unregistrable_target_fails_the_run_with_the_reason(RE, tiled, sim_devices):
    misaligned(sim_devices, 0)
    uids = start_uids(RE)
    with pytest.raises(RegistrationError, match="texture"):
        RE(registration_scan(target="blank"))  # the open beam: nothing to register
    stop = stop_of(tiled, uids)
    assert stop["exit_status"] == "fail"
    assert "texture" in stop["reason"]
    registration = sim_devices.registration
    assert registration.measured_by.get() == "nominal"  # nothing stored
    assert registration.scale_ratio.get() == 4.0
    assert sim_devices.timing.target.get() == "event"
    for camera in (sim_devices.uhs, sim_devices.hs):
        assert camera.cam.trigger_mode.get() == "Internal"


@pytest.mark.slow
def test_latency_scan_recovers_the_latency_and_the_scan_compensates_it(
    RE, tiled, sim_devices
):
    from xfusion_bluesky.plans.latency import latency_scan

    truth = misaligned(sim_devices, 5)
    registration = sim_devices.registration
    sim_devices.timing.c.delay.put(1e-6)  # as the user left it
    RE(registration_scan())
    (scan_uid,) = RE(latency_scan())
    latency = registration.hs_latency_s.get()
    assert abs(latency - truth["relative_latency_s"]) <= 0.1 * UHS_PERIOD
    assert 0 < registration.hs_latency_std_s.get() < 0.1 * UHS_PERIOD
    assert registration.latency_measured_by.get() == (
        f"latency_scan:{tiled.raw[scan_uid].start['latency_id']}"
    )
    stream = tiled.raw[scan_uid]["registration"].read()
    assert stream["registration_hs_latency_s"].values[0] == latency
    assert sim_devices.timing.target.get() == "event"
    assert sim_devices.hs.cam.num_images.get() == 8  # put back
    assert sim_devices.timing.a.delay.get() == 0.0
    assert sim_devices.timing.c.delay.get() == 1e-6

    (uid,) = RE(dual_camera_scan(uhs_delay_s=0.0, hs_delay_s=2e-6))
    run = tiled.raw[uid]
    timing, block = run.start["timing"], run.start["registration"]
    assert block["hs_latency_s"] == latency
    assert block["latency_measured_by"] == registration.latency_measured_by.get()
    assert timing["hs_latency_compensation_s"] == latency
    assert timing["requested_hs_delay_s"] == 2e-6
    expected = compensate_latency(0.0, 2e-6, latency)
    assert (timing["uhs_delay_s"], timing["hs_delay_s"]) == pytest.approx(expected)
    # Where the HS frames really start: on UHS frame instants.
    data = run["primary"].read()
    uhs_times = data["uhs_frame_times_s"].values[0] + truth["uhs_latency_s"]
    hs_times = data["hs_frame_times_s"].values[0] + truth["hs_latency_s"]
    phase = (hs_times - uhs_times[0]) / UHS_PERIOD
    assert np.all(np.abs(phase - np.rint(phase)) <= 0.1)
    assert phase[0] == pytest.approx(4.0, abs=0.1)  # 2 µs after UHS frame 0


@pytest.mark.slow
def test_a_target_that_does_not_move_fails_the_latency_scan(RE, tiled, sim_devices):
    from xfusion_bluesky.plans.latency import latency_scan

    uids = start_uids(RE)
    with pytest.raises(RegistrationError):
        RE(latency_scan(target="static"))
    stop = stop_of(tiled, uids)
    assert stop["exit_status"] == "fail"
    assert stop["reason"]
    assert sim_devices.registration.latency_measured_by.get() == "nominal"


@pytest.mark.slow
def test_latency_scan_refuses_a_registration_of_other_rois(RE, sim_devices):
    from xfusion_bluesky.plans.latency import latency_scan

    misaligned(sim_devices, 0)
    RE(registration_scan())
    sim_devices.hs.cam.size_x.put(64)
    documents = []
    RE.subscribe(lambda name, doc: documents.append(name))
    with pytest.raises(InvalidInputError, match="registration_scan"):
        RE(latency_scan())
    assert documents == []


def test_latency_compensation_moves_the_hs_channel_or_both():
    assert compensate_latency(0.0, 2e-6, 0.5e-6) == pytest.approx((0.0, 1.5e-6))
    assert compensate_latency(0.0, 0.0, -1e-6) == pytest.approx((0.0, 1e-6))
    # The HS would have to fire before T0: the UHS fires later instead.
    assert compensate_latency(1e-6, 0.0, 0.7e-6) == pytest.approx((1.7e-6, 0.0))
