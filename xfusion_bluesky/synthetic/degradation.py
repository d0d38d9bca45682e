"""The paper's degradation: 4×4 binning and Poisson noise at a calibrated level.

HR frames become LR frames by 4×4 mean binning; LR frames get Poisson noise set by
a blank-scan factor ``b0``, which can be calibrated to a target LR PSNR. numpy
only: no torch, no bluesky. The intensity normalisation that precedes this (clip
at the 0.35 / 99.65 percentiles, min-max to [0, 1]) is ``fuse()``'s own
pre-processing and lives in :mod:`xfusion_bluesky.fusion.normalization`.

References
----------
Tang et al., "Deep learning-based spatio-temporal fusion for high-fidelity
ultra-high-speed X-ray radiography", J. Synchrotron Rad. 32(2):432-441 (2025).
Specs: ``docs/spec/edvr_stf.md`` §7.2-7.4, ``docs/spec/baselines_and_metrics.md`` §2-3.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import numpy.typing as npt

from xfusion_bluesky.checks import finite_scalar, real_frames
from xfusion_bluesky.errors import InvalidInputError

__all__ = [
    "add_poisson_noise",
    "b0_for_psnr",
    "bin_frames",
    "degrade",
    "lr_psnr",
]

logger = logging.getLogger(__name__)

#: Largest expected count ``b0 * max(frames)`` accepted; numpy's Poisson sampler
#: refuses rates above ~9.2e18.
_MAX_POISSON_RATE = 1e18
#: Calibration stops when the LR PSNR is this close to the target
#: (docs/spec/baselines_and_metrics.md §3).
_PSNR_TOLERANCE_DB = 0.02
_MAX_BISECTION_STEPS = 40
#: Decades by which the bisection bracket may widen on each side before giving up.
_MAX_WIDENING = 12


def _check_unit_range(array: np.ndarray, name: str) -> None:
    """Raise unless every value of ``array`` lies in [0, 1]."""
    low, high = float(array.min()), float(array.max())
    if low < 0.0 or high > 1.0:
        raise InvalidInputError(
            f"{name} must lie in [0, 1]; got values in [{low:g}, {high:g}]. "
            "Normalise them to [0, 1] first."
        )


def bin_frames(frames: npt.ArrayLike, factor: int = 4) -> np.ndarray:
    """Bin frames by averaging non-overlapping ``factor`` × ``factor`` blocks.

    Each output pixel is the mean (for 4: sum / 16) of one block, so the intensity
    scale is kept: a [0, 1] sequence stays in [0, 1].

    Parameters
    ----------
    frames : array_like, (h, w) or (t, h, w), real
        HR frame(s). If ``h`` or ``w`` is not a multiple of ``factor``, the last
        ``h % factor`` rows / ``w % factor`` columns are cropped first (as XFusion
        mod-crops its ground truth).
    factor : int, default 4
        Block side in pixels, ≥ 1 (the paper bins 4× per axis).

    Returns
    -------
    ndarray, (h // factor, w // factor) or (t, h // factor, w // factor), float32
        Binned frame(s), same number of dimensions as ``frames``.

    Raises
    ------
    InvalidInputError
        ``factor`` < 1, a frame smaller than one block, wrong ndim, empty, NaN/inf.
    TypeError
        ``factor`` is not an integer, or ``frames`` is not real.

    Examples
    --------
    >>> bin_frames(np.arange(16.0).reshape(4, 4), factor=2)
    array([[ 2.5,  4.5],
           [10.5, 12.5]], dtype=float32)
    """
    if isinstance(factor, bool) or not isinstance(factor, int | np.integer):
        raise TypeError(f"factor must be an int; got {factor!r}")
    if factor < 1:
        raise InvalidInputError(f"factor must be ≥ 1; got {factor}")
    array = real_frames(frames, "frames")
    h, w = array.shape[-2:]
    h_lr, w_lr = h // factor, w // factor
    if h_lr == 0 or w_lr == 0:
        raise InvalidInputError(
            f"frames of {h}×{w} pixels are smaller than one {factor}×{factor} block; "
            "pass larger frames or a smaller factor"
        )
    cropped = array[..., : h_lr * factor, : w_lr * factor]
    blocks = cropped.reshape(*array.shape[:-2], h_lr, factor, w_lr, factor)
    # Accumulate in float64 so 16-bit camera counts and long sums lose nothing.
    return blocks.mean(axis=(-3, -1), dtype=np.float64).astype(np.float32)


def _as_generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    """Return ``rng`` as a numpy Generator (a seed int or None makes a new one)."""
    if isinstance(rng, np.random.Generator):
        return rng
    # Checked at run time too: callers outside mypy pass floats and strings.
    valid: object = rng
    if isinstance(valid, bool) or not (
        valid is None or isinstance(valid, int | np.integer)
    ):
        raise TypeError(
            "rng must be a numpy Generator, an int seed or None; "
            f"got {type(rng).__name__}"
        )
    return np.random.default_rng(rng)


def add_poisson_noise(
    frames: npt.ArrayLike, b0: float, rng: np.random.Generator | int | None
) -> np.ndarray:
    """Add Poisson noise at blank-scan factor ``b0``: ``clip(Poisson(b0·x)/b0, 0, 1)``.

    Parameters
    ----------
    frames : array_like, (h, w) or (t, h, w), values ≥ 0
        Clean normalised frame(s), normally LR in [0, 1]; not modified.
    b0 : float
        Blank-scan factor > 0: the expected photon count of a pixel of value 1.
        Larger means less noise; PSNR ≈ 10·log10(b0 / mean(frames)) dB.
    rng : numpy.random.Generator or int or None
        Random source; an int is a seed (same seed → same noise), None draws a
        fresh unseeded generator.

    Returns
    -------
    ndarray, same shape as ``frames``, float32 in [0, 1]
        Noisy frame(s).

    Raises
    ------
    InvalidInputError
        ``b0`` ≤ 0 or non-finite; negative frame values; ``b0 * max(frames)`` above
        1e18 (numpy's Poisson limit).

    Notes
    -----
    XFusion's training augmentation (``transforms.augment``) applies exactly this
    map to the LR frames of a window; rates are float64 (``Generator.poisson``).
    """
    b0 = finite_scalar(b0, "b0")
    if b0 <= 0.0:
        raise InvalidInputError(f"b0 must be > 0 (photons at full scale); got {b0:g}")
    array = real_frames(frames, "frames")
    low, high = float(array.min()), float(array.max())
    if low < 0.0:
        raise InvalidInputError(
            f"frames must be ≥ 0 for Poisson noise; got minimum {low:g}. "
            "Normalise to [0, 1] first."
        )
    if b0 * high > _MAX_POISSON_RATE:
        raise InvalidInputError(
            f"b0 * max(frames) = {b0 * high:.3g} exceeds {_MAX_POISSON_RATE:g}; "
            "such a b0 adds no measurable noise: skip the noise instead"
        )
    generator = _as_generator(rng)
    counts = generator.poisson(b0 * array.astype(np.float64))
    return np.clip(counts / b0, 0.0, 1.0).astype(np.float32)


def lr_psnr(clean: npt.ArrayLike, noisy: npt.ArrayLike) -> float:
    """Return the LR noise level: PSNR of ``noisy`` against ``clean`` in dB.

    Parameters
    ----------
    clean, noisy : array_like, (h, w) or (t, h, w), same shape, [0, 1]
        Clean and noisy LR sequence.

    Returns
    -------
    float
        ``10·log10(1 / MSE)``: data range 1, no quantisation, MSE pooled over all
        frames (one ``b0`` is one physical setting per run); +inf when equal.
    """
    clean_arr = real_frames(clean, "clean")
    noisy_arr = real_frames(noisy, "noisy")
    if clean_arr.shape != noisy_arr.shape:
        raise InvalidInputError(
            f"clean and noisy must have the same shape; got {clean_arr.shape} "
            f"and {noisy_arr.shape}"
        )
    diff = clean_arr.astype(np.float64) - noisy_arr.astype(np.float64)
    mse = float(np.mean(diff * diff))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(1.0 / mse)


def b0_for_psnr(
    target_db: float, frames: npt.ArrayLike | None = None, *, seed: int = 0
) -> float:
    """Return the blank-scan factor ``b0`` that gives an LR PSNR of ``target_db``.

    Parameters
    ----------
    target_db : float
        Wanted :func:`lr_psnr` of the noisy LR sequence, in dB (paper: 10-70 dB).
    frames : array_like, (h, w) or (t, h, w), [0, 1], optional
        Clean LR sequence to calibrate on. Without it the closed form for mean
        intensity 0.5 is returned (see Notes).
    seed : int, default 0
        Seed of the noise used during calibration. Noise made with
        ``add_poisson_noise(frames, b0, seed)`` reproduces the calibrated PSNR.

    Returns
    -------
    float
        ``b0`` > 0.

    Raises
    ------
    InvalidInputError
        Non-finite target; ``frames`` outside [0, 1] or all zero (no noise at any
        ``b0``); a target the sequence cannot reach (too low: even ``b0`` → 0,
        i.e. all-black output, is less noisy).

    Notes
    -----
    Poisson noise has variance ``x / b0`` in normalised units, so without clipping
    MSE ≈ mean(x) / b0 and PSNR ≈ 10·log10(b0 / mean(x)). The closed form
    (no ``frames``) is ``b0 = 0.5 · 10**(target_db / 10)``; it ignores the clip
    at 1, which removes part of the noise of bright pixels: measured, a flat 0.5
    sequence lands within 0.03 dB of the target from 20 dB up (+0.8 dB at 10 dB);
    uniformly distributed [0, 1] frames land +0.6 / +0.2 / +0.03 dB high at
    20 / 30 / 40 dB. Pass ``frames`` when the level matters.

    With ``frames`` (``docs/spec/baselines_and_metrics.md`` §3): start at
    ``u0 = target_db / 10 + log10(mean(frames))`` with ``u = log10(b0)``, bracket
    ``[u0 - 1, u0 + 1]`` (widened by decades until it brackets), then bisect with
    common random numbers (a new generator seeded with ``seed`` at every
    evaluation) until |PSNR - target| < 0.02 dB or 40 steps; the evaluated ``b0``
    closest to the target is returned. Numpy's Poisson sampler consumes a
    variable number of uniforms, so PSNR(u) has small jumps where the bisection
    can stall; the result is then within about half a jump of the target
    (measured: ≤ 0.03 dB from 8·32·32 pixels up, ≤ 0.07 dB at 4·16·16).
    """
    target = finite_scalar(target_db, "target_db")
    if frames is None:
        return 0.5 * 10.0 ** (target / 10.0)
    clean = real_frames(frames, "frames")
    _check_unit_range(clean, "frames")
    clean = clean.astype(np.float64)
    mean = float(clean.mean())
    if mean == 0.0:
        raise InvalidInputError(
            "frames are all zero: Poisson noise is zero at every b0, so no b0 gives "
            f"{target:g} dB; calibrate on a sequence with signal"
        )
    u_max = math.log10(_MAX_POISSON_RATE / float(clean.max()))

    def error_db(u: float) -> float:
        noisy = add_poisson_noise(clean, 10.0**u, np.random.default_rng(seed))
        return lr_psnr(clean, noisy) - target

    u0 = target / 10.0 + math.log10(mean)
    u_lo, u_hi = u0 - 1.0, min(u0 + 1.0, u_max)
    err_lo, err_hi = error_db(u_lo), error_db(u_hi)
    for _ in range(_MAX_WIDENING):
        if err_lo <= 0.0 <= err_hi:
            break
        if err_lo > 0.0:
            u_lo -= 1.0
            err_lo = error_db(u_lo)
        elif u_hi < u_max:
            u_hi = min(u_hi + 1.0, u_max)
            err_hi = error_db(u_hi)
    if not err_lo <= 0.0 <= err_hi:
        raise InvalidInputError(
            f"target_db={target:g} is out of reach for these frames: b0 from "
            f"10^{u_lo:.1f} to 10^{u_hi:.1f} gives {err_lo + target:.2f} to "
            f"{err_hi + target:.2f} dB"
        )
    best_u, best_err = min((u_lo, err_lo), (u_hi, err_hi), key=lambda p: abs(p[1]))
    for _ in range(_MAX_BISECTION_STEPS):
        if abs(best_err) < _PSNR_TOLERANCE_DB:
            break
        u_mid = 0.5 * (u_lo + u_hi)
        err_mid = error_db(u_mid)
        if abs(err_mid) < abs(best_err):
            best_u, best_err = u_mid, err_mid
        if err_mid < 0.0:
            u_lo = u_mid
        else:
            u_hi = u_mid
    logger.debug(
        "b0_for_psnr: target %.2f dB -> b0 = %.4g (u = %.4f), %.3f dB off, seed %d",
        target,
        10.0**best_u,
        best_u,
        best_err,
        seed,
    )
    return 10.0**best_u


def degrade(
    hr_frames: npt.ArrayLike,
    *,
    factor: int = 4,
    b0: float | None = None,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Simulate LR frames from HR frames: bin, then optionally add Poisson noise.

    Parameters
    ----------
    hr_frames : array_like, (t, H, W) or (H, W), [0, 1]
        Normalised HR frame(s); cropped to a multiple of ``factor`` (see
        :func:`bin_frames`).
    factor : int, default 4
        Binning factor per axis.
    b0 : float, optional
        Blank-scan factor of :func:`add_poisson_noise`; None adds no noise.
    rng : numpy.random.Generator or int or None
        Noise source (seed int for reproducible noise); unused when ``b0`` is None.

    Returns
    -------
    ndarray, (t, H // factor, W // factor) or (H // factor, W // factor), float32
        LR frame(s) in [0, 1].
    """
    hr = real_frames(hr_frames, "hr_frames")
    _check_unit_range(hr, "hr_frames")
    lr = bin_frames(hr, factor)
    if b0 is None:
        return lr
    return add_poisson_noise(lr, b0, rng)
