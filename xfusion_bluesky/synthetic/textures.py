"""Seeded 2-D building blocks of the scenes: fractal textures, sampling, spheres.

Shared by the scene families: periodic 1/f noise for material and object
textures, bilinear sampling of a periodic texture at moved coordinates (how
material is advected without resampling errors piling up), and the projected
chord of a sphere (pores, powder grains, tracers, spatter). All work in float32
on ``(h, w)`` frames.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import fft as sp_fft

__all__ = [
    "Frame",
    "add_spheres",
    "fractal_noise",
    "sample_wrap",
    "texture_shape",
    "wrap_pad",
]

Frame = NDArray[np.float32]


def fractal_noise(
    rng: np.random.Generator, shape: tuple[int, int], beta: float, smooth_px: float
) -> Frame:
    """Periodic 1/f^beta noise, low-passed at ``smooth_px``; zero mean, unit std."""
    fy = sp_fft.fftfreq(shape[0])[:, None]
    fx = sp_fft.rfftfreq(shape[1])[None, :]
    f2 = fy**2 + fx**2
    amp = (f2 + 1.0 / max(shape) ** 2) ** (-beta / 4) * np.exp(
        -2 * np.pi**2 * smooth_px**2 * f2
    )
    noise = rng.standard_normal((2, *f2.shape))
    spectrum = ((noise[0] + 1j * noise[1]) * amp).astype(np.complex64)
    spectrum[0, 0] = 0
    tex = sp_fft.irfft2(spectrum, s=shape).astype(np.float32)
    return (tex - tex.mean()) / (tex.std() + 1e-12)


def texture_shape(height: int, width: int, margin: int = 16) -> tuple[int, int]:
    """Return a fast FFT shape covering ``(height, width)`` plus ``margin`` pixels."""
    return sp_fft.next_fast_len(height + margin), sp_fft.next_fast_len(width + margin)


def wrap_pad(texture: NDArray[Any]) -> NDArray[Any]:
    """Append the first row and column, so bilinear neighbours never wrap."""
    padded = np.concatenate([texture, texture[:1]], axis=0)
    return np.concatenate([padded, padded[:, :1]], axis=1)


def sample_wrap(
    padded: NDArray[Any], y: NDArray[np.floating], x: NDArray[np.floating]
) -> NDArray[Any]:
    """Bilinear samples at ``(y, x)`` of a periodic texture padded by `wrap_pad`.

    A complex64 texture carries two float32 channels (value + 1j * opacity) for
    the price of one gather.
    """
    th, tw = padded.shape[0] - 1, padded.shape[1] - 1
    # Wrap by hand: np.mod is ~20x slower. Rounding can land a hair outside
    # [0, th); clip() keeps the indices valid and fy then stays within ~1e-5.
    y = y - np.float32(th) * np.floor(y * np.float32(1 / th))
    x = x - np.float32(tw) * np.floor(x * np.float32(1 / tw))
    iy = np.clip(y.astype(np.int32), 0, th - 1)
    ix = np.clip(x.astype(np.int32), 0, tw - 1)
    fy, fx = y - iy, x - ix
    flat = padded.reshape(-1)
    idx = iy * (tw + 1) + ix
    corners = [flat.take(i) for i in (idx, idx + 1, idx + tw + 1, idx + tw + 2)]
    if np.iscomplexobj(flat):
        # Interpolate the two float32 channels as reals: complex * real would
        # promote the weights to complex and cost twice as much.
        corners = [c.view(np.float32).reshape(*c.shape, 2) for c in corners]
        fy, fx = fy[..., None], fx[..., None]
    top, top_right, bottom, bottom_right = corners
    top += (top_right - top) * fx
    bottom += (bottom_right - bottom) * fx
    top += (bottom - top) * fy
    return top.view(padded.dtype).reshape(y.shape)


def add_spheres(
    a: Frame, ys: ArrayLike, xs: ArrayLike, radius: float, mu: float
) -> None:
    """Add ``mu * chord`` of a sphere averaged over the positions ``(ys, xs)``.

    Several positions give the motion blur of one exposure; a negative ``mu``
    carves a void. Only the bounding box is touched.
    """
    py = np.atleast_1d(np.asarray(ys, dtype=np.float32))
    px = np.atleast_1d(np.asarray(xs, dtype=np.float32))
    h, w = a.shape
    y0, y1 = max(int(py.min() - radius), 0), min(int(py.max() + radius) + 2, h)
    x0, x1 = max(int(px.min() - radius), 0), min(int(px.max() + radius) + 2, w)
    if y0 >= y1 or x0 >= x1:
        return
    yy = np.arange(y0, y1, dtype=np.float32)[:, None, None]
    xx = np.arange(x0, x1, dtype=np.float32)[None, :, None]
    d2 = (yy - py) ** 2 + (xx - px) ** 2
    chord = 2 * np.sqrt(np.maximum(np.float32(radius**2) - d2, 0)).mean(axis=-1)
    a[y0:y1, x0:x1] += np.float32(mu) * chord
