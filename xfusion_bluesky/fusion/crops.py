"""Paired LR/HR crops and the random flips shared by training and per-run adaptation.

An LR crop and its HR crop cover exactly the same field (the HR one ×4), and one
random h-flip, v-flip and transpose is applied alike to every frame of a window, so
the network sees the geometry of a real window in any of its eight orientations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from xfusion_bluesky.fusion.model.edvr_stf import SCALE

__all__ = ["augment", "paired_crop"]


def paired_crop(
    lr: NDArray[Any],
    hr: NDArray[Any],
    top: int,
    left: int,
    size: int | tuple[int, int],
) -> tuple[NDArray[Any], NDArray[Any]]:
    """Crop LR at (top, left, size) and HR at exactly the same field (×4).

    Parameters
    ----------
    lr : ndarray, (..., h, w)
    hr : ndarray, (..., 4h, 4w)
    top, left : int
        Corner of the LR crop, in LR pixels.
    size : int or (int, int)
        LR crop side, or its (height, width).

    Returns
    -------
    lr_crop, hr_crop : ndarray
        Views of ``lr`` and ``hr``.
    """
    height, width = (size, size) if isinstance(size, int) else size
    lr_crop = lr[..., top : top + height, left : left + width]
    hr_crop = hr[
        ...,
        SCALE * top : SCALE * (top + height),
        SCALE * left : SCALE * (left + width),
    ]
    return lr_crop, hr_crop


def augment(
    arrays: tuple[NDArray[Any], ...],
    rng: np.random.Generator,
    *,
    transpose: bool = True,
) -> tuple[NDArray[Any], ...]:
    """Apply one random h-flip, v-flip and transpose to every array (..., h, w).

    Parameters
    ----------
    arrays : tuple of ndarray
        Frames of one window, flipped alike.
    rng : numpy.random.Generator
        Draws the three coin flips (always three, whatever ``transpose`` is, so
        the stream of draws does not depend on it).
    transpose : bool
        Allow the transpose; False keeps non-square crops stackable.

    Returns
    -------
    tuple of ndarray
        C-contiguous copies.
    """
    flip_x, flip_y, swap = rng.random(3) < 0.5
    out = []
    for frames in arrays:
        if flip_x:
            frames = frames[..., ::-1]
        if flip_y:
            frames = frames[..., ::-1, :]
        if swap and transpose:
            frames = np.swapaxes(frames, -1, -2)
        out.append(np.ascontiguousarray(frames))
    return tuple(out)
