"""Measure the HS camera's latency relative to the UHS from a moving target.

Each HS frame is resampled onto the fused grid with the registration's
transform (:func:`~xfusion_bluesky.geometry.resample`), over the UHS pixels its
view fully covers, and binned 4×4 to UHS pixels: ``p``. The UHS frames are
interpolated linearly in time between neighbours ``i`` and ``i + 1``:
``L(a) = (1 − a) L_i + a L_{i+1}``. After a linear gain and offset fitted from
``p`` to ``L(a)`` (the cameras differ in gain and bit depth), the sum of squared
residuals is a quadratic in ``a``; it is divided by ``(1 − a)² + a²``, the
variance of the interpolated UHS noise, so that mixing two noisy frames does
not pull every match towards the middle of an interval. The minimum over every
interval and ``a`` gives the instant ``t_k`` on the UHS timeline that HS frame
``k`` shows.

The latency is ``median(t_k − hr_times_s[k])`` over the frames that match inside
the burst: with the sign convention of the registration block, the HS frames'
true instants on the UHS timeline are ``hr_times_s + hs_latency_s``. Its standard
deviation is the standard error of that median, from the spread of the ``t_k``.

A frame is timed only if the scene moves: the frame-difference energy (beyond
what a gain and offset of the HS frame explain) must exceed what the noise puts
there by :data:`MIN_MOTION` standard deviations of that noise share. A frame
that fits every UHS instant worse than the UHS frames differ from each other (by
as much, the other way) lies outside the burst, as does one matched at the
burst's first or last instant. No frame timed:
:class:`~xfusion_bluesky.errors.RegistrationError`, saying which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xfusion_bluesky.checks import finite_scalar, real_frames
from xfusion_bluesky.errors import InvalidInputError, RegistrationError
from xfusion_bluesky.geometry import GRID, Similarity, resample

__all__ = ["MIN_MOTION", "MeasuredLatency", "measure_latency"]

#: Least significance of the motion: the frame-difference energy above what the
#: noise puts there, in standard deviations of the noise's share (a z-score).
MIN_MOTION = 6.0
#: Interpolation fractions tried per UHS interval (a 1/200 period resolution).
_FRACTIONS = np.linspace(0.0, 1.0, 201)
#: Matches this close to either end of the burst may lie outside it: dropped.
_EDGE = 0.02
#: Fewest UHS pixels the HS view must cover.
_MIN_PIXELS = 16


@dataclass(frozen=True)
class MeasuredLatency:
    """The HS camera's latency relative to the UHS, as measured.

    Attributes
    ----------
    latency_s : float
        ``hs_latency_s``: true HS frame instants on the UHS timeline are the
        recorded HS frame times plus this.
    std_s : float or None
        Standard error of ``latency_s`` (None from a single frame).
    per_frame_s : ndarray, (K,)
        ``t_k − hr_times_s[k]`` of every HS frame; NaN where not used.
    frames_used : int
        HS frames timed (inside the burst, with enough motion).
    lr_period_s : float
        The UHS frame period the measurement used.
    """

    latency_s: float
    std_s: float | None
    per_frame_s: NDArray[np.float64]
    frames_used: int
    lr_period_s: float

    @property
    def latency_lr_periods(self) -> float:
        """``latency_s`` in UHS frame periods."""
        return self.latency_s / self.lr_period_s


def measure_latency(
    lr_frames: ArrayLike,
    lr_times_s: ArrayLike,
    hr_frames: ArrayLike,
    hr_times_s: ArrayLike,
    similarity: Similarity,
    *,
    lr_period_s: float | None = None,
) -> MeasuredLatency:
    """Measure the HS latency from a burst of both cameras imaging a moving target.

    Parameters
    ----------
    lr_frames : array_like, (T, h, w)
        UHS burst, T >= 2.
    lr_times_s : array_like, (T,)
        Recorded (nominal) UHS frame times, increasing.
    hr_frames : array_like, (K, H, W)
        HS frames of the same event.
    hr_times_s : array_like, (K,)
        Recorded (nominal) HS frame times, on the same clock as ``lr_times_s``.
    similarity : Similarity
        The HS image's transform onto the UHS fused grid (``measure_geometry``).
    lr_period_s : float, optional
        UHS frame period; default: the median step of ``lr_times_s``.

    Returns
    -------
    MeasuredLatency

    Raises
    ------
    RegistrationError
        The scene does not move enough to time the frames, no HS frame matches
        inside the UHS burst, or the HS view covers too few UHS pixels.
    InvalidInputError
        Shapes or times that do not fit together.
    """
    lr = real_frames(lr_frames, "lr_frames", ndims=(3,)).astype(np.float64)
    hr = real_frames(hr_frames, "hr_frames", ndims=(3,))
    lr_times = _times(lr_times_s, "lr_times_s", lr.shape[0])
    hr_times = _times(hr_times_s, "hr_times_s", hr.shape[0])
    if lr.shape[0] < 2 or np.any(np.diff(lr_times) <= 0):
        raise InvalidInputError(
            f"lr_times_s must hold at least 2 increasing times; got {lr_times!r}"
        )
    if tuple(hr.shape[1:]) != tuple(similarity.hs_shape):
        raise InvalidInputError(
            f"hr_frames are {hr.shape[1:]} but the similarity is for HS frames "
            f"{similarity.hs_shape}; pass the registration measured for this ROI"
        )
    period = (
        float(np.median(np.diff(lr_times)))
        if lr_period_s is None
        else finite_scalar(lr_period_s, "lr_period_s")
    )
    if period <= 0:
        raise InvalidInputError(f"lr_period_s must be > 0; got {period!r}")

    mask = _covered(similarity, lr.shape[1:])
    if mask.sum() < _MIN_PIXELS:
        raise RegistrationError(
            f"the HS view covers only {int(mask.sum())} whole UHS pixels (at least "
            f"{_MIN_PIXELS} needed); check the registration and the ROIs"
        )
    uhs = lr[:, mask]
    per_frame = np.full(hr.shape[0], np.nan)
    motion = np.zeros(hr.shape[0])
    inside = np.zeros(hr.shape[0], dtype=bool)
    for k in range(hr.shape[0]):
        binned = _hs_on_uhs_pixels(hr[k], similarity, mask)
        instant, motion[k], inside[k] = _match_instant(binned, uhs, lr_times)
        per_frame[k] = instant - hr_times[k]
    timed = inside & (motion >= MIN_MOTION)
    best = float(np.max(motion[inside])) if inside.any() else -math.inf
    if not timed.any() and best <= -MIN_MOTION:
        # Worse than no motion at all: each HS frame differs from every UHS
        # instant by more than the UHS frames differ from each other.
        raise RegistrationError(
            f"none of the {hr.shape[0]} HS frames matches an instant inside the UHS "
            f"burst ({lr_times[0]:.6g}–{lr_times[-1]:.6g} s; best motion "
            f"significance {best:.1f}): the HS frames were taken outside it, or the "
            "registration is wrong; make the UHS burst span the HS frames"
        )
    if not timed.any():
        raise RegistrationError(
            f"the scene does not move enough to time the frames: motion "
            f"significance {best:.1f} at best (at least {MIN_MOTION} needed: "
            "frame-to-frame change above the noise, in standard deviations); image "
            "a target that moves by a fraction of a UHS pixel or more per UHS frame"
        )
    used = per_frame[timed]
    latency = float(np.median(used))
    std: float | None = None
    if used.size > 1:
        spread = 1.4826 * float(np.median(np.abs(used - latency)))
        # Standard error of a median: √(π/2) times that of a mean.
        std = math.sqrt(math.pi / 2) * spread / math.sqrt(used.size)
    per_frame[~timed] = np.nan
    return MeasuredLatency(latency, std, per_frame, int(timed.sum()), period)


def _times(values: ArrayLike, name: str, count: int) -> NDArray[np.float64]:
    times = real_frames(values, name, ndims=(1,)).astype(np.float64)
    if times.size != count:
        raise InvalidInputError(
            f"{name} has {times.size} times for {count} frames; pass one per frame"
        )
    return times


def _covered(similarity: Similarity, lr_shape: tuple[int, ...]) -> np.ndarray:
    """UHS pixels whose whole 4×4 grid block lies inside the HS view."""
    height, width = lr_shape
    hs_h, hs_w = similarity.hs_shape
    grid_to_hs = np.linalg.inv(similarity.matrix())
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    inside = np.ones(lr_shape, dtype=bool)
    # Cubic interpolation needs a pixel of HS frame around each sample.
    for dy in (-0.5, GRID - 0.5):
        for dx in (-0.5, GRID - 0.5):
            points = np.stack(
                [GRID * rows.ravel() + dy, GRID * cols.ravel() + dx, np.ones(rows.size)]
            )
            hs = grid_to_hs @ points
            ok = (hs[0] >= 1) & (hs[0] <= hs_h - 2) & (hs[1] >= 1) & (hs[1] <= hs_w - 2)
            inside &= ok.reshape(lr_shape)
    return inside


def _hs_on_uhs_pixels(
    frame: np.ndarray, similarity: Similarity, mask: np.ndarray
) -> np.ndarray:
    """One HS frame on the fused grid over the mask's box, binned, masked."""
    rows, cols = np.nonzero(mask)
    r0, c0 = int(rows.min()), int(cols.min())
    size = (int(rows.max()) - r0 + 1, int(cols.max()) - c0 + 1)
    origin = np.eye(3)
    origin[0, 2], origin[1, 2] = GRID * r0, GRID * c0
    out_to_in = np.linalg.inv(similarity.matrix()) @ origin
    warped = resample(frame, out_to_in, (GRID * size[0], GRID * size[1]))
    binned = (
        warped.astype(np.float64)
        .reshape(size[0], GRID, size[1], GRID)
        .mean(axis=(1, 3))
    )
    return binned[mask[r0 : r0 + size[0], c0 : c0 + size[1]]]


