"""Per reference frame: LR ref ± separation, nearest HR before/after; normalisation.

Unlike the authors' inference loop (``docs/spec/edvr_stf.md`` §9), which starts at
frame 1
and reads past the last HR frame, every frame 0 … T − 1 gets a window: where no HR
frame lies on one side of t, the nearest one on the other side stands in and the
window says so.
"""

from __future__ import annotations

import logging
import numbers
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.structures import WindowPlan

__all__ = [
    "MAX_LR_SEPARATION",
    "MIN_NORMALISER_FRACTION",
    "check_hr_index",
    "check_lr_separation",
    "normalize_attention",
    "plan_windows",
]

logger = logging.getLogger(__name__)

#: Largest LR separation the models were trained for (paper: 1, 2 or 3 frames).
MAX_LR_SEPARATION = 3
#: A normaliser below this fraction of the largest |score| counts as zero: dividing
#: by it would turn noise into ratios of 10⁶ and more.
MIN_NORMALISER_FRACTION = 1e-6


def check_lr_separation(lr_separation: Any, num_frames: int) -> int:
    """Return ``lr_separation`` as int after checking it is 1 … 3 and below T.

    Raises
    ------
    TypeError
        Not an integer.
    InvalidInputError
        Outside 1 … 3, or not smaller than the number of LR frames.
    """
    if isinstance(lr_separation, bool) or not isinstance(
        lr_separation, numbers.Integral
    ):
        raise TypeError(
            "lr_separation must be an int (LR frame periods); "
            f"got {type(lr_separation).__name__} {lr_separation!r}"
        )
    s = int(lr_separation)
    if not 1 <= s <= MAX_LR_SEPARATION:
        raise InvalidInputError(
            f"lr_separation must be 1, 2 or 3 LR frame periods; got {s}"
        )
    if num_frames < 2:
        raise InvalidInputError(
            f"fusion needs at least 2 LR frames (the reference frame and its "
            f"neighbours at ± lr_separation); got {num_frames}: record more frames"
        )
    if s >= num_frames:
        raise InvalidInputError(
            f"lr_separation must be smaller than the number of LR frames "
            f"({num_frames}); got {s}: record more frames or use lr_separation ≤ "
            f"{num_frames - 1}"
        )
    return s


def check_hr_index(
    hr_index: ArrayLike, num_frames: int, num_hr: int | None = None
) -> NDArray[np.int64]:
    """Return ``hr_index`` as int64 after checking it against the LR sequence.

    Parameters
    ----------
    hr_index : array_like, (K,) int
        LR frame index at which each HR frame was acquired.
    num_frames : int
        Number of LR frames T.
    num_hr : int, optional
        Number of HR frames K the indices must match.

    Raises
    ------
    TypeError
        Not an integer array.
    InvalidInputError
        Not 1-D, empty, length ≠ K, unsorted, duplicated, or outside 0 … T − 1.
    """
    index = np.asarray(hr_index)
    if index.size == 0:
        raise InvalidInputError("hr_index is empty: fusion needs at least one HR frame")
    if index.dtype == np.bool_ or not np.issubdtype(index.dtype, np.integer):
        raise TypeError(
            f"hr_index must hold integers (LR frame indices); got dtype {index.dtype}"
        )
    if index.ndim != 1:
        raise InvalidInputError(f"hr_index must be 1-D (K,); got shape {index.shape}")
    if num_hr is not None and index.size != num_hr:
        raise InvalidInputError(
            f"hr_index must have one entry per HR frame ({num_hr}); got {index.size}"
        )
    steps = np.diff(index)
    if np.any(steps == 0):
        dup = index[1:][steps == 0]
        raise InvalidInputError(
            f"hr_index must not repeat a frame; got duplicates {dup[:5].tolist()}"
        )
    if np.any(steps < 0):
        first = int(np.flatnonzero(steps < 0)[0])
        raise InvalidInputError(
            "hr_index must be sorted ascending (HR frames in time order); got "
            f"{int(index[first])} before {int(index[first + 1])} at position {first}"
        )
    if index[0] < 0 or index[-1] >= num_frames:
        raise InvalidInputError(
            f"hr_index must lie in 0 … {num_frames - 1} (the LR frames); "
            f"got values from {int(index[0])} to {int(index[-1])}"
        )
    return index.astype(np.int64)


def plan_windows(
    num_frames: int, hr_index: ArrayLike, *, lr_separation: int = 1
) -> WindowPlan:
    """Find every reference frame's LR triplet and HR pair.

    Parameters
    ----------
    num_frames : int
        Number of LR frames T; every frame 0 … T − 1 is a reference frame.
    hr_index : array_like, (K,) int
        Sorted, distinct LR frame indices at which the HR frames were acquired.
    lr_separation : int
        s, the distance in LR frame periods between the reference and its LR
        neighbours (1 … 3).

    Returns
    -------
    WindowPlan
        LR ``[t − s, t, t + s]`` clamped to the sequence; HR before = latest HR
        frame with index ≤ t, HR after = earliest with index > t. Before the first
        HR frame both are the first HR frame, after the last both are the last,
        and the substituted side is flagged. With one HR frame both are that frame.

    Examples
    --------
    >>> plan = plan_windows(5, [0, 3])
    >>> plan.hr_before.tolist(), plan.hr_after.tolist()
    ([0, 0, 0, 1, 1], [1, 1, 1, 1, 1])
    >>> plan.hr_after_substituted.tolist()
    [False, False, False, True, True]
    """
    if isinstance(num_frames, bool) or not isinstance(num_frames, numbers.Integral):
        raise TypeError(f"num_frames must be an int; got {num_frames!r}")
    if num_frames < 1:
        raise InvalidInputError(f"num_frames must be at least 1; got {num_frames}")
    s = check_lr_separation(lr_separation, int(num_frames))
    index = check_hr_index(hr_index, int(num_frames))
    t = np.arange(num_frames, dtype=np.int64)
    offsets = np.array([-s, 0, s], dtype=np.int64)
    raw = t[:, None] + offsets  # (T, 3)
    lr_indices = np.clip(raw, 0, num_frames - 1)
    after = np.searchsorted(index, t, side="right")  # first HR index > t
    before = after - 1
    before_substituted = before < 0
    after_substituted = after >= index.size
    before = np.where(before_substituted, 0, before)
    after = np.where(after_substituted, index.size - 1, after)
    return WindowPlan(
        lr_indices=lr_indices,
        hr_before=before.astype(np.int64),
        hr_after=after.astype(np.int64),
        hr_at_reference=index[before] == t,
        hr_before_substituted=before_substituted,
        hr_after_substituted=after_substituted,
        lr_clamped=np.any(raw != lr_indices, axis=1),
        hr_index=index,
        lr_separation=s,
    )


