import numpy as np
import pytest

from xfusion_bluesky.devices.limits import HS_SPEC
from xfusion_bluesky.devices.sim.event import HSMount, SimEvent
from xfusion_bluesky.devices.sim.truth import burst_seed_key, ground_truth
from xfusion_bluesky.errors import InvalidInputError

FIELD = (48, 64)
TIMES = np.arange(6) * 5e-7


def _start(event, mount, *, frame_shape=(32, 40)):
    sim = event.metadata(FIELD)
    sim["burst_seed_key"] = "timing_burst_seed"
    sim["hs_mount"] = {
        "offset_hr_px": [mount.offset_y_hr_px, mount.offset_x_hr_px],
        "flip_y": mount.flip_y,
        "flip_x": mount.flip_x,
    }
    hs = {"frame_shape": list(frame_shape), "bit_depth": HS_SPEC.bit_depth}
    return {"uid": "abc", "sim": sim, "hs": hs}


def test_truth_is_the_mounted_window_of_the_event_in_hs_counts():
    event = SimEvent("fast_front", seed=3)
    mount = HSMount(offset_y_hr_px=8, offset_x_hr_px=12, flip_y=True, flip_x=True)
    start = _start(event, mount)
    truth = ground_truth(start, TIMES, burst_seed=5)
    assert truth.shape == (6, 32, 40)
    assert truth.dtype == np.float32
    field = event.render(TIMES, FIELD, seed=5)
    window = field[:, 8:40, 12:52][:, ::-1, ::-1]  # flip_y: rows, flip_x: columns
    np.testing.assert_allclose(truth, window * 4095.0, rtol=1e-6)
    assert burst_seed_key(start) == "timing_burst_seed"


def test_truth_is_the_hs_burst_without_its_noise():
    event = SimEvent("fast_front", seed=3)
    mount = HSMount(offset_y_hr_px=4, offset_x_hr_px=0, flip_x=True)
    truth = ground_truth(_start(event, mount), TIMES, burst_seed=9)
    recorded = event.hs_burst(
        HS_SPEC, TIMES, (32, 40), field_shape_hr=FIELD, mount=mount, seed=9
    ).astype(np.float32)
    error = np.abs(recorded - truth)
    assert np.mean(error) < 0.02 * 4095  # shot and read noise only
    other_seed = ground_truth(_start(event, mount), TIMES, burst_seed=10)
    assert np.mean(np.abs(recorded - other_seed)) > 2 * np.mean(error)


def test_only_a_simulated_run_has_a_truth():
    with pytest.raises(InvalidInputError, match="run abc was not simulated"):
        ground_truth({"uid": "abc", "hs": {"frame_shape": [4, 4]}}, TIMES, burst_seed=0)
    event = SimEvent("fast_front")
    too_big = _start(event, HSMount(offset_y_hr_px=20), frame_shape=(32, 40))
    with pytest.raises(InvalidInputError, match="does not fit the simulated field"):
        ground_truth(too_big, TIMES, burst_seed=0)
