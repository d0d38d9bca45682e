"""Intensity normalisation of ``fuse()``: 0.35/99.65 % clip + min-max, and back.

The paper pre-processes every sequence by clipping at the 0.35 / 99.65 percentiles
of the whole sequence and scaling to [0, 1]; the fused frames are mapped back to the
HR input's scale. The evaluation and training code normalise ground truth the same
way, so they import these too. numpy only.

References
----------
Tang et al., "Deep learning-based spatio-temporal fusion for high-fidelity
ultra-high-speed X-ray radiography", J. Synchrotron Rad. 32(2):432-441 (2025).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from xfusion_bluesky.checks import finite_scalar, real_frames
from xfusion_bluesky.errors import InvalidInputError

__all__ = ["PERCENTILES", "denormalize", "normalize_percentile", "percentile_range"]

#: The paper's saturation percentiles (XFusion ``RENORM_THRESH``).
PERCENTILES = (0.35, 99.65)


def percentile_range(
    frames: npt.ArrayLike,
    low: float = PERCENTILES[0],
    high: float = PERCENTILES[1],
) -> tuple[float, float]:
    """Return the ``low`` and ``high`` percentiles over the whole sequence.

    Parameters
    ----------
    frames : array_like, (h, w) or (t, h, w), real
        Frame(s); all frames are pooled (one range per sequence, not per frame).
    low, high : float, default 0.35 and 99.65
        Percentiles in [0, 100], ``low`` < ``high``; the defaults are the paper's
        0.35 % saturation threshold (XFusion ``RENORM_THRESH``).

    Returns
    -------
    tuple of float
        ``(lo, hi)`` in the units of ``frames``, linear interpolation between
        order statistics (``numpy.percentile``'s default).

    Raises
    ------
    InvalidInputError
        Percentiles out of order or outside [0, 100]; bad ``frames``.
    """
    low = finite_scalar(low, "low")
    high = finite_scalar(high, "high")
    if not 0.0 <= low < high <= 100.0:
        raise InvalidInputError(
            f"percentiles must satisfy 0 ≤ low < high ≤ 100; got low={low}, high={high}"
        )
    array = real_frames(frames, "frames")
    lo, hi = np.percentile(array, [low, high], method="linear")
    return float(lo), float(hi)


def normalize_percentile(frames: npt.ArrayLike, lo: float, hi: float) -> np.ndarray:
    """Clip frames to ``[lo, hi]`` and min-max scale them to [0, 1].

    Parameters
    ----------
    frames : array_like, (h, w) or (t, h, w), real
        Frame(s) in camera units; not modified.
    lo, hi : float
        Intensity bounds, usually from :func:`percentile_range` over the sequence.

    Returns
    -------
    ndarray, same shape as ``frames``, float32 in [0, 1]
        ``(clip(frames, lo, hi) - lo) / (hi - lo)``. If ``hi <= lo`` (a flat
        sequence) the result is all zeros; nothing is divided by zero.

    See Also
    --------
    denormalize : the inverse map from [0, 1] back to camera units.
    """
    lo = finite_scalar(lo, "lo")
    hi = finite_scalar(hi, "hi")
    array = real_frames(frames, "frames")
    lo32, hi32 = np.float32(lo), np.float32(hi)
    if hi32 <= lo32:
        return np.zeros(array.shape, dtype=np.float32)
    out = np.clip(array.astype(np.float32), lo32, hi32)
    out -= lo32
    out /= hi32 - lo32
    # Float32 rounding could leave 1 + eps; keep the documented range exact.
    return np.clip(out, 0.0, 1.0, out=out)


def denormalize(frames01: npt.ArrayLike, lo: float, hi: float) -> np.ndarray:
    """Map [0, 1] frames back to the intensity scale ``[lo, hi]``.

    Parameters
    ----------
    frames01 : array_like, (h, w) or (t, h, w), real
        Normalised frame(s), e.g. fused output; values outside [0, 1] map linearly.
    lo, hi : float
        The bounds given to :func:`normalize_percentile`.

    Returns
    -------
    ndarray, same shape as ``frames01``, float32
        ``lo + frames01 * (hi - lo)``; all ``lo`` when ``hi <= lo`` (flat sequence).
    """
    lo = finite_scalar(lo, "lo")
    hi = finite_scalar(hi, "hi")
    array = real_frames(frames01, "frames01")
    lo32, hi32 = np.float32(lo), np.float32(hi)
    if hi32 <= lo32:
        return np.full(array.shape, lo32, dtype=np.float32)
    out = array.astype(np.float32)
    out *= hi32 - lo32
    out += lo32
    return out
