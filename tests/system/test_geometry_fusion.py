"""Fusing a misaligned camera pair: the warp, the latency, and refused registrations."""

from __future__ import annotations

import numpy as np
import pytest

from xfusion_bluesky.fusion.field import INTERPOLATION_WARP
from xfusion_bluesky.geometry import Similarity, resample

PERIOD = 5e-7  # the UHS frame period of these bursts
HR_INDEX = np.array([0, 8, 16])  # LR instants the HS frames were really taken at
#: A real pair: ratio 4.2, rotated 1.5°, sub-pixel offset, mirrored top-bottom.
MISALIGNED = Similarity((52, 80), 4.2, 1.5, (5.3, 8.6), flip_y=True)


def _fuse(tiled, uid, **kwargs):
    from xfusion_bluesky.pipeline import fuse_run

    return fuse_run(tiled.raw, uid, **kwargs)


def misaligned_burst(similarity=MISALIGNED, latency_s=0.0, num_frames=24):
    """UHS frames binned from a scene; HS frames that scene seen through ``similarity``.

    The HS frames are taken at ``HR_INDEX`` but recorded ``latency_s`` early (the
    recorded times are nominal: the HS camera reacts ``latency_s`` later).
    """
    from xfusion_bluesky.synthetic.degradation import bin_frames
    from xfusion_bluesky.synthetic.scene import generate_scene

    truth = generate_scene(
        "fast_front", num_frames=num_frames, height=64, width=96, seed=5
    )
    hs = np.stack(
        [resample(truth[i], similarity.matrix(), similarity.hs_shape) for i in HR_INDEX]
    )
    return {
        "lr": np.rint(bin_frames(truth, 4) * 1023).astype(np.uint16),
        "hr": np.rint(np.clip(hs, 0, 1) * 4095).astype(np.uint16),
        "lr_times": PERIOD * np.arange(num_frames),
        "hr_times": PERIOD * HR_INDEX - latency_s,
        "truth": truth,
    }


def v3_registration(similarity, **more):
    """Return a version-3 registration block for ``similarity``, as measured."""
    return {
        **similarity.metadata(),
        "uncertainty": None,
        "measured_at": None,
        "measured_rois": None,
        "hs_latency_s": 0.0,
        "hs_latency_std_s": None,
        "latency_measured_by": "nominal",
        **more,
    }


def _arrays(burst):
    return {k: burst[k] for k in ("lr", "hr", "lr_times", "hr_times")}


@pytest.mark.slow
def test_a_misaligned_run_is_warped_onto_the_fused_grid(tiled, write_raw_run):
    from xfusion_bluesky.catalog.burst import load_burst
    from xfusion_bluesky.fusion import fuse
    from xfusion_bluesky.fusion.field import register_fields
    from xfusion_bluesky.metrics import psnr

    burst = misaligned_burst()
    uid = write_raw_run(**_arrays(burst), registration=v3_registration(MISALIGNED))
    result = _fuse(tiled, uid, method="edvr_stf")
    assert result.status == "success", result.reason
    record = result.metadata["fusion"]["registration"]
    expected = register_fields((16, 24), (52, 80), similarity=MISALIGNED)
    assert expected.resampled
    assert record["resampled"] is True
    assert record["lr_window"] == list(expected.lr_window)
    assert record["grid_window"] == [4 * v for v in record["lr_window"]]
    assert record["interpolation"] == INTERPOLATION_WARP
    assert record["scale_ratio"] == pytest.approx(4.2)
    assert record["rotation_deg"] == pytest.approx(1.5)
    _, _, height, width = record["grid_window"]
    assert result.frames.shape == (24, height, width)
    timing = result.metadata["fusion"]["timing"]
    assert timing["hs_latency_s"] == 0.0
    assert "timing" in result.outcome
    assert result.outcome["timing"]["hs_latency_s"] == 0.0
    assert "latency_residual_s" in result.outcome["bursts"][0]

    # The pipeline fused what fuse() gives on the cropped UHS and warped HS frames.
    _, _, lh, lw = expected.lr_window
    lr, hr = expected.apply(burst["lr"], burst["hr"])
    direct = fuse(lr, hr, HR_INDEX, "edvr_stf")
    fused = np.asarray(result.frames[:], np.float64)
    assert np.max(np.abs(fused - np.clip(np.rint(direct.frames), 0, 4095))) <= 1

    # The reader rebuilds the same field: the HS frames it shows are the truth
    # on the fused grid, to within the round trip's interpolation and rounding.
    shown = load_burst(result, 0)
    assert shown.registration == expected
    assert shown.lr.shape == (24, lh, lw)
    y0, x0, _, _ = expected.grid_window
    truth = burst["truth"][HR_INDEX, y0 : y0 + height, x0 : x0 + width]
    score = psnr(shown.hr / 4095.0, truth)
    assert np.min(score) > 45.0
    assert shown.panel(4).images[1][1].shape == (height, width)


