"""A misaligned sim pair: registered, timed, recorded, fused automatically, scored.

The same event (scene seed 7) is recorded twice: by a misaligned pair (a 48×72
HS ROI with a random scale ratio, rotation, sub-pixel shift, flips and
latencies, that ``registration_scan`` and ``latency_scan`` measure first), then
by the aligned simulation (whole-pixel, no latency) with its HS cropped to the
field the misaligned run fused. A fusion worker fuses both as they end; each is
scored against the simulated event on the fused grid (``field_truth``) over
that same field, and the misaligned one must come within 0.5 dB PSNR of the
aligned one.
"""

import time

import numpy as np
import pytest

from xfusion_bluesky.callbacks import FusionCallback, FusionWorker
from xfusion_bluesky.catalog import fetch_fused
from xfusion_bluesky.catalog.burst import load_burst
from xfusion_bluesky.devices.sim import HSMount, misalign
from xfusion_bluesky.devices.sim.truth import field_truth
from xfusion_bluesky.metrics import psnr
from xfusion_bluesky.plans import dual_camera_scan, latency_scan, registration_scan

HS_SHAPE = (48, 72)
#: Geometry seed: ratio 3.70, rotation 2.5°, both offsets sub-pixel, flipped up-down.
SEED = 4
UHS_PERIOD = 1 / 2e6
PSNR_MARGIN_DB = 0.5


def _misaligned_scan(RE, devices):
    """Misalign the pair, register and time it, record a burst: (uid, truth)."""
    devices.hs.cam.size_y.put(HS_SHAPE[0])
    devices.hs.cam.size_x.put(HS_SHAPE[1])
    truth = misalign(devices.uhs, devices.hs, seed=SEED)
    RE(registration_scan())
    RE(latency_scan())
    (uid,) = RE(dual_camera_scan())
    return uid, truth


def _aligned_scan(RE, devices, window):
    """Record the same event aligned, its HS cropped to ``window`` of the grid.

    The aligned HS sees exactly the field the misaligned run fused, so both
    fusions have the same field and the same borders.
    """
    y0, x0, height, width = window
    devices.hs.cam.size_y.put(height)
    devices.hs.cam.size_x.put(width)
    devices.hs.set_mount(HSMount(y0, x0))
    for camera in (devices.uhs, devices.hs):
        camera.latency_s.put(0.0)
    devices.registration.reset((y0, x0))
    (uid,) = RE(dual_camera_scan())
    return uid


def _fused(tiled, uid):
    fused = fetch_fused(tiled.raw, uid, wait=600)
    assert fused.status == "success", fused.reason
    return fused


def _psnr(tiled, fused):
    """Return the mean PSNR (dB) of burst 0's fused frames against the truth."""
    burst = load_burst(fused, 0)
    window = fused.metadata["fusion"]["registration"]["grid_window"]
    raw = tiled.raw[fused.raw_uid]
    seed = int(raw["primary"]["timing_burst_seed"].read()[0])
    truth = field_truth(
        raw.start, burst.lr_times_s, burst_seed=seed, grid_window=window
    )
    frames = burst.fused_frames().astype(np.float64)
    return float(np.mean(psnr(frames, truth, data_range=4095.0)))


@pytest.mark.slow
def test_misaligned_sim_fuses_within_half_a_db_of_the_aligned_one(
    RE, tiled, sim_devices
):
    options = {"method": "edvr_stf", "since": time.time(), "poll_s": None}
    with FusionWorker(tiled.uri, **options) as worker:
        RE.subscribe(FusionCallback(worker))
        misaligned_uid, truth = _misaligned_scan(RE, sim_devices)
        misaligned = _fused(tiled, misaligned_uid)
        record = misaligned.metadata["fusion"]["registration"]
        window = record["grid_window"]
        assert min(window[2:]) >= 32, window
        aligned = _fused(tiled, _aligned_scan(RE, sim_devices, window))
    assert record["resampled"] is True
    assert aligned.metadata["fusion"]["registration"]["grid_window"] == window

    block = tiled.raw[misaligned_uid].start["registration"]
    assert block["measured_by"].startswith("registration_scan:")
    assert block["latency_measured_by"].startswith("latency_scan:")
    relative = truth["relative_latency_s"]
    assert abs(block["hs_latency_s"] - relative) <= 0.1 * UHS_PERIOD
    scores = {"aligned": _psnr(tiled, aligned), "misaligned": _psnr(tiled, misaligned)}
    assert scores["aligned"] - scores["misaligned"] <= PSNR_MARGIN_DB, (
        f"PSNR {scores} over the grid window {window}"
    )


# setup()'s misaligned simulation (XFUSION_SIM_MISALIGN) is checked in
# test_sim_beamline.py, in the subprocess that also checks setup("sim").
