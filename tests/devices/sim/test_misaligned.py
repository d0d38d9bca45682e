"""The misaligned simulation: the HS sees the field through a similarity, late."""

import numpy as np
import pytest

from xfusion_bluesky.devices.limits import HS_SPEC, UHS_SPEC
from xfusion_bluesky.devices.sim import HSMount, SimEvent, misalign, random_mount
from xfusion_bluesky.devices.sim.targets import MOVING_VELOCITY_PX, render_target
from xfusion_bluesky.devices.sim.truth import field_truth, ground_truth
from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.geometry import MAX_ROTATION_DEG, SCALE_RATIO_RANGE

FIELD = (64, 96)
HS_SHAPE = (40, 60)
TIMES = np.arange(4) * 5e-7
MOUNT = HSMount(9.3, 14.7, flip_y=True, flip_x=False, scale_ratio=3.7, rotation_deg=2.2)


def test_a_point_lands_where_the_similarity_maps_it():
    yy, xx = np.mgrid[: FIELD[0], : FIELD[1]]
    for hs_point in ((7.0, 11.0), (30.5, 44.25)):
        # Where the HS pixel sees the field: a smooth bump put exactly there.
        y, x = MOUNT.similarity(HS_SHAPE).map_points([hs_point])[0]
        field = np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 2.5**2))
        seen = MOUNT.view(field[None].astype(np.float32), HS_SHAPE)[0]
        rows, cols = np.mgrid[: HS_SHAPE[0], : HS_SHAPE[1]]
        weights = np.clip(seen, 0, None) ** 4  # the bump's peak, not its tails
        found = (np.sum(rows * weights), np.sum(cols * weights)) / np.sum(weights)
        np.testing.assert_allclose(found, hs_point, atol=0.05)


def test_the_aligned_mount_is_the_old_window_and_flips_exactly():
    event = SimEvent("fast_front", seed=3)
    field = event.render(TIMES, FIELD, seed=5)
    aligned = HSMount(8, 12, flip_y=True, flip_x=True)
    as_floats = HSMount(8.0, 12.0, True, True, scale_ratio=4.0, rotation_deg=0.0)
    assert aligned.is_whole_pixel
    assert as_floats.is_whole_pixel
    window = field[:, 8:48, 12:72][:, ::-1, ::-1]
    assert np.array_equal(aligned.view(field, HS_SHAPE), window)
    bursts = [
        event.hs_burst(
            HS_SPEC, TIMES, HS_SHAPE, field_shape_hr=FIELD, mount=mount, seed=5
        )
        for mount in (aligned, as_floats)
    ]
    assert np.array_equal(bursts[0], bursts[1])
    assert not HSMount(8.5, 12).is_whole_pixel


def test_misaligned_hs_burst_is_the_resampled_view_plus_noise():
    event = SimEvent("fast_front", seed=3)
    burst = event.hs_burst(
        HS_SPEC, TIMES, HS_SHAPE, field_shape_hr=FIELD, mount=MOUNT, seed=5
    ).astype(np.float32)
    start = {
        "uid": "u",
        "sim": {**event.metadata(FIELD), "hs_mount": MOUNT.metadata()},
        "hs": {"frame_shape": list(HS_SHAPE), "bit_depth": HS_SPEC.bit_depth},
    }
    truth = ground_truth(start, TIMES, burst_seed=5)
    assert np.mean(np.abs(burst - truth)) < 0.02 * 4095  # noise only


def test_an_hs_view_outside_the_field_is_refused(sim_devices):
    hs = sim_devices.hs
    hs.set_mount(HSMount(2.0, 3.0, scale_ratio=3.6, rotation_deg=1.0))
    with pytest.raises(InvalidInputError, match="does not fit the simulated field"):
        hs.stage()  # 64×96 HS px at ratio 3.6 span more than the 64×96 field
    assert hs.last_burst_path() is None


def test_random_mounts_are_in_range_and_inside_the_field():
    rng = np.random.default_rng(0)
    for _ in range(20):
        mount = random_mount(rng, HS_SHAPE, FIELD)
        assert SCALE_RATIO_RANGE[0] <= mount.scale_ratio <= SCALE_RATIO_RANGE[1]
        assert abs(mount.rotation_deg) <= MAX_ROTATION_DEG
        mount.check_fits(HS_SHAPE, FIELD)
        assert not mount.is_whole_pixel
    with pytest.raises(InvalidInputError, match="at most about 3/4"):
        random_mount(rng, FIELD, FIELD)


def test_latency_shifts_what_a_camera_sees_not_its_frame_times(sim_devices):
    uhs, hs, timing = sim_devices.uhs, sim_devices.hs, sim_devices.timing
    hs.cam.size_y.put(48)  # 3/4 of the field: room for any misalignment
    hs.cam.size_x.put(72)
    truth = misalign(uhs, hs, seed=4)
    hs.mount().check_fits((48, 72), uhs.field_shape_hr())
    assert truth["uhs_latency_s"] == uhs.latency_s.get() > 0
    assert 0 < abs(truth["relative_latency_s"]) < 3 * 5e-7
    uhs.stage()
    try:
        uhs.trigger().wait(10)  # Internal: burst seed = scene seed
    finally:
        uhs.unstage()
    times = uhs.frame_times_s.get()
    np.testing.assert_allclose(times, np.arange(128) / 2e6)  # nominal
    event = timing.event()
    seen_late = event.uhs_burst(
        UHS_SPEC, times + truth["uhs_latency_s"], (16, 24), seed=7
    )
    on_time = event.uhs_burst(UHS_SPEC, times, (16, 24), seed=7)
    assert np.array_equal(uhs.last_frames, seen_late)
    assert not np.array_equal(uhs.last_frames, on_time)


def test_calibration_targets():
    static = render_target("static", np.array([0.0, 50.0]), FIELD, seed=1)
    assert np.array_equal(static[0], static[1])
    assert static.std() > 0.05
    moving = render_target("moving", np.array([0.0, 5.0]), FIELD, seed=1)
    shift = (round(5 * MOVING_VELOCITY_PX[0]), round(5 * MOVING_VELOCITY_PX[1]))
    np.testing.assert_allclose(moving[1], np.roll(moving[0], shift, (0, 1)), atol=1e-5)
    assert np.ptp(render_target("blank", np.array([0.0]), FIELD, seed=1)) == 0


def test_field_truth_is_the_grid_window_at_the_uhs_true_instants():
    event = SimEvent("fast_front", seed=3)
    sim = {**event.metadata(FIELD), "hs_mount": MOUNT.metadata(), "uhs_latency_s": 4e-7}
    start = {
        "uid": "u",
        "sim": sim,
        "hs": {"frame_shape": list(HS_SHAPE), "bit_depth": 12},
    }
    truth = field_truth(start, TIMES, burst_seed=5, grid_window=[8, 12, 32, 48])
    field = event.render(TIMES + 4e-7, FIELD, seed=5)
    np.testing.assert_allclose(truth, field[:, 8:40, 12:60] * 4095.0, rtol=1e-6)
    with pytest.raises(InvalidInputError, match="does not fit the simulated field"):
        field_truth(start, TIMES, burst_seed=5, grid_window=[40, 0, 32, 48])
