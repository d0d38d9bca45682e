"""measure_geometry: the HS image's similarity and flips from one static target."""

import math

import numpy as np
import pytest
from calibration_targets import (
    bin_grid,
    grid_field,
    random_similarity,
    render_pair,
    textured_field,
)

from xfusion_bluesky.calibration import MeasuredGeometry, measure_geometry
from xfusion_bluesky.errors import RegistrationError
from xfusion_bluesky.geometry import GRID, Similarity, resample

# The targets on the misaligned sim.
MAX_SCALE_ERROR = 1e-3  # relative
MAX_ROTATION_ERROR_DEG = 0.05
MAX_POINT_RMS_HR_PX = 0.2


def _check_within_targets(measured, truth):
    sim = measured.similarity
    assert (sim.flip_y, sim.flip_x) == (truth.flip_y, truth.flip_x)
    assert abs(sim.scale_ratio / truth.scale_ratio - 1) <= MAX_SCALE_ERROR
    assert abs(sim.rotation_deg - truth.rotation_deg) <= MAX_ROTATION_ERROR_DEG
    assert sim.point_rms_hr_px(truth) <= MAX_POINT_RMS_HR_PX


@pytest.fixture(scope="module")
def measured_pairs():
    """A small random geometry (ratio, rotation, offset, flips) and its fit.

    One only: the not-slow suite stays quick; a slow test runs three, and
    ``benchmarks/bench_registration.py`` twenty.
    """
    rng = np.random.default_rng(4)
    lr_shape, hs_shape = (64, 56), (160, 140)
    pairs = []
    for _ in range(1):
        field = textured_field(rng, (GRID * lr_shape[0], GRID * lr_shape[1]))
        truth = random_similarity(rng, lr_shape, hs_shape)
        lr, hr = render_pair(rng, field, truth)
        pairs.append((truth, measure_geometry(lr, hr)))
    return pairs


def test_random_geometries_are_measured_within_the_targets(measured_pairs):
    truths = [truth for truth, _ in measured_pairs]
    # The seed draws a flip and non-trivial ratios/rotations (else the test is weak).
    assert all(t.flip_y and t.flip_x for t in truths)
    assert all(abs(t.scale_ratio - 4) > 0.05 for t in truths)
    assert all(abs(t.rotation_deg) > 0.5 for t in truths)
    for truth, measured in measured_pairs:
        _check_within_targets(measured, truth)
        assert measured.score > 0.98


def test_the_uncertainty_is_the_size_of_the_error(measured_pairs):
    for truth, measured in measured_pairs:
        sigma = measured.uncertainty
        assert set(sigma) == {
            "scale_ratio",
            "rotation_deg",
            "offset_hr_px",
            "point_rms_hr_px",
        }
        assert 0 < sigma["point_rms_hr_px"] < MAX_POINT_RMS_HR_PX
        assert 0 < sigma["scale_ratio"] < 1e-3 * truth.scale_ratio
        assert 0 < sigma["rotation_deg"] < MAX_ROTATION_ERROR_DEG
        assert all(0 < s < 0.5 for s in sigma["offset_hr_px"])
        error = measured.similarity.point_rms_hr_px(truth)
        assert error < 6 * sigma["point_rms_hr_px"]


def test_metadata_has_the_version_3_registration_keys(measured_pairs):
    _, measured = measured_pairs[0]
    block = measured.metadata()
    assert set(block) == {
        "scale_ratio",
        "rotation_deg",
        "offset_hr_px",
        "flip_y",
        "flip_x",
        "matrix_hr",
        "uncertainty",
    }
    back = Similarity.from_metadata(block, hs_shape=measured.similarity.hs_shape)
    assert back == measured.similarity
    np.testing.assert_allclose(block["matrix_hr"], back.matrix()[:2])


def test_an_uncertainty_the_fit_could_not_give_is_stored_as_null():
    nan = float("nan")
    measured = MeasuredGeometry(
        Similarity((8, 8)),
        {
            "scale_ratio": nan,
            "rotation_deg": 0.01,
            "offset_hr_px": [nan, 0.1],
            "point_rms_hr_px": nan,
        },
        score=0.9,
        overlap_lr_px=100,
    )
    assert measured.metadata()["uncertainty"] == {
        "scale_ratio": None,
        "rotation_deg": 0.01,
        "offset_hr_px": [None, 0.1],
        "point_rms_hr_px": None,
    }


def test_a_flat_target_is_refused_as_too_little_texture():
    rng = np.random.default_rng(0)
    field = np.full((256, 224), 0.5)
    lr, hr = render_pair(rng, field, Similarity((160, 140), offset_hr_px=(40, 40)))
    with pytest.raises(RegistrationError, match=r"too little texture.*textured target"):
        measure_geometry(lr, hr)