def normalize_attention(
    backward_attention: ArrayLike,
    forward_attention: ArrayLike,
    hr_index: ArrayLike,
    ref_index: ArrayLike | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Normalise raw scores by the backward score at the preceding HR frame's instant.

    Reference frames t are grouped by their preceding HR frame a (a ≤ t < next HR
    index); the backward and forward scores of every t in a group are divided by the
    backward score of t = a, where the HR frame "before" was acquired at the
    reference instant itself (paper §7.1.5, ``docs/spec/edvr_stf.md`` §5).

    Parameters
    ----------
    backward_attention, forward_attention : array_like, (n,) float
        Raw scores of the HR frame before / after each reference frame.
    hr_index : array_like, (K,) int
        Sorted LR frame indices of the HR frames.
    ref_index : array_like, (n,) int, optional
        Reference frame of each score; default ``0 … n − 1``.

    Returns
    -------
    normalized_backward_attention, normalized_forward_attention : ndarray, (n,)
        NaN where t precedes the first HR frame, where the group has no score at
        t = a, or where that score is not finite, ≤ 0 or tiny (below
        :data:`MIN_NORMALISER_FRACTION` of the largest |score|); one warning says
        how many and why.
    """
    backward = np.asarray(backward_attention, dtype=np.float64)
    forward = np.asarray(forward_attention, dtype=np.float64)
    if backward.ndim != 1 or backward.shape != forward.shape:
        raise InvalidInputError(
            "backward_attention and forward_attention must be 1-D and equally long; "
            f"got shapes {backward.shape} and {forward.shape}"
        )
    refs = (
        np.arange(backward.size, dtype=np.int64)
        if ref_index is None
        else np.asarray(ref_index, dtype=np.int64)
    )
    if refs.shape != backward.shape:
        raise InvalidInputError(
            f"ref_index must match the scores' shape {backward.shape}; got {refs.shape}"
        )
    index = np.asarray(hr_index, dtype=np.int64)
    if refs.size == 0:
        return backward.copy(), forward.copy()
    # Backward score at each HR frame's own instant (NaN when that t was not fused).
    order = np.argsort(refs, kind="stable")
    sorted_refs = refs[order]
    pos = np.minimum(np.searchsorted(sorted_refs, index), refs.size - 1)
    found = sorted_refs[pos] == index
    normaliser_per_hr = np.where(found, backward[order][pos], np.nan)
    group = np.searchsorted(index, refs, side="right") - 1  # preceding HR frame
    has_group = group >= 0
    normaliser = np.where(has_group, normaliser_per_hr[np.maximum(group, 0)], np.nan)
    valid = np.isfinite(normaliser) & (normaliser > _tiny(backward, forward))
    safe = np.where(valid, normaliser, 1.0)
    normalized_backward = np.where(valid, backward / safe, np.nan)
    normalized_forward = np.where(valid, forward / safe, np.nan)
    _report_undefined(backward, has_group, normaliser, valid)
    return normalized_backward, normalized_forward


def _tiny(*scores: NDArray[np.float64]) -> float:
    """Return the largest normaliser still too small to divide by.

    Raw scores have no fixed scale, so "tiny" is relative: below
    :data:`MIN_NORMALISER_FRACTION` of the largest finite score magnitude (0 when
    there is none, which leaves only the ≤ 0 rule).
    """
    finite = [np.abs(s[np.isfinite(s)]) for s in scores]
    largest = max((float(f.max()) for f in finite if f.size), default=0.0)
    return MIN_NORMALISER_FRACTION * largest


def _report_undefined(
    backward: NDArray[np.float64],
    has_group: NDArray[np.bool_],
    normaliser: NDArray[np.float64],
    valid: NDArray[np.bool_],
) -> None:
    """Log once how many finite raw scores got a NaN normalised score, and why."""
    lost = np.isfinite(backward) & ~valid
    if not lost.any():
        return
    no_group = int(np.count_nonzero(lost & ~has_group))
    missing = int(np.count_nonzero(lost & has_group & np.isnan(normaliser)))
    not_positive = int(np.count_nonzero(lost & has_group & ~np.isnan(normaliser)))
    logger.warning(
        "normalised attention is NaN for %d of %d frames: %d before the first HR "
        "frame, %d whose group has no score at its HR frame, %d whose normaliser is "
        "not finite, <= 0 or tiny",
        int(np.count_nonzero(lost)),
        backward.size,
        no_group,
        missing,
        not_positive,
    )
