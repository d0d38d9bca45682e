"""Put both cameras on one grid: HR frames on LR instants, LR field on HR field.

The UHS camera (LR) and the HS camera (HR) are triggered by one timing source but
run at unrelated rates, and the HS looks at a part of the UHS field, possibly
mirrored. :func:`align_hr_times` gives each HR frame the LR frame nearest in time
(the ``hr_index`` that :func:`~xfusion_bluesky.fusion.engine.fuse` takes) and
reports how far off that is; :func:`register_fields` (in
:mod:`~xfusion_bluesky.fusion.field`, re-exported here) puts the HS field on the
fused grid of the UHS field. Pure numpy: the worker calls these between reading a
raw run and fusing it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xfusion_bluesky.errors import RunNotFusableError
from xfusion_bluesky.fusion.field import FieldRegistration, register_fields

__all__ = [
    "WARN_ALIGNMENT_PERIODS",
    "FieldRegistration",
    "TimeAlignment",
    "align_hr_times",
    "register_fields",
]

logger = logging.getLogger(__name__)

#: An HR frame further than this (in LR periods) from its LR frame is warned about.
WARN_ALIGNMENT_PERIODS = 0.25


@dataclass(frozen=True)
class TimeAlignment:
    """Where each HR frame sits on the LR frame axis.

    Attributes
    ----------
    hr_index : ndarray, (K,) int64
        LR frame nearest in time to each kept HR frame (sorted, distinct).
    kept : ndarray, (K,) int64
        Which HR frames of the burst were kept (indices into the HS stack).
    error_s : ndarray, (K,) float64
        HR frame time minus its LR frame's time, seconds.
    max_error_periods : float
        Largest ``|error_s|`` in LR frame periods (0.5 is the worst rounding).
    dropped : int
        HR frames outside the LR burst or sharing an LR frame with a closer one.
    """

    hr_index: NDArray[np.int64]
    kept: NDArray[np.int64]
    error_s: NDArray[np.float64]
    max_error_periods: float
    dropped: int

    def metadata(self) -> dict[str, Any]:
        """Return the JSON-able record the derived run carries."""
        return {
            "hr_index": self.hr_index.tolist(),
            "hs_frames_used": self.kept.tolist(),
            "error_s": self.error_s.tolist(),
            "max_error_lr_periods": self.max_error_periods,
            "hs_frames_dropped": self.dropped,
        }


def align_hr_times(
    lr_times_s: ArrayLike, hr_times_s: ArrayLike, lr_period_s: float | None = None
) -> TimeAlignment:
    """Assign every HR frame the LR frame nearest in time.

    Parameters
    ----------
    lr_times_s, hr_times_s : array_like, (T,) and (K,) float
        Frame start times after the trigger, seconds, increasing.
    lr_period_s : float, optional
        LR frame period; default the median LR frame spacing.

    Returns
    -------
    TimeAlignment

    Raises
    ------
    RunNotFusableError
        Times not finite or not increasing, or no HR frame within the LR burst.

    Notes
    -----
    An HR frame more than half an LR period before the first or after the last LR
    frame lies outside the burst and is dropped; two HR frames nearest the same
    LR frame (HR faster than LR) keep the closer one. A warning is logged when
    an HR frame sits more than :data:`WARN_ALIGNMENT_PERIODS` periods from its LR
    frame: the fusion then uses it as if taken at that LR instant.
    """
    lr_t = np.asarray(lr_times_s, dtype=np.float64).ravel()
    hr_t = np.asarray(hr_times_s, dtype=np.float64).ravel()
    for name, times in (("UHS", lr_t), ("HS", hr_t)):
        if not np.all(np.isfinite(times)):
            raise RunNotFusableError(f"the {name} frame times contain NaN or inf")
        if times.size > 1 and np.any(np.diff(times) <= 0):
            raise RunNotFusableError(f"the {name} frame times are not increasing")
    if lr_t.size < 2:
        raise RunNotFusableError(
            f"the UHS burst has {lr_t.size} frame(s); fusion needs at least 2"
        )
    if hr_t.size == 0:
        raise RunNotFusableError("the run has no HS frames: nothing to fuse with")
    period = float(np.median(np.diff(lr_t))) if lr_period_s is None else lr_period_s
    # Against the recorded LR times: they need not be perfectly regular.
    right = np.clip(np.searchsorted(lr_t, hr_t), 1, lr_t.size - 1)
    left = right - 1
    nearest = np.where(hr_t - lr_t[left] <= lr_t[right] - hr_t, left, right)
    error = hr_t - lr_t[nearest]
    inside = np.abs(error) <= 0.5 * period * (1 + 1e-9)
    keep = np.zeros(hr_t.size, dtype=bool)
    for lr_frame in np.unique(nearest[inside]):
        candidates = np.flatnonzero(inside & (nearest == lr_frame))
        keep[candidates[np.argmin(np.abs(error[candidates]))]] = True
    kept = np.flatnonzero(keep)
    if kept.size == 0:
        raise RunNotFusableError(
            f"none of the {hr_t.size} HS frames falls within the UHS burst "
            f"({lr_t[0]:.3g} … {lr_t[-1]:.3g} s): check the timing delays"
        )
    max_error = float(np.max(np.abs(error[kept])) / period)
    if max_error > WARN_ALIGNMENT_PERIODS:
        logger.warning(
            "HS frames sit up to %.2f UHS periods from the nearest UHS frame "
            "(> %.2f): the fusion treats them as simultaneous; align the HS delay "
            "to the UHS frame grid",
            max_error,
            WARN_ALIGNMENT_PERIODS,
        )
    return TimeAlignment(
        hr_index=nearest[kept].astype(np.int64),
        kept=kept.astype(np.int64),
        error_s=error[kept],
        max_error_periods=max_error,
        dropped=int(hr_t.size - kept.size),
    )
