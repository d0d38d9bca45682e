"""Synthetic calibration targets with a known truth, rendered as the sim renders.

A static textured field on the fused grid; the UHS sees it binned 4×4, the HS
through :func:`geometry.resample` with the true :class:`Similarity` (exactly how
the simulation renders the HS), each with its own gain, offset and noise.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from xfusion_bluesky.geometry import (
    GRID,
    MAX_ROTATION_DEG,
    SCALE_RATIO_RANGE,
    Similarity,
    resample,
)

PERIOD_S = 1e-6


def textured_field(rng, shape, sigma=3.0):
    """Smooth random texture in [0, 1]: two scales of filtered noise."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    field += ndimage.gaussian_filter(rng.standard_normal(shape), 2 * sigma)
    return (field - field.min()) / (field.max() - field.min())


def grid_field(shape, pitch=24, width=3, marker=None):
    """Lines every ``pitch`` grid px; a disc ``marker`` (y, x, r) breaks the period."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    lines = ((yy % pitch) < width) | ((xx % pitch) < width)
    field = lines.astype(float)
    if marker is not None:
        y, x, r = marker
        field += ((yy - y) ** 2 + (xx - x) ** 2 < r**2).astype(float)
    return ndimage.gaussian_filter(field, 1.0)


def bin_grid(field):
    """The UHS view of a fused-grid field: mean over 4×4 blocks."""
    h, w = field.shape[-2] // GRID, field.shape[-1] // GRID
    shape = (*field.shape[:-2], h, GRID, w, GRID)
    return field[..., : h * GRID, : w * GRID].reshape(shape).mean(axis=(-3, -1))


def random_similarity(rng, lr_shape, hs_shape):
    """Scale, rotation, flips and sub-pixel offset at random, HS view inside the UHS."""
    height, width = GRID * lr_shape[0], GRID * lr_shape[1]
    while True:
        sim = Similarity(
            hs_shape,
            scale_ratio=float(rng.uniform(*SCALE_RATIO_RANGE)),
            rotation_deg=float(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG)),
            flip_y=bool(rng.integers(2)),
            flip_x=bool(rng.integers(2)),
        )
        rows, cols = hs_shape
        corners = sim.map_points(
            [[0, 0], [0, cols - 1], [rows - 1, 0], [rows - 1, cols - 1]]
        )
        low = -corners.min(axis=0) + 2
        high = np.array([height - 1, width - 1]) - corners.max(axis=0) - 2
        if (high > low).all():
            offset = rng.uniform(low, high)
            return Similarity(
                hs_shape,
                scale_ratio=sim.scale_ratio,
                rotation_deg=sim.rotation_deg,
                offset_hr_px=(float(offset[0]), float(offset[1])),
                flip_y=sim.flip_y,
                flip_x=sim.flip_x,
            )


def render_pair(rng, field, sim, *, noise=0.01):
    """UHS and HS images of a static field: different gains, offsets, noise."""
    lr_shape = (field.shape[0] // GRID, field.shape[1] // GRID)
    lr = bin_grid(field) * 1000 + 100 + rng.normal(0, noise * 1000, lr_shape)
    hr = resample(field, sim.matrix(), sim.hs_shape) * 3000 + 50
    return lr, hr + rng.normal(0, noise * 3000, sim.hs_shape)


def _translation(dy, dx):
    matrix = np.eye(3)
    matrix[0, 2], matrix[1, 2] = dy, dx
    return matrix


def moving_burst(
    rng,
    latency_periods,
    sim,
    *,
    lr_shape=(48, 40),
    velocity=(0.7, 1.1),
    lr_frames=16,
    hr_instants=(4.0, 6.0, 8.0, 10.0),
    noise=(0.01, 0.004),
):
    """A texture translating ``velocity`` grid px per UHS period, seen by both cameras.

    UHS frame i shows the field at i periods; HS frame k, recorded at
    ``hr_instants[k]`` periods, shows it ``latency_periods`` later (the HS
    camera's latency relative to the UHS). Returns lr, lr_times, hr, hr_times.
    """
    height, width = GRID * lr_shape[0], GRID * lr_shape[1]
    pad = 80
    texture = textured_field(rng, (height + 2 * pad, width + 2 * pad))

    def at(periods):
        return _translation(pad + velocity[0] * periods, pad + velocity[1] * periods)

    lr = np.stack(
        [bin_grid(resample(texture, at(i), (height, width))) for i in range(lr_frames)]
    )
    lr = lr * 1000 + 100 + rng.normal(0, noise[0] * 1000, lr.shape)
    hr = np.stack(
        [
            resample(texture, at(t + latency_periods) @ sim.matrix(), sim.hs_shape)
            for t in hr_instants
        ]
    )
    hr = hr * 3000 + 50 + rng.normal(0, noise[1] * 3000, hr.shape)
    lr_times = np.arange(lr_frames) * PERIOD_S
    hr_times = np.asarray(hr_instants) * PERIOD_S
    return lr, lr_times, hr, hr_times
