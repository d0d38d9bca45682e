"""Steps 2–3 of :func:`~xfusion_bluesky.calibration.measure_geometry`: the model.

:class:`ForwardModel` predicts the UHS frame from the HS frame for a transform:
the HS frame resampled onto the fused grid in one step (the worker's own way),
binned 4×4 to UHS pixels, over the UHS pixels the HS view covers
(:func:`overlap_mask`); the least-squares refinement fits its residuals, and
:func:`uncertainty` carries the fit's covariance to the stored values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xfusion_bluesky.calibration.coarse import bin_frame
from xfusion_bluesky.geometry import GRID, Similarity, resample

__all__ = ["ForwardModel", "no_uncertainty", "overlap_mask", "uncertainty"]


def overlap_mask(
    sim: Similarity, lr_shape: tuple[int, ...], margin_lr_px: float
) -> np.ndarray:
    """Return the UHS pixels whose whole 4×4 grid block the HS view covers."""
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


class ForwardModel:
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
        """Return the transform for parameters ``x`` (offsets from the start)."""
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
        binned = bin_frame(warped.astype(np.float64), GRID)
        return binned[self.sub_mask]

    def residuals(self, x: NDArray[np.float64]) -> np.ndarray:
        """Return prediction − UHS frame over the mask, gain and offset fitted."""
        predicted = self.predict(x)
        design = np.column_stack([predicted, np.ones_like(predicted)])
        coeffs, *_ = np.linalg.lstsq(design, self.target, rcond=None)
        return design @ coeffs - self.target

    def correlation(self, x: NDArray[np.float64]) -> float:
        """Return the correlation of the prediction with the UHS frame."""
        predicted = self.predict(x)
        return float(np.corrcoef(predicted, self.target)[0, 1])


def no_uncertainty() -> dict[str, Any]:
    """Return the uncertainty record of a fit that has none (every value NaN)."""
    nan = float("nan")
    return {
        "scale_ratio": nan,
        "rotation_deg": nan,
        "offset_hr_px": [nan, nan],
        "point_rms_hr_px": nan,
    }


def uncertainty(
    model: ForwardModel,
    x: NDArray[np.float64],
    sigma2: float,
) -> dict[str, Any]:
    """Return the 1-σ uncertainty of the stored parameters and mapped points.

    The parameter covariance ``(JᵀJ)⁻¹ · sigma2`` at ``x`` is carried through the
    transform to the scale ratio, rotation, offset and the HS pixels (every 16th)
    mapped onto the fused grid.
    """
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
        return no_uncertainty()

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