def _match_instant(
    hs: np.ndarray, uhs: np.ndarray, lr_times: np.ndarray
) -> tuple[float, float, bool]:
    """Return the UHS instant an HS frame shows, the motion's significance, if inside.

    ``hs`` is one binned HS frame (n,), ``uhs`` the UHS frames (T, n).
    """
    # Project out what a gain and an offset of the HS frame explain.
    basis = np.column_stack([np.ones_like(hs), hs - hs.mean()])
    basis, _ = np.linalg.qr(basis)
    rest = uhs - (uhs @ basis) @ basis.T  # (T, n)
    start = rest[:-1]
    step = rest[1:] - rest[:-1]
    a0 = np.einsum("ij,ij->i", start, start)  # per interval: |P L_i|²
    b0 = np.einsum("ij,ij->i", start, step)
    c0 = np.einsum("ij,ij->i", step, step)
    a = _FRACTIONS[None, :]
    sse = a0[:, None] + 2 * a * b0[:, None] + a * a * c0[:, None]
    weight = (1 - a) ** 2 + a**2
    cost = sse / weight
    interval, index = np.unravel_index(int(np.argmin(cost)), cost.shape)
    fraction = float(_FRACTIONS[index])
    instant = float(
        lr_times[interval] + fraction * (lr_times[interval + 1] - lr_times[interval])
    )
    # Noise of one UHS frame from the best fit; a difference holds twice that,
    # a sum of n squares with a relative spread of √(2/n).
    noise = max(float(sse[interval, index] / weight[0, index]), 1e-300)
    ratio = float(c0[interval] / (2 * noise))
    significance = (ratio - 1.0) * math.sqrt(0.5 * hs.size)
    last = lr_times.size - 2
    inside = not (
        (interval == 0 and fraction < _EDGE)
        or (interval == last and fraction > 1 - _EDGE)
    )
    return instant, significance, inside
