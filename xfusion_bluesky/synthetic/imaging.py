"""The imaging chain of an x-ray camera: beam profile, phase contrast, blur, shot noise.

Applied by :mod:`xfusion_bluesky.synthetic.families.base` to attenuation maps, in
the order phase contrast → beam profile → scintillator blur → (optional) shot noise;
kept apart because they model the beamline and detector, not the sample.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

Frame = NDArray[np.float32]


def _spatial_sigma(ndim: int, sigma: float) -> tuple[float, ...]:
    return (0.0,) * (ndim - 2) + (sigma, sigma)


def beam_profile(
    height: int, width: int, *, strength: float = 1.0, seed: int = 0
) -> Frame:
    """Return a synchrotron-like open-beam (flat-field) profile.

    Parameters
    ----------
    height, width : int
        Shape in pixels.
    strength : float
        0 gives a uniform beam; 1 a broad Gaussian whose corners get ~0.7 of the
        centre, with a few per-cent horizontal bands (as the I13 flat shows).
    seed : int
        Seed of the beam centre offset and the band phases.

    Returns
    -------
    ndarray, (height, width) float32 in (0, 1]
        Relative beam intensity, 1 at the brightest point.
    """
    rng = np.random.default_rng([seed, 0, 7])
    cy, cx = rng.uniform(-0.06, 0.06, size=2)
    y = ((np.arange(height) + 0.5) / height - 0.5 - cy)[:, None]
    x = ((np.arange(width) + 0.5) / width - 0.5 - cx)[None, :]
    # Vertically narrower than horizontally, like an undulator beam after optics.
    profile = np.exp(-0.5 * (y / 0.75) ** 2 - 0.5 * (x / 1.0) ** 2)
    cycles = rng.uniform(3, 14, size=4)
    phases = rng.uniform(0, 2 * np.pi, size=4)
    amps = rng.uniform(0.005, 0.02, size=4)
    bands = (amps * np.sin(2 * np.pi * y * cycles + phases)).sum(axis=1, keepdims=True)
    flat = 1.0 - strength * (1.0 - profile * (1.0 + bands))
    return (np.clip(flat, 0.05, None) / flat.max()).astype(np.float32)


def phase_contrast(
    attenuation: ArrayLike, *, strength: float = 0.3, sigma_px: float = 0.75
) -> NDArray[np.float32]:
    """Return the transmission of an attenuation map with propagation fringes.

    Parameters
    ----------
    attenuation : array_like, (..., h, w), >= 0
        ``mu * thickness`` per pixel (dimensionless).
    strength : float
        Fringe strength in px^2 (propagation distance x delta/mu); 0 gives
        plain absorption ``exp(-attenuation)``.
    sigma_px : float
        Fringe width in pixels (about the first Fresnel zone).

    Returns
    -------
    ndarray, (..., h, w) float32 >= 0
        Transmission; bright/dark fringe pairs overshoot at sharp edges.

    Notes
    -----
    Transport of intensity for a weak, single-material object: with the phase
    proportional to the projected thickness, ``I = exp(-A) * (1 + s * lap(A))``.
    The dark fringe lies on the dense side of an edge, the bright one outside.
    """
    a = np.asarray(attenuation, dtype=np.float32)
    transmission = np.exp(-a)
    if strength > 0:
        smooth = ndimage.gaussian_filter(
            a, _spatial_sigma(a.ndim, sigma_px), mode="nearest", truncate=3.0
        )
        padded = np.pad(smooth, [(0, 0)] * (a.ndim - 2) + [(1, 1), (1, 1)], "edge")
        lap = (
            padded[..., :-2, 1:-1]
            + padded[..., 2:, 1:-1]
            + padded[..., 1:-1, :-2]
            + padded[..., 1:-1, 2:]
            - 4 * smooth
        )
        transmission *= 1 + np.float32(strength) * lap
        np.maximum(transmission, 0, out=transmission)
    return transmission


def scintillator_blur(
    frames: ArrayLike, *, sigma_px: float = 0.7
) -> NDArray[np.float32]:
    """Blur each frame as the scintillator and optics do (Gaussian PSF).

    Parameters
    ----------
    frames : array_like, (..., h, w)
        Intensities.
    sigma_px : float
        PSF sigma in detector pixels; 0 returns a float32 copy.

    Returns
    -------
    ndarray, (..., h, w) float32
    """
    f = np.array(frames, dtype=np.float32)
    if sigma_px <= 0:
        return f
    return ndimage.gaussian_filter(
        f, _spatial_sigma(f.ndim, sigma_px), mode="nearest", truncate=3.0
    )


def shot_noise(
    frames: ArrayLike, *, photons: float, rng: np.random.Generator
) -> NDArray[np.float32]:
    """Return frames with Poisson shot noise.

    Parameters
    ----------
    frames : array_like, (..., h, w) in [0, 1]
        Noiseless intensities; 1 is ``photons`` detected photons.
    photons : float
        Photons per pixel at intensity 1 (> 0); relative noise is
        ``1 / sqrt(photons * intensity)``.
    rng : numpy.random.Generator
        Source of the noise.

    Returns
    -------
    ndarray, (..., h, w) float32 >= 0
    """
    if not photons > 0:
        raise ValueError(f"photons must be > 0; got {photons}")
    f = np.clip(np.asarray(frames, dtype=np.float64), 0, None)
    return (rng.poisson(f * photons) / photons).astype(np.float32)


# --------------------------------------------------------------------------- helpers
