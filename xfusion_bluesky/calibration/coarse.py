"""Step 1 of :func:`~xfusion_bluesky.calibration.measure_geometry`: a coarse search.

For each of the four flip candidates and a small grid of scale ratios and
rotations, the HS frame (smoothed like the UHS binning) is sampled onto the UHS
pixel grid and located in the UHS frame by normalised cross-correlation
(``skimage.feature.match_template``). The best peaks give the flips, a scale
ratio and a rotation within half a grid step, and the offset to a fraction of a
UHS pixel: where the least-squares refinement starts from. Why a search and not
Fourier–Mellin is in :mod:`xfusion_bluesky.calibration.registration`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from xfusion_bluesky.errors import RegistrationError
from xfusion_bluesky.geometry import GRID, Similarity

__all__ = ["Candidate", "bin_frame", "coarse_search", "normalise"]

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


def bin_frame(frame: np.ndarray, factor: int) -> np.ndarray:
    """Return ``frame`` binned ``factor``×``factor`` (mean; drops a ragged edge)."""
    height, width = frame.shape[0] // factor, frame.shape[1] // factor
    blocks = frame[: height * factor, : width * factor]
    return blocks.reshape(height, factor, width, factor).mean(axis=(1, 3))


def normalise(frame: np.ndarray) -> np.ndarray:
    """Return ``frame`` with zero mean and unit standard deviation."""
    centred = frame - frame.mean()
    return centred / max(float(centred.std()), 1e-30)


@dataclass(frozen=True)
class Candidate:
    """A coarse guess at the transform, with its normalised cross-correlation."""

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


def coarse_search(
    lr: np.ndarray, hr: np.ndarray, low: float, high: float, max_rot: float
) -> list[Candidate]:
    """Return the candidates worth refining, best first (module docstring).

    Raises
    ------
    RegistrationError
        The HS view is too small to locate in the UHS frame.
    """
    from skimage.feature import peak_local_max

    factor = max(1, math.ceil(max(lr.shape) / _COARSE_SIDE))
    image = normalise(bin_frame(lr, factor))
    step = float(GRID * factor)
    ratios = np.linspace(low, high, _COARSE_RATIOS if high > low else 1)
    rotations = np.linspace(-max_rot, max_rot, _COARSE_ROTATIONS if max_rot else 1)
    # A box of `step` grid px is ratio/4 · step HS px wide: smooth like that box.
    hr_smooth = ndimage.gaussian_filter(hr, 0.25 * 0.5 * (low + high) * step / 3.46)
    results: list[Candidate] = []
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
                results.append(Candidate(moved, float(ncc[tuple(peak)])))
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