@pytest.mark.slow
def test_a_result_outside_the_accepted_range_is_refused():
    rng = np.random.default_rng(1)
    field = textured_field(rng, (256, 224))
    truth = Similarity(
        (150, 130), scale_ratio=4.0, rotation_deg=1.5, offset_hr_px=(60, 50)
    )
    lr, hr = render_pair(rng, field, truth)
    with pytest.raises(RegistrationError, match=r"rotation 1\.5\d*° lie outside"):
        measure_geometry(lr, hr, max_rotation_deg=1.0)


def test_the_texture_check_tells_noise_from_texture():
    from xfusion_bluesky.calibration.registration import MIN_TEXTURE, texture_to_noise

    rng = np.random.default_rng(2)
    noise = rng.normal(100, 5, (160, 140))
    texture = textured_field(rng, (160, 140)) * 400 + noise
    assert texture_to_noise(noise) < 0.5 * MIN_TEXTURE
    assert texture_to_noise(texture) > 4 * MIN_TEXTURE


@pytest.mark.slow
def test_random_geometries_meet_the_targets():
    """Three geometries: ratio 3.5–4.5, ±3°, any shift, flips (the benchmark: 20)."""
    rng = np.random.default_rng(2026)
    lr_shape, hs_shape = (100, 80), (280, 220)
    worst = 0.0
    for _ in range(3):
        field = textured_field(rng, (GRID * lr_shape[0], GRID * lr_shape[1]))
        truth = random_similarity(rng, lr_shape, hs_shape)
        lr, hr = render_pair(rng, field, truth)
        measured = measure_geometry(lr, hr)
        _check_within_targets(measured, truth)
        worst = max(worst, measured.similarity.point_rms_hr_px(truth))
    assert worst < MAX_POINT_RMS_HR_PX


@pytest.mark.slow
@pytest.mark.parametrize("flip_y", [False, True])
@pytest.mark.parametrize("flip_x", [False, True])
def test_every_flip_is_told_apart(flip_y, flip_x):
    rng = np.random.default_rng(10 + 2 * flip_y + flip_x)
    field = textured_field(rng, (256, 224))
    truth = Similarity(
        (160, 140),
        scale_ratio=3.8,
        rotation_deg=-2.2,
        offset_hr_px=(40.3, 50.8),
        flip_y=flip_y,
        flip_x=flip_x,
    )
    lr, hr = render_pair(rng, field, truth)
    _check_within_targets(measure_geometry(lr, hr), truth)


@pytest.mark.slow
def test_fields_that_do_not_overlap_are_refused():
    rng = np.random.default_rng(3)
    truth = Similarity((160, 140), offset_hr_px=(40, 40))
    lr, _ = render_pair(rng, textured_field(rng, (256, 224)), truth)
    _, hr = render_pair(rng, textured_field(rng, (256, 224)), truth)
    with pytest.raises(RegistrationError, match=r"scores 0\.\d+ .*do not overlap"):
        measure_geometry(lr, hr)


@pytest.mark.slow
def test_an_hs_view_half_outside_the_uhs_field_is_measured():
    # The view hangs ~25 % over the bottom and ~20 % over the right edge.
    rng = np.random.default_rng(4)
    big = textured_field(rng, (640, 560))
    truth = Similarity(
        (280, 220), scale_ratio=4.2, rotation_deg=1.0, offset_hr_px=(200.3, 150.7)
    )
    lr = bin_grid(big[:400, :320]) * 1000 + rng.normal(0, 10, (100, 80))
    hr = resample(big, truth.matrix(), truth.hs_shape) * 3000
    hr += rng.normal(0, 30, hr.shape)
    _check_within_targets(measure_geometry(lr, hr), truth)


@pytest.mark.slow
def test_a_periodic_grid_is_refused_and_a_grid_with_a_marker_is_measured():
    rng = np.random.default_rng(5)
    truth = Similarity(
        (280, 220), scale_ratio=4.1, rotation_deg=0.7, offset_hr_px=(60.2, 30.9)
    )
    lr, hr = render_pair(rng, grid_field((400, 320)), truth)
    with pytest.raises(RegistrationError, match="about as well in two places"):
        measure_geometry(lr, hr)
    centre = truth.map_points([[140, 110]])[0]
    marked = grid_field((400, 320), marker=(centre[0] + 20, centre[1] - 15, 15))
    lr, hr = render_pair(rng, marked, truth)
    _check_within_targets(measure_geometry(lr, hr), truth)


@pytest.mark.slow
def test_a_scene_frame_is_a_good_enough_target():
    from xfusion_bluesky.synthetic.scene import generate_scene

    rng = np.random.default_rng(6)
    field = generate_scene("friction_stir", num_frames=1, height=400, width=320, seed=3)
    truth = random_similarity(rng, (100, 80), (280, 220))
    lr, hr = render_pair(rng, field[0].astype(np.float64), truth)
    measured = measure_geometry(lr, hr)
    _check_within_targets(measured, truth)
    assert math.isfinite(measured.uncertainty["point_rms_hr_px"])
