"""Seeded synthetic x-ray video: ground truth for sims, tests, training."""

from __future__ import annotations

import numpy as np


def generate_scene(
    family: str = "moving_texture",
    *,
    num_frames: int = 32,
    height: int = 64,
    width: int = 64,
    seed: int = 0,
    speed_px: float = 1.0,
) -> np.ndarray:
    """Return a seeded ground-truth HR video, float32 (t, h, w) in [0, 1].

    Parameters
    ----------
    family : str
        Scene family; only ``"moving_texture"`` so far: a smooth random texture
        translating at ``speed_px`` pixels per frame.
    num_frames, height, width : int
        Output shape.
    seed : int
        Seed of the random texture; the same seed gives the same video.
    speed_px : float
        Motion per frame, in HR pixels.
    """
    if family != "moving_texture":
        raise ValueError(f"unknown scene family {family!r}; known: 'moving_texture'")
    rng = np.random.default_rng(seed)
    pad = int(np.ceil(abs(speed_px) * num_frames)) + 2
    noise = rng.random((height + 8, width + pad + 8))
    # A separable box blur makes a smooth, radiograph-like texture.
    kernel = np.ones(5) / 5
    tex = np.apply_along_axis(np.convolve, 0, noise, kernel, mode="valid")
    tex = np.apply_along_axis(np.convolve, 1, tex, kernel, mode="valid")
    tex = (tex - tex.min()) / (np.ptp(tex) + 1e-12)
    video = np.empty((num_frames, height, width), dtype=np.float32)
    cols = np.arange(width)
    for t in range(num_frames):
        shift = speed_px * t
        x0 = np.floor(cols + shift).astype(int)
        frac = (cols + shift) - x0
        video[t] = tex[:height, x0] * (1 - frac) + tex[:height, x0 + 1] * frac
    return video