@pytest.mark.slow
def test_the_measured_latency_moves_hs_frames_to_their_true_instants(
    tiled, write_raw_run
):
    latency = 2.6 * PERIOD
    burst = misaligned_burst(Similarity((64, 96)), latency_s=latency)  # aligned
    nominal = _fuse(tiled, write_raw_run(**_arrays(burst)), method="bicubic")
    uid = write_raw_run(
        **_arrays(burst),
        registration={"hs_latency_s": latency, "latency_measured_by": "test"},
    )
    corrected = _fuse(tiled, uid, method="bicubic")
    for run in (nominal, corrected):
        assert run.status == "success", run.reason
    # Recorded at −2.6, 5.4, 13.4 periods: the first falls before the burst.
    assert nominal.outcome["bursts"][0]["hr_index"] == [5, 13]
    assert nominal.metadata["fusion"]["timing"]["hs_latency_s"] == 0.0
    # ... and the residual says the latency is missing.
    missed = nominal.outcome["timing"]["residual_lr_periods"]
    assert missed == pytest.approx(2.6, abs=0.1)
    assert corrected.outcome["bursts"][0]["hr_index"] == HR_INDEX.tolist()
    assert corrected.outcome["bursts"][0]["max_error_lr_periods"] < 1e-6
    timing = corrected.metadata["fusion"]["timing"]
    assert timing["hs_latency_s"] == pytest.approx(latency)
    assert timing["latency_measured_by"] == "test"
    summary = corrected.outcome["timing"]
    assert summary["hs_latency_s"] == pytest.approx(latency)
    residual = corrected.outcome["bursts"][0]["latency_residual_lr_periods"]
    # The burst's own frames agree with the latency applied (the 0.1 period).
    assert abs(residual) < 0.1
    assert summary["residual_lr_periods"] == pytest.approx(residual)
    assert summary["bursts_measured"] == 1
    # The reader puts the HS frames on the UHS timeline too.
    from xfusion_bluesky.catalog.burst import load_burst

    shown = load_burst(corrected, 0)
    np.testing.assert_allclose(shown.hr_times_s, PERIOD * HR_INDEX, atol=1e-15)


@pytest.mark.slow
def test_refused_registrations_are_recorded_as_failed_runs(tiled, write_raw_run):
    burst = misaligned_burst()
    arrays = _arrays(burst)
    cases = {
        "scale": (
            {"registration": v3_registration(MISALIGNED, scale_ratio=4.8)},
            "scale ratio 4.8",
        ),
        "rotation": (
            {"registration": v3_registration(MISALIGNED, rotation_deg=-4.0)},
            "rotation -4°",
        ),
        "stale": (
            {
                "registration": v3_registration(
                    MISALIGNED,
                    measured_rois={"uhs": [0, 0, 16, 24], "hs": [0, 0, 52, 80]},
                ),
                "rois": {"uhs": [0, 0, 16, 24], "hs": [8, 0, 52, 80]},
            },
            "older than the camera configuration",
        ),
        "no overlap": (
            {"registration": v3_registration(MISALIGNED, offset_hr_px=[300.5, 0.0])},
            "covers no whole pixel",
        ),
    }
    for case, (options, words) in cases.items():
        result = _fuse(tiled, write_raw_run(**arrays, **options))
        assert result.status == "failed", case
        assert result.stop["exit_status"] == "fail"
        assert words in result.reason, (case, result.reason)
        assert "\n" not in result.reason
        assert "run registration_scan again" in result.reason
    # The same registration with the ROIs it was measured with fuses.
    fresh = write_raw_run(
        **arrays,
        registration=v3_registration(
            MISALIGNED, measured_rois={"uhs": [0, 0, 16, 24], "hs": [0, 0, 52, 80]}
        ),
        rois={"uhs": [0, 0, 16, 24], "hs": [0, 0, 52, 80]},
    )
    assert _fuse(tiled, fresh, method="bicubic").status == "success"


