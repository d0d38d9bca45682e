import logging

import numpy as np
import pytest

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.fusion.windows import (
    check_hr_index,
    normalize_attention,
    plan_windows,
)
from xfusion_bluesky.structures import FusionWindow


def test_windows_first_last_frame_and_t_on_hr_frame():
    plan = plan_windows(6, [0, 3])
    assert plan.lr_indices.tolist() == [
        [0, 0, 1],
        [0, 1, 2],
        [1, 2, 3],
        [2, 3, 4],
        [3, 4, 5],
        [4, 5, 5],
    ]
    assert plan.lr_clamped.tolist() == [True, False, False, False, False, True]
    assert plan.hr_before.tolist() == [0, 0, 0, 1, 1, 1]
    assert plan.hr_after.tolist() == [1, 1, 1, 1, 1, 1]
    assert plan.hr_at_reference.tolist() == [True, False, False, True, False, False]
    assert not plan.hr_before_substituted.any()
    assert plan.hr_after_substituted.tolist() == [False] * 3 + [True] * 3


def test_windows_before_first_hr_frame_use_the_first_and_are_flagged():
    plan = plan_windows(5, [2, 4])
    assert plan.hr_before.tolist() == [0, 0, 0, 0, 1]
    assert plan.hr_after.tolist() == [0, 0, 1, 1, 1]
    assert plan.hr_before_substituted.tolist() == [True, True, False, False, False]
    assert plan.hr_after_substituted.tolist() == [False, False, False, False, True]
    assert plan.hr_at_reference.tolist() == [False, False, True, False, True]


def test_windows_with_one_hr_frame_use_it_on_both_sides():
    plan = plan_windows(4, [2])
    assert plan.hr_before.tolist() == [0, 0, 0, 0]
    assert plan.hr_after.tolist() == [0, 0, 0, 0]
    assert plan.hr_before_substituted.tolist() == [True, True, False, False]
    assert plan.hr_after_substituted.tolist() == [False, False, True, True]


def test_windows_clamp_lr_neighbours_at_separation_3():
    plan = plan_windows(8, np.array([0], dtype=np.int32), lr_separation=3)
    assert plan.lr_indices[0].tolist() == [0, 0, 3]
    assert plan.lr_indices[3].tolist() == [0, 3, 6]
    assert plan.lr_indices[7].tolist() == [4, 7, 7]
    assert plan.lr_clamped.tolist() == [True] * 3 + [False] * 2 + [True] * 3
    assert plan.lr_separation == 3
    assert plan.hr_index.dtype == np.int64


def test_window_returns_one_frames_record():
    window = plan_windows(5, [2, 4]).window(1)
    assert window == FusionWindow(
        ref_index=1,
        lr_indices=(0, 1, 2),
        hr_before=0,
        hr_after=0,
        hr_at_reference=False,
        hr_before_substituted=True,
        hr_after_substituted=False,
        lr_clamped=False,
    )
    with pytest.raises(IndexError, match="ref_index"):
        plan_windows(5, [2, 4]).window(5)


@pytest.mark.parametrize(
    ("hr_index", "error", "match"),
    [
        ([0.0, 2.0], TypeError, "integers"),
        ([True, False], TypeError, "integers"),
        ([[0, 1]], InvalidInputError, "1-D"),
        ([], InvalidInputError, "at least one HR frame"),
        ([3, 1], InvalidInputError, "sorted"),
        ([1, 1], InvalidInputError, "duplicates"),
        ([-1, 2], InvalidInputError, r"0 … 4"),
        ([0, 5], InvalidInputError, r"0 … 4"),
    ],
)
def test_bad_hr_index_is_rejected(hr_index, error, match):
    with pytest.raises(error, match=match):
        plan_windows(5, hr_index)


def test_hr_index_length_must_match_hr_frames():
    with pytest.raises(InvalidInputError, match="one entry per HR frame"):
        check_hr_index([0, 2], 5, num_hr=3)


@pytest.mark.parametrize(
    ("separation", "error", "match"),
    [
        (0, InvalidInputError, "1, 2 or 3"),
        (4, InvalidInputError, "1, 2 or 3"),
        (3, InvalidInputError, "smaller than"),
        (1.0, TypeError, "int"),
        (True, TypeError, "int"),
    ],
)
def test_bad_lr_separation_is_rejected(separation, error, match):
    with pytest.raises(error, match=match):
        plan_windows(3, [0], lr_separation=separation)


def test_one_lr_frame_is_not_blamed_on_the_separation():
    with pytest.raises(InvalidInputError, match="at least 2 LR frames") as info:
        plan_windows(1, [0], lr_separation=1)
    assert "smaller separation" not in str(info.value)


def test_normalize_attention_divides_by_backward_score_at_each_hr_frame():
    backward = [2.0, 1.0, 0.5, 4.0, 2.0, 1.0]
    forward = [0.5, 1.0, 1.5, 1.0, 2.0, 4.0]
    norm_backward, norm_forward = normalize_attention(backward, forward, [0, 3])
    np.testing.assert_allclose(norm_backward, [1, 0.5, 0.25, 1, 0.5, 0.25])
    np.testing.assert_allclose(norm_forward, [0.25, 0.5, 0.75, 0.25, 0.5, 1.0])


def test_normalize_attention_is_nan_where_undefined_and_says_so(caplog):
    # t = 0, 1 precede the first HR frame; the normaliser at t = 4 is negative.
    backward = [1.0, 1.0, 2.0, 1.0, -0.5, 3.0]
    forward = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    with caplog.at_level(logging.WARNING, logger="xfusion_bluesky.fusion.windows"):
        norm_backward, norm_forward = normalize_attention(backward, forward, [2, 4])
    np.testing.assert_allclose(norm_backward, [np.nan, np.nan, 1, 0.5, np.nan, np.nan])
    np.testing.assert_allclose(norm_forward, [np.nan, np.nan, 0.5, 0.5, np.nan, np.nan])
    assert len(caplog.records) == 1
    assert "NaN for 4 of 6 frames: 2 before the first HR frame" in caplog.text


@pytest.mark.parametrize("normaliser", [0.0, np.inf, np.nan, -1e-300, 1e-310])
def test_normalize_attention_never_divides_by_a_bad_normaliser(normaliser):
    norm_backward, norm_forward = normalize_attention(
        [normaliser, 1.0], [1.0, 1.0], [0]
    )
    assert np.isnan(norm_backward).all()
    assert np.isnan(norm_forward).all()


def test_normalize_attention_group_without_its_hr_frame_is_nan(caplog):
    # Scores for t = 0, 1, 4, 5 only: the group of the HR frame at 3 lacks t = 3.
    with caplog.at_level(logging.WARNING):
        norm_backward, _ = normalize_attention(
            [2.0, 1.0, 5.0, 5.0], [1.0] * 4, [0, 3], ref_index=[0, 1, 4, 5]
        )
    np.testing.assert_allclose(norm_backward, [1.0, 0.5, np.nan, np.nan])
    assert "2 whose group has no score at its HR frame" in caplog.text


def test_normalize_attention_of_nan_scores_is_quiet(caplog):
    with caplog.at_level(logging.WARNING):
        norm_backward, _ = normalize_attention([np.nan] * 3, [np.nan] * 3, [0])
    assert np.isnan(norm_backward).all()
    assert not caplog.records
