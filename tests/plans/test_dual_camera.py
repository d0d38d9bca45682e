import numpy as np
import pytest

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.plans.dual_camera import dual_camera_scan
from xfusion_bluesky.stored_format import FORMAT_VERSION


def test_scan_lands_in_tiled_bit_identical(RE, tiled, sim_devices, recorded):
    (uid,) = RE(dual_camera_scan(num_bursts=2, md={"sample": "Ti-6Al-4V"}))
    run = tiled.raw[uid]
    assert run.stop["exit_status"] == "success"
    primary = run["primary"]
    assert primary["uhs_image"].shape == (2, 128, 16, 24)
    assert primary["hs_image"].dtype == np.uint16
    assert np.array_equal(primary["uhs_image"].read(), np.stack(recorded["uhs"]))
    assert np.array_equal(primary["hs_image"].read(), np.stack(recorded["hs"]))
    data = primary.read()
    assert np.allclose(data["uhs_frame_times_s"].values[1], np.arange(128) / 2e6)
    assert np.allclose(data["hs_frame_times_s"].values[0], np.arange(8) / 125e3)
    assert list(data["timing_burst_seed"].values) == [7, 8]


def test_start_document_holds_what_fusion_needs(RE, tiled, sim_devices):
    (uid,) = RE(dual_camera_scan(hs_delay_s=1e-6, md={"operator": "ada"}))
    start = tiled.raw[uid].start
    assert start["plan_name"] == "dual_camera_scan"
    assert start["operator"] == "ada"
    assert start["detectors"] == ["uhs", "hs"]
    assert start["xfusion_format"] == FORMAT_VERSION
    assert start["uhs"]["frame_rate_hz"] == 2e6
    assert start["uhs"]["frames_per_burst"] == 128
    assert start["hs"]["frames_per_burst"] == 8
    assert start["hs"]["delay_s"] == 1e-6
    assert start["timing"]["hr_separation"] == 16
    assert start["timing"]["hs_offset_uhs_periods"] == pytest.approx(2)
    assert start["registration"]["scale"] == 4
    assert start["registration"]["hs_shape"] == [64, 96]
    assert start["registration"]["flip_x"] is False
    assert start["fusion"] == {
        "requested": True,
        "method": "edvr_stf_detail",
        "lr_separation": 1,
    }
    assert start["sim"]["scene_family"] == "fast_front"
    assert start["sim"]["field_shape_hr"] == [64, 96]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"uhs_frame_rate_hz": 6e6}, "exceeds the HPV-X2 maximum"),
        ({"uhs_frames": 100}, "one of \\(128, 256\\)"),
        ({"uhs_exposure_s": 1e-6}, "longer than the frame period"),
        ({"hs_frame_rate_hz": 2e6}, "exceeds the Phantom TMX 7510 maximum"),
        ({"hs_exposure_s": 1e-4}, "longer than the frame period"),
        ({"uhs_delay_s": -1e-6}, "uhs_delay_s must be a finite delay"),
        ({"lr_separation": 5}, "lr_separation must be 1, 2 or 3"),
    ],
)
def test_bad_settings_raise_before_anything_is_armed(RE, sim_devices, kwargs, match):
    documents = []
    RE.subscribe(lambda name, doc: documents.append(name))
    before = sim_devices.uhs.cam.acquire_period.get()
    with pytest.raises(InvalidInputError, match=match):
        RE(dual_camera_scan(**kwargs))
    assert documents == []  # no run was opened
    for camera in (sim_devices.uhs, sim_devices.hs):
        assert camera.cam.acquire.get() == 0
        assert camera.cam.trigger_mode.get() == "Internal"
        assert camera.last_burst_path() is None  # never staged
    assert sim_devices.uhs.cam.acquire_period.get() == before


def test_burst_that_does_not_fit_hs_memory(RE, sim_devices):
    sim_devices.hs.partition_bytes.put(64 * 96 * 2 * 4)  # room for 4 frames of 12 bit
    with pytest.raises(
        InvalidInputError, match=r"does not fit the \d+ B camera memory"
    ):
        RE(dual_camera_scan())
    assert sim_devices.hs.cam.acquire.get() == 0
