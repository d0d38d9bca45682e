"""Measure the HS image's similarity transform and flips from one static target.

Both inputs image the same static, textured target (a grid, a rough sample, a
speckle foil): ``lr_frame`` from the UHS, ``hr_frame`` from the HS, each the
average of many frames. The result is a :class:`~xfusion_bluesky.geometry.Similarity`
(scale ratio, rotation, sub-pixel offset, flips) with its uncertainty.

Method, in three steps, all on scikit-image and SciPy:

1. **Coarse search.** For each of the four flip candidates and a small grid of
   scale ratios and rotations over :data:`~xfusion_bluesky.geometry.SCALE_RATIO_RANGE`
   and ±:data:`~xfusion_bluesky.geometry.MAX_ROTATION_DEG`, the HS frame (smoothed
   like the UHS binning) is sampled onto the UHS pixel grid and located in the
   UHS frame with normalised cross-correlation (``skimage.feature.match_template``).
   The best peak gives the flips, a scale ratio and rotation within half a grid
   step, and the offset to a fraction of a UHS pixel. A search, not
   Fourier–Mellin: the HS sees only part of the UHS field, so the two magnitude
   spectra hold different content. Tried on a 100×80 UHS frame and a 280×220 HS
   view of a random texture (``warp_polar(scaling="log")`` of Hann-windowed
   spectra, ``phase_cross_correlation``), it got the scale within ~4 % but the
   rotation wrong by 1–3°, once by 50°. The range is small (±12 % in scale, ±3°),
   so 7 × 5 candidates per flip cover it with a step the refinement converges
   from, and the NCC peak also copes with a view that hangs half outside.
2. **Refinement** (``scipy.optimize.least_squares``) of the four parameters on
   the forward model the worker uses: the HS frame resampled onto the fused grid
   in one cubic step (:func:`~xfusion_bluesky.geometry.resample` with the inverse of
   :meth:`Similarity.matrix`), binned 4×4 to UHS pixels, with a linear gain and
   offset (the cameras differ in bit depth and gain), compared with the UHS frame
   over the UHS pixels the HS view covers. Every coarse peak (any flip) close
   to the best is refined too; the best fit wins, and a distinct fit almost as
   good means a repeating target (refused, not guessed).
3. **Uncertainty** from the Jacobian at the solution: covariance
   ``(JᵀJ)⁻¹ · σ²`` with σ² the residual variance, carried to the scale ratio,
   rotation, offset and the mapped points (``point_rms_hr_px``: RMS over the HS
   field of the standard deviation of a mapped point, in fused-grid pixels).

Failures raise :class:`~xfusion_bluesky.errors.RegistrationError` naming the
measured value and the limit: too little texture, no overlap or a poor fit, a
periodic target with no unique match, a result outside the accepted range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage, optimize

from xfusion_bluesky.calibration.coarse import (
    Candidate,
    coarse_search,
)
from xfusion_bluesky.calibration.forward import (
    ForwardModel,
    no_uncertainty,
    overlap_mask,
    uncertainty,
)
from xfusion_bluesky.checks import real_frames
from xfusion_bluesky.errors import InvalidInputError, RegistrationError
from xfusion_bluesky.geometry import (
    GRID,
    MAX_ROTATION_DEG,
    SCALE_RATIO_RANGE,
    Similarity,
)

__all__ = [
    "MIN_OVERLAP_LR_PX",
    "MIN_SCORE",
    "MIN_TEXTURE",
    "MeasuredGeometry",
    "measure_geometry",
    "texture_to_noise",
]

#: Least texture-to-noise ratio (:func:`texture_to_noise`) either frame needs.
MIN_TEXTURE = 1.5
#: Least correlation of the fitted model with the UHS frame over the overlap.
MIN_SCORE = 0.6
#: Fewest UHS pixels the HS view must cover (8 × 8).
MIN_OVERLAP_LR_PX = 64
#: Forward-model evaluations per round of refinement (a good start needs ~10–25).
_MAX_EVALUATIONS = 50
#: A different fit whose unexplained variance is within this factor of the best
#: one's makes the match ambiguous (a periodic target).
_AMBIGUITY_FACTOR = 2.0
#: A start whose fit leaves this many times the best fit's unexplained variance
#: is not refined further (it can be neither the answer nor a rival to it).
_HOPELESS_FACTOR = 2 * _AMBIGUITY_FACTOR


@dataclass(frozen=True)
class MeasuredGeometry:
    """The measured transform of the HS image onto the UHS image's fused grid.

    Attributes
    ----------
    similarity : Similarity
        Scale ratio, rotation, offset (fused-grid px) and flips.
    uncertainty : dict
        One standard deviation: ``scale_ratio``, ``rotation_deg``,
        ``offset_hr_px`` ``[σy, σx]`` and ``point_rms_hr_px``.
    score : float
        Correlation of the fitted model with the UHS frame over the overlap
        (1: perfect).
    overlap_lr_px : int
        UHS pixels compared.
    """

    similarity: Similarity
    uncertainty: dict[str, Any]
    score: float
    overlap_lr_px: int

    def metadata(self) -> dict[str, Any]:
        """Return the registration-block keys this measurement sets.

        An uncertainty the fit could not give (singular Jacobian) is stored as
        null, never as NaN (not JSON).
        """
        block = self.similarity.metadata()
        block.pop("hs_shape")
        block["uncertainty"] = {
            key: (
                [_finite_or_none(v) for v in value]
                if isinstance(value, list)
                else _finite_or_none(value)
            )
            for key, value in self.uncertainty.items()
        }
        return block


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def texture_to_noise(frame: ArrayLike) -> float:
    """Return how much registrable texture an HS frame holds over its pixel noise.

    The band-pass standard deviation (Gaussian σ 2 minus σ 16 pixels: features
    the UHS resolves, ~1–4 UHS pixels) over a robust estimate of the pixel noise
    (1.4826 × the median absolute deviation of the frame minus its σ-1
    smoothing). The HS samples the UHS pixel ~4× finer, so the two bands part
    texture from noise. Pure noise gives ≈ 0.2; a flat frame with no noise 0.

    Parameters
    ----------
    frame : array_like, (H, W)
        One HS frame (or the average of several).
    """
    image = np.asarray(frame, dtype=np.float64)
    band = ndimage.gaussian_filter(image, 2.0) - ndimage.gaussian_filter(image, 16.0)
    residual = image - ndimage.gaussian_filter(image, 1.0)
    noise = 1.4826 * float(np.median(np.abs(residual - np.median(residual))))
    scale = max(float(np.abs(image).max()), 1e-30)
    edge = 4 if min(image.shape) > 16 else 0
    signal = float(
        band[edge : image.shape[0] - edge, edge : image.shape[1] - edge].std()
    )
    return signal / max(noise, 1e-9 * scale)


def measure_geometry(
    lr_frame: ArrayLike,
    hr_frame: ArrayLike,
    *,
    scale_ratio_range: tuple[float, float] = SCALE_RATIO_RANGE,
    max_rotation_deg: float = MAX_ROTATION_DEG,
) -> MeasuredGeometry:
    """Measure where the HS field lies in the UHS field: scale, rotation, shift, flips.

    Parameters
    ----------
    lr_frame : array_like, (h, w)
        UHS image of a static textured target (the average of many frames).
    hr_frame : array_like, (H, W)
        HS image of the same target; its view overlaps the UHS field.
    scale_ratio_range : (float, float)
        Scale ratios (UHS / HS pixel size) searched and accepted.
    max_rotation_deg : float
        Largest rotation searched and accepted, either sign.

    Returns
    -------
    MeasuredGeometry

    Raises
    ------
    RegistrationError
        Too little texture in either frame, no overlap or a poor fit, an
        ambiguous (periodic) match, or a result outside the accepted range.
    InvalidInputError
        Not 2-D finite real frames, or an empty range.
    """
    lr = real_frames(lr_frame, "lr_frame", ndims=(2,)).astype(np.float64)
    hr = real_frames(hr_frame, "hr_frame", ndims=(2,)).astype(np.float64)
    low, high = (float(v) for v in scale_ratio_range)
    max_rot = float(max_rotation_deg)
    if not 0 < low <= high or not 0 <= max_rot < 45:
        raise InvalidInputError(
            f"scale_ratio_range must be 0 < low <= high and max_rotation_deg in "
            f"[0, 45); got {scale_ratio_range!r}, {max_rotation_deg!r}"
        )
    if min(lr.shape) < 8 or min(hr.shape) < 8:
        raise RegistrationError(
            f"frames of at least 8×8 pixels are needed; got UHS {lr.shape}, "
            f"HS {hr.shape}"
        )
    _check_texture(hr, lr)

    candidates = coarse_search(lr, hr, low, high, max_rot)
    fits: list[_Fit] = []
    for candidate in candidates:
        best_score = max((f.score for f in fits), default=-1.0)
        fits.append(_refine(lr, hr, candidate, best_score))
    fits.sort(key=lambda f: -f.score)
    fit = fits[0]
    if fit.overlap_lr_px < MIN_OVERLAP_LR_PX:
        raise RegistrationError(
            f"the HS view covers only {fit.overlap_lr_px} UHS pixels (at least "
            f"{MIN_OVERLAP_LR_PX} needed): the fields do not overlap enough; point "
            "both cameras at the same part of the target"
        )
    if fit.score < MIN_SCORE:
        raise RegistrationError(
            f"the best fit of the HS image onto the UHS image scores "
            f"{fit.score:.3f} (at least {MIN_SCORE} needed): the fields do not "
            "overlap, or the cameras do not see the same static target; check that "
            "both image the same part of a textured target or a grid"
        )
    _check_unique(fits[0], fits[1:])
    sim = fit.similarity
    if (
        not low - 1e-9 <= sim.scale_ratio <= high + 1e-9
        or abs(sim.rotation_deg) > max_rot + 1e-9
    ):
        raise RegistrationError(
            f"measured scale ratio {sim.scale_ratio:.4f} and rotation "
            f"{sim.rotation_deg:.3f}° lie outside the accepted range (ratio "
            f"{low}–{high}, rotation ±{max_rot}°); check the optics, or widen "
            "scale_ratio_range / max_rotation_deg if the setup really is so"
        )
    return fit.measured()


# -- texture -------------------------------------------------------------------------


def _check_texture(hr: np.ndarray, lr: np.ndarray) -> None:
    ratio = texture_to_noise(hr)
    if ratio < MIN_TEXTURE:
        raise RegistrationError(
            f"the HS image {hr.shape} has too little texture: texture-to-noise "
            f"ratio {ratio:.2f} (at least {MIN_TEXTURE} needed); image a textured "
            "target or a grid, average more frames, or check that the camera sees "
            "the beam"
        )
    spread = float(lr.std())
    if spread <= 1e-9 * max(float(np.abs(lr).max()), 1e-30):
        raise RegistrationError(
            f"the UHS image {lr.shape} is flat (standard deviation {spread:.3g}): no "
            "texture to register; image a textured target or a grid, and check that "
            "the camera sees the beam"
        )


def _check_unique(best: _Fit, others: list[_Fit]) -> None:
    """Refuse a fit that a distinct geometry matches about as well (periodic target)."""
    for other in others:
        distinct = other.similarity.point_rms_hr_px(best.similarity) > GRID
        rival = _unexplained(other.score) < _AMBIGUITY_FACTOR * _unexplained(best.score)
        if distinct and rival:
            raise RegistrationError(
                f"the HS image fits the UHS image about as well in two places "
                f"(scores {best.score:.4f} and {other.score:.4f}, "
                f"{other.similarity.point_rms_hr_px(best.similarity):.1f} grid px "
                "apart): the target repeats and the HS view is too small to tell; "
                "image a target with non-repeating texture, or a grid with a "
                "marker inside the HS view"
            )


def _unexplained(score: float) -> float:
    """Fraction of the UHS frame's variance a fit of this correlation leaves."""
    return max(1.0 - max(score, 0.0) ** 2, 1e-12)


