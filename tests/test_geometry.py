import math

import numpy as np
import pytest

from xfusion_bluesky.geometry import GRID, Similarity, resample


def test_whole_pixel_transform_is_the_version_1_offset_and_flips():
    sim = Similarity((6, 8), offset_hr_px=(2, 3), flip_x=True)
    assert sim.is_whole_pixel
    # HS column 0, flipped, is the rightmost column of the field window.
    np.testing.assert_allclose(
        sim.map_points([[0, 0], [0, 7], [5, 7]]), [[2, 10], [2, 3], [7, 3]]
    )


def test_scale_and_rotation_follow_the_documented_formula():
    sim = Similarity(
        (100, 100), scale_ratio=3.6, rotation_deg=2.0, offset_hr_px=(5.5, 7.25)
    )
    assert not sim.is_whole_pixel
    s, theta = GRID / 3.6, math.radians(2.0)
    r, c = 40.0, 70.0
    expected = [
        5.5 + s * (math.cos(theta) * r - math.sin(theta) * c),
        7.25 + s * (math.sin(theta) * r + math.cos(theta) * c),
    ]
    np.testing.assert_allclose(sim.map_points([[r, c]])[0], expected)


def test_metadata_round_trips_and_a_version_1_block_reads_as_nominal():
    sim = Similarity(
        (20, 30),
        scale_ratio=4.2,
        rotation_deg=-1.5,
        offset_hr_px=(1.25, 2.5),
        flip_y=True,
    )
    back = Similarity.from_metadata(sim.metadata())
    assert back == sim
    v1 = Similarity.from_metadata(
        {"offset_hr_px": [4.0, 0.0], "flip_y": True, "hs_shape": [56, 96]}
    )
    assert v1.is_whole_pixel
    assert v1.flip_y
    assert v1.scale_ratio == GRID
    assert sim.point_rms_hr_px(sim) == 0.0
    assert sim.point_rms_hr_px(
        Similarity(
            (20, 30),
            scale_ratio=4.2,
            rotation_deg=-1.5,
            offset_hr_px=(1.25, 3.5),
            flip_y=True,
        )
    ) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "bad", [{"scale_ratio": 0.0}, {"rotation_deg": float("nan")}, {"hs_shape": (0, 5)}]
)
def test_invalid_transforms_are_refused(bad):
    kwargs = {"hs_shape": (4, 4), **bad}
    with pytest.raises(ValueError, match="must be"):
        Similarity(**kwargs)


def test_resample_through_the_inverse_undoes_the_forward_map(rng):
    field = np.cumsum(
        np.cumsum(rng.standard_normal((80, 80)), 0), 1
    )  # smooth enough for cubic
    field = (field - field.min()) / np.ptp(field)
    sim = Similarity(
        (40, 40), scale_ratio=3.8, rotation_deg=1.0, offset_hr_px=(12.3, 14.7)
    )
    hs = resample(field, sim.matrix(), (40, 40))  # the HS sees the field through sim
    back = resample(hs, np.linalg.inv(sim.matrix()), (80, 80))
    inside = (slice(24, 50), slice(24, 50))  # well inside the HS view
    assert np.abs(back[inside] - field[inside]).mean() < 0.02
    # a whole-pixel shift is exact
    shift = np.array([[1.0, 0, 3], [0, 1.0, 5], [0, 0, 1]])
    np.testing.assert_allclose(
        resample(field, shift, (10, 10)), field[3:13, 5:15], atol=1e-6
    )