def test_the_latency_check_never_fails_a_fusion(monkeypatch):
    import xfusion_bluesky.calibration as calibration
    from xfusion_bluesky.errors import RegistrationError
    from xfusion_bluesky.pipeline.timing import latency_check, timing_summary

    frames = np.zeros((4, 2, 3)), np.arange(4.0), np.zeros((2, 8, 12)), np.arange(2.0)
    similarity = Similarity((8, 12))

    def still(*args, **kwargs):
        raise RegistrationError("no motion: the frames do not change")

    monkeypatch.setattr(calibration, "measure_latency", still, raising=False)
    nothing = latency_check(*frames, similarity, applied_s=0.5, lr_period_s=2.0)
    assert nothing == {
        "latency_measured_s": None,
        "latency_residual_s": None,
        "latency_residual_lr_periods": None,
    }

    class Measured:
        latency_s = 0.8

    monkeypatch.setattr(calibration, "measure_latency", lambda *a, **k: Measured())
    check = latency_check(*frames, similarity, applied_s=0.5, lr_period_s=2.0)
    assert check["latency_measured_s"] == pytest.approx(0.8)
    assert check["latency_residual_s"] == pytest.approx(0.3)
    assert check["latency_residual_lr_periods"] == pytest.approx(0.15)
    summary = timing_summary(
        0.5, [check, nothing, {**check, "latency_residual_s": 0.1}], 2.0
    )
    assert summary == {
        "hs_latency_s": 0.5,
        "residual_s": pytest.approx(0.2),
        "residual_lr_periods": pytest.approx(0.1),
        "bursts_measured": 2,
    }


@pytest.mark.slow
def test_a_misaligned_sim_burst_has_its_truth_on_the_fused_grid(RE, tiled, sim_devices):
    from xfusion_bluesky.catalog.burst import load_burst
    from xfusion_bluesky.devices.sim import HSMount
    from xfusion_bluesky.metrics import psnr
    from xfusion_bluesky.pipeline import fuse_run
    from xfusion_bluesky.plans import dual_camera_scan

    # The tiny sim: UHS 16×24 (a 64×96 grid), HS 64×96 px at ratio 4.4, 1° off.
    mount = HSMount(2.3, 3.6, flip_y=True, scale_ratio=4.4, rotation_deg=1.0)
    sim_devices.hs.set_mount(mount)
    truth = mount.similarity((64, 96))
    registration = sim_devices.registration
    for name, value in (
        ("scale_ratio", truth.scale_ratio),
        ("rotation_deg", truth.rotation_deg),
        ("offset_y_hr_px", truth.offset_hr_px[0]),
        ("offset_x_hr_px", truth.offset_hr_px[1]),
        ("flip_y", True),
        ("measured_by", "test:truth"),
    ):
        getattr(registration, name).put(value)
    for camera, signal in (
        (sim_devices.uhs, registration.measured_uhs_roi),
        (sim_devices.hs, registration.measured_hs_roi),
    ):  # measured with this configuration: not stale
        cam = camera.cam
        signal.put(
            np.array([s.get() for s in (cam.min_y, cam.min_x, cam.size_y, cam.size_x)])
        )
    (uid,) = RE(dual_camera_scan(num_bursts=1))
    fused = fuse_run(tiled.raw, uid, method="bicubic")
    assert fused.status == "success", fused.reason
    record = fused.metadata["fusion"]["registration"]
    assert record["resampled"] is True
    shown = load_burst(fused, 0)
    expected = shown.ground_truth()
    assert expected.shape == fused.frames.shape
    # Each HS frame used, warped onto the grid, is the truth at its UHS instant.
    full_scale = shown.full_scale
    for number, at in zip(shown.hs_used, shown.hr_index, strict=True):
        score = psnr(shown.hr[number] / full_scale, expected[at] / full_scale)
        assert float(score) > 38.0, (number, at, float(score))  # 42 dB seen


@pytest.mark.slow
def test_an_aligned_sim_burst_has_the_same_truth_as_a_crop_of_the_field(
    fused_sim_run,
):
    from xfusion_bluesky.catalog.burst import load_burst
    from xfusion_bluesky.devices.sim.truth import burst_seed_key, field_truth

    shown = load_burst(fused_sim_run, 0)
    assert not shown.registration.resampled
    cropped = shown.ground_truth()  # the HS view, cut as the fusion cut it
    key = burst_seed_key(shown.raw_start)
    seed = int(fused_sim_run.raw["primary"][key].read()[0])
    on_grid = field_truth(
        shown.raw_start,
        shown.lr_times_s,
        burst_seed=seed,
        grid_window=shown.registration.grid_window,
    )
    np.testing.assert_allclose(cropped, on_grid, rtol=1e-6, atol=1e-3)