# -- refinement ------------------------------------------------------------------------


@dataclass
class _Fit:
    similarity: Similarity
    score: float
    overlap_lr_px: int
    model: ForwardModel | None = None
    x: NDArray[np.float64] | None = None
    sigma2: float = math.nan

    def measured(self) -> MeasuredGeometry:
        if self.model is None or self.x is None:
            sigmas = no_uncertainty()
        else:
            sigmas = uncertainty(self.model, self.x, self.sigma2)
        return MeasuredGeometry(self.similarity, sigmas, self.score, self.overlap_lr_px)


def _refine(
    lr: np.ndarray, hr: np.ndarray, start: Candidate, best_score: float
) -> _Fit:
    """Least-squares fit of scale, rotation and offset on the forward model.

    A start that ends far below ``best_score`` (the best fit so far) is dropped
    after one round instead of being refined again on a redrawn overlap.
    """
    sim = start.similarity
    fit = _Fit(sim, -1.0, 0)
    for _ in range(3):
        mask = overlap_mask(sim, lr.shape, margin_lr_px=1.0)
        if mask.sum() < MIN_OVERLAP_LR_PX:
            return _Fit(sim, -1.0, int(mask.sum()))
        model = ForwardModel(lr, hr, sim, mask)
        solution = optimize.least_squares(
            model.residuals,
            np.zeros(4),
            method="lm",
            diff_step=1e-3,
            x_scale=1.0,
            max_nfev=_MAX_EVALUATIONS,
        )
        new = model.similarity(solution.x)
        moved = new.point_rms_hr_px(sim)
        sim = new
        dof = max(solution.fun.size - 6, 1)
        fit = _Fit(
            sim,
            model.correlation(solution.x),
            int(mask.sum()),
            model,
            solution.x,
            float(solution.fun @ solution.fun) / dof,
        )
        # The mask was drawn for the starting guess: redraw it if the view moved.
        if moved < 0.5 * GRID or _unexplained(fit.score) > (
            _HOPELESS_FACTOR * _unexplained(best_score)
        ):
            break
    return fit
