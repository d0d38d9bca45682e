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

from xfusion_bluesky.checks import real_frames
from xfusion_bluesky.errors import InvalidInputError, RegistrationError
from xfusion_bluesky.geometry import (
    GRID,
    MAX_ROTATION_DEG,
    SCALE_RATIO_RANGE,
    Similarity,
    resample,
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
#: Coarse search steps; the refinement converges from within half a step.
_COARSE_RATIOS = 7
_COARSE_ROTATIONS = 5
#: Longest side of the UHS frame at the coarse level (bigger frames are binned).
_COARSE_SIDE = 128
#: Least fraction of the HS view inside the UHS frame the coarse search considers.
_MIN_INSIDE = 0.5
#: Coarse peaks (any flip) this close to the best NCC are refined too ...
_COARSE_MARGIN = 0.15
#: ... up to this many, best first; per flip, up to this many distinct peaks.
_MAX_REFINED = 6
_PEAKS_PER_FLIP = 3
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

    candidates = _coarse_search(lr, hr, low, high, max_rot)
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


def _bin(frame: np.ndarray, factor: int) -> np.ndarray:
    height, width = frame.shape[0] // factor, frame.shape[1] // factor
    blocks = frame[: height * factor, : width * factor]
    return blocks.reshape(height, factor, width, factor).mean(axis=(1, 3))


def _normalise(frame: np.ndarray) -> np.ndarray:
    centred = frame - frame.mean()
    return centred / max(float(centred.std()), 1e-30)


# -- coarse search ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    similarity: Similarity
    score: float


def _inner_half_sizes(
    half_h: float, half_w: float, theta: float
) -> tuple[float, float]:
    """Half sizes of the axis-aligned rectangle inside a rectangle rotated by θ."""
    c, s = math.cos(theta), abs(math.sin(theta))
    det = c * c - s * s
    p = (half_h * c - half_w * s) / det
    q = (half_w * c - half_h * s) / det
    return max(p, 0.0), max(q, 0.0)


def _template(
    hr_smooth: np.ndarray, sim: Similarity, step: float
) -> tuple[np.ndarray, np.ndarray]:
    """Sample the HS frame at a grid of fused-grid points ``step`` apart.

    Returns the template and the fused-grid ``(y, x)`` of its pixel ``(0, 0)``.
    """
    height, width = hr_smooth.shape
    s = GRID / sim.scale_ratio
    theta = math.radians(sim.rotation_deg)
    half_h, half_w = _inner_half_sizes(
        0.5 * (height - 1) * s, 0.5 * (width - 1) * s, theta
    )
    rows = max(int(2 * half_h / step) - 1, 1)
    cols = max(int(2 * half_w / step) - 1, 1)
    centre = sim.map_points([[0.5 * (height - 1), 0.5 * (width - 1)]])[0]
    origin = centre - step * 0.5 * np.array([rows - 1, cols - 1])
    grid_to_hs = np.linalg.inv(sim.matrix())
    ys = origin[0] + step * np.arange(rows)
    xs = origin[1] + step * np.arange(cols)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    points = np.stack([yy.ravel(), xx.ravel(), np.ones(yy.size)])
    hs = grid_to_hs @ points
    samples = ndimage.map_coordinates(hr_smooth, hs[:2], order=1, mode="nearest")
    return samples.reshape(rows, cols), origin


def _coarse_search(
    lr: np.ndarray, hr: np.ndarray, low: float, high: float, max_rot: float
) -> list[_Candidate]:
    """Coarse candidates worth refining, best first (see the module docstring)."""
    from skimage.feature import peak_local_max

    factor = max(1, math.ceil(max(lr.shape) / _COARSE_SIDE))
    image = _normalise(_bin(lr, factor))
    step = float(GRID * factor)
    ratios = np.linspace(low, high, _COARSE_RATIOS if high > low else 1)
    rotations = np.linspace(-max_rot, max_rot, _COARSE_ROTATIONS if max_rot else 1)
    # A box of `step` grid px is ratio/4 · step HS px wide: smooth like that box.
    hr_smooth = ndimage.gaussian_filter(hr, 0.25 * 0.5 * (low + high) * step / 3.46)
    results: list[_Candidate] = []
    for flip_y in (False, True):
        for flip_x in (False, True):
            best: tuple[float, Similarity, np.ndarray, np.ndarray] | None = None
            for ratio in ratios:
                for rotation in rotations:
                    sim = Similarity(
                        hr.shape,
                        scale_ratio=float(ratio),
                        rotation_deg=float(rotation),
                        flip_y=flip_y,
                        flip_x=flip_x,
                    )
                    template, origin = _template(hr_smooth, sim, step)
                    template, cropped = _fit_inside(template, image.shape)
                    if template.size < 16 or template.std() == 0:
                        continue
                    ncc = _match(image, template)
                    score = float(ncc.max())
                    if best is None or score > best[0]:
                        # Output (i, j) puts the template's centre on coarse
                        # pixel (i, j): its pixel (0, 0) lies `lead` before.
                        lead = (np.array(template.shape) - 1) // 2
                        best = (score, sim, ncc, origin + step * (cropped + lead))
            if best is None:
                continue
            score, sim, ncc, origin = best
            peaks = peak_local_max(
                ncc,
                min_distance=2,
                threshold_abs=score - _COARSE_MARGIN,
                num_peaks=_PEAKS_PER_FLIP,
                exclude_border=False,
            )
            for peak in peaks:
                # Template pixel (0, 0) sits on coarse pixel `peak`, whose centre
                # is at step · peak + (step − 1) / 2 on the fused grid.
                sub = _subpixel_peak(ncc, (int(peak[0]), int(peak[1])))
                shift = step * sub + 0.5 * (step - 1) - origin
                moved = Similarity(
                    hr.shape,
                    scale_ratio=sim.scale_ratio,
                    rotation_deg=sim.rotation_deg,
                    offset_hr_px=(float(shift[0]), float(shift[1])),
                    flip_y=flip_y,
                    flip_x=flip_x,
                )
                results.append(_Candidate(moved, float(ncc[tuple(peak)])))
    if not results:
        raise RegistrationError(
            f"the HS frame {hr.shape} is too small to locate in the UHS frame "
            f"{lr.shape}; use a larger HS region of interest"
        )
    results.sort(key=lambda c: -c.score)
    kept = [c for c in results if c.score >= results[0].score - _COARSE_MARGIN]
    return kept[:_MAX_REFINED]


def _match(image: np.ndarray, template: np.ndarray) -> np.ndarray:
    """NCC of the template centred on each image pixel; the view may overhang.

    The image is zero-padded (its mean: it is normalised), so a template half
    outside still matches; positions with less than half the template inside are
    set to -1, where a few pixels could correlate by chance.
    """
    from skimage.feature import match_template

    ncc = match_template(image, template, pad_input=True, constant_values=0.0)
    inside = []
    for axis in range(2):
        size, length = template.shape[axis], image.shape[axis]
        start = np.arange(length) - (size - 1) // 2
        covered = np.minimum(start + size, length) - np.maximum(start, 0)
        inside.append(covered / size)
    fraction = inside[0][:, None] * inside[1][None, :]
    return np.where(fraction >= _MIN_INSIDE, ncc, -1.0)


def _fit_inside(
    template: np.ndarray, shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Crop a template centrally to fit inside an image of ``shape``.

    Returns the crop and the (row, col) of its first pixel in the template.
    """
    rows = min(template.shape[0], shape[0] - 2)
    cols = min(template.shape[1], shape[1] - 2)
    r0 = (template.shape[0] - rows) // 2
    c0 = (template.shape[1] - cols) // 2
    return template[r0 : r0 + rows, c0 : c0 + cols], np.array([r0, c0], float)


def _subpixel_peak(ncc: np.ndarray, peak: tuple[int, ...]) -> np.ndarray:
    """Refine an NCC peak by a parabola through it and its neighbours, per axis."""
    out = np.array(peak, dtype=np.float64)
    for axis in range(2):
        index = list(peak)
        if 0 < peak[axis] < ncc.shape[axis] - 1:
            values = []
            for delta in (-1, 0, 1):
                index[axis] = peak[axis] + delta
                values.append(float(ncc[tuple(index)]))
            curvature = values[0] - 2 * values[1] + values[2]
            if curvature < 0:
                out[axis] += 0.5 * (values[0] - values[2]) / curvature
    return out


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
    model: _ForwardModel | None = None
    x: NDArray[np.float64] | None = None
    sigma2: float = math.nan

    def measured(self) -> MeasuredGeometry:
        if self.model is None or self.x is None:
            uncertainty = _no_uncertainty()
        else:
            uncertainty = _uncertainty(self.model, self.x, self.sigma2)
        return MeasuredGeometry(
            self.similarity, uncertainty, self.score, self.overlap_lr_px
        )


def _refine(
    lr: np.ndarray, hr: np.ndarray, start: _Candidate, best_score: float
) -> _Fit:
    """Least-squares fit of scale, rotation and offset on the forward model.

    A start that ends far below ``best_score`` (the best fit so far) is dropped
    after one round instead of being refined again on a redrawn overlap.
    """
    sim = start.similarity
    fit = _Fit(sim, -1.0, 0)
    for _ in range(3):
        mask = _overlap_mask(sim, lr.shape, margin_lr_px=1.0)
        if mask.sum() < MIN_OVERLAP_LR_PX:
            return _Fit(sim, -1.0, int(mask.sum()))
        model = _ForwardModel(lr, hr, sim, mask)
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


def _overlap_mask(
    sim: Similarity, lr_shape: tuple[int, ...], margin_lr_px: float
) -> np.ndarray:
    """UHS pixels whose whole 4×4 grid block the HS view covers, with a margin."""
    height, width = lr_shape
    hs_h, hs_w = sim.hs_shape
    grid_to_hs = np.linalg.inv(sim.matrix())
    margin = margin_lr_px * GRID * sim.scale_ratio / GRID + 2.0
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    inside = np.ones(lr_shape, dtype=bool)
    # The block's corners are enough: the view is convex.
    for dy in (-0.5, GRID - 0.5):
        for dx in (-0.5, GRID - 0.5):
            pts = np.stack(
                [GRID * rows.ravel() + dy, GRID * cols.ravel() + dx, np.ones(rows.size)]
            )
            hs = grid_to_hs @ pts
            ok = (
                (hs[0] >= margin)
                & (hs[0] <= hs_h - 1 - margin)
                & (hs[1] >= margin)
                & (hs[1] <= hs_w - 1 - margin)
            )
            inside &= ok.reshape(lr_shape)
    return inside


class _ForwardModel:
    """UHS frame predicted from the HS frame for parameters near a starting guess.

    Parameters are ``(log-ratio · R, θ · R, centre y, centre x)``, offsets from the
    start, with R half the HS field's diagonal in grid px, so a unit step in each
    moves the field's edge by about one grid pixel.
    """

    def __init__(
        self, lr: np.ndarray, hr: np.ndarray, start: Similarity, mask: np.ndarray
    ) -> None:
        self.hr = hr
        self.start = start
        self.mask = mask
        rows, cols = np.nonzero(mask)
        self.r0, self.c0 = int(rows.min()), int(cols.min())
        self.shape_lr = (int(rows.max()) - self.r0 + 1, int(cols.max()) - self.c0 + 1)
        self.sub_mask = mask[
            self.r0 : self.r0 + self.shape_lr[0], self.c0 : self.c0 + self.shape_lr[1]
        ]
        self.target = lr[
            self.r0 : self.r0 + self.shape_lr[0], self.c0 : self.c0 + self.shape_lr[1]
        ][self.sub_mask]
        hs_h, hs_w = start.hs_shape
        self.hs_centre = np.array([0.5 * (hs_h - 1), 0.5 * (hs_w - 1)])
        self.centre0 = start.map_points([self.hs_centre])[0]
        self.radius = 0.5 * math.hypot(hs_h, hs_w) * GRID / start.scale_ratio

    def similarity(self, x: NDArray[np.float64]) -> Similarity:
        ratio = self.start.scale_ratio * math.exp(float(x[0]) / self.radius)
        rotation = self.start.rotation_deg + math.degrees(float(x[1]) / self.radius)
        centre = self.centre0 + x[2:4]
        shape_only = Similarity(
            self.start.hs_shape,
            scale_ratio=ratio,
            rotation_deg=rotation,
            flip_y=self.start.flip_y,
            flip_x=self.start.flip_x,
        )
        offset = centre - shape_only.map_points([self.hs_centre])[0]
        return Similarity(
            self.start.hs_shape,
            scale_ratio=ratio,
            rotation_deg=rotation,
            offset_hr_px=(float(offset[0]), float(offset[1])),
            flip_y=self.start.flip_y,
            flip_x=self.start.flip_x,
        )

    def predict(self, x: NDArray[np.float64]) -> np.ndarray:
        """Return the HS frame on the grid over the mask, binned to UHS pixels."""
        sim = self.similarity(x)
        origin = np.eye(3)
        origin[0, 2], origin[1, 2] = GRID * self.r0, GRID * self.c0
        out_to_in = np.linalg.inv(sim.matrix()) @ origin
        grid_shape = (GRID * self.shape_lr[0], GRID * self.shape_lr[1])
        warped = resample(self.hr, out_to_in, grid_shape, order=3)
        binned = _bin(warped.astype(np.float64), GRID)
        return binned[self.sub_mask]

    def residuals(self, x: NDArray[np.float64]) -> np.ndarray:
        predicted = self.predict(x)
        design = np.column_stack([predicted, np.ones_like(predicted)])
        coeffs, *_ = np.linalg.lstsq(design, self.target, rcond=None)
        return design @ coeffs - self.target

    def correlation(self, x: NDArray[np.float64]) -> float:
        predicted = self.predict(x)
        return float(np.corrcoef(predicted, self.target)[0, 1])


def _no_uncertainty() -> dict[str, Any]:
    nan = float("nan")
    return {
        "scale_ratio": nan,
        "rotation_deg": nan,
        "offset_hr_px": [nan, nan],
        "point_rms_hr_px": nan,
    }


def _uncertainty(
    model: _ForwardModel,
    x: NDArray[np.float64],
    sigma2: float,
) -> dict[str, Any]:
    """Carry the parameter covariance to the stored parameters and mapped points."""
    # Central differences a twentieth of a grid pixel wide at the field's edge:
    # the solver's own Jacobian is a by-product of its last step, not of the solution.
    jac = np.empty((model.target.size, x.size))
    for k in range(x.size):
        dx = np.zeros_like(x)
        dx[k] = 0.05
        jac[:, k] = (model.residuals(x + dx) - model.residuals(x - dx)) / 0.1
    try:
        cov = np.linalg.inv(jac.T @ jac) * sigma2
    except np.linalg.LinAlgError:
        return _no_uncertainty()

    hs_h, hs_w = model.start.hs_shape
    rows, cols = np.meshgrid(
        np.arange(0, hs_h, 16), np.arange(0, hs_w, 16), indexing="ij"
    )
    points = np.column_stack([rows.ravel(), cols.ravel()])

    def stored(params: NDArray[np.float64]) -> np.ndarray:
        sim = model.similarity(params)
        return np.concatenate(
            [
                [sim.scale_ratio, sim.rotation_deg, *sim.offset_hr_px],
                sim.map_points(points).ravel(),
            ]
        )

    base = stored(x)
    step = 1e-4
    derivative = np.empty((base.size, x.size))
    for k in range(x.size):
        dx = np.zeros_like(x)
        dx[k] = step
        derivative[:, k] = (stored(x + dx) - stored(x - dx)) / (2 * step)
    # Only the diagonal of derivative · cov · derivativeᵀ: one variance per value.
    variances = np.einsum("ij,jk,ik->i", derivative, cov, derivative)
    variances = np.clip(variances, 0.0, None)
    point_var = variances[4:].reshape(-1, 2).sum(axis=1)
    return {
        "scale_ratio": float(math.sqrt(variances[0])),
        "rotation_deg": float(math.sqrt(variances[1])),
        "offset_hr_px": [
            float(math.sqrt(variances[2])),
            float(math.sqrt(variances[3])),
        ],
        "point_rms_hr_px": float(math.sqrt(point_var.mean())),
    }
