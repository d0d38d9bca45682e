"""The HS latency in a fusion: applied to the HS frame times, checked on each burst.

The registration block carries ``hs_latency_s`` (HS trigger latency minus UHS
trigger latency, measured by a latency scan, or 0 when nominal): the HS frames
were really taken ``hs_latency_s`` after their recorded (nominal) times, so the
worker shifts them by that before it gives each HR frame its LR instant. Each
burst then measures the latency again on its own frames
(:func:`~xfusion_bluesky.calibration.measure_latency`) and the derived run
records the residual, measured minus applied: a residual of a sizeable part of
an LR period says the latency changed since it was measured. The check never
fails a fusion: a burst that cannot tell (no motion) records null.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xfusion_bluesky.errors import RegistrationError
from xfusion_bluesky.geometry import Similarity

__all__ = [
    "MAX_CHECK_FRAMES",
    "latency_check",
    "shifted_hr_times",
    "timing_start",
    "timing_summary",
]

logger = logging.getLogger(__name__)

#: Most HS frames one burst's latency check uses (each costs a warp and a fit):
#: evenly spread over the burst, they tell the latency as well as all of them.
MAX_CHECK_FRAMES = 8


def timing_start(registration: Mapping[str, Any]) -> dict[str, Any]:
    """Return the start document's ``fusion.timing``: the latency applied, and whence.

    Parameters
    ----------
    registration : mapping
        The raw run's ``registration`` block; without ``hs_latency_s`` (format 2
        or earlier, or a nominal one) the latency applied is 0.
    """
    std = registration.get("hs_latency_std_s")
    return {
        "hs_latency_s": float(registration.get("hs_latency_s") or 0.0),
        "hs_latency_std_s": None if std is None else float(std),
        "latency_measured_by": str(
            registration.get("latency_measured_by") or "nominal"
        ),
    }


def shifted_hr_times(
    hr_times_s: NDArray[np.float64], hs_latency_s: float
) -> NDArray[np.float64]:
    """Return the HS frame times on the UHS timeline: recorded + ``hs_latency_s``."""
    return np.asarray(hr_times_s, dtype=np.float64) + float(hs_latency_s)


def latency_check(
    lr: NDArray[Any],
    lr_times_s: NDArray[np.float64],
    hr: NDArray[Any],
    hr_times_s: NDArray[np.float64],
    similarity: Similarity,
    *,
    applied_s: float,
    lr_period_s: float,
) -> dict[str, Any]:
    """Measure one burst's latency on its own frames; return its record.

    Parameters
    ----------
    lr, lr_times_s : ndarray, (T, h, w) and (T,)
        The burst's UHS frames, as stored, and their recorded times.
    hr, hr_times_s : ndarray, (K, H, W) and (K,)
        Its HS frames, as stored, and their recorded (not shifted) times.
    similarity : Similarity
        The registration.
    applied_s : float
        The latency the fusion applied.
    lr_period_s : float
        The UHS frame period.

    Returns
    -------
    dict
        ``latency_measured_s``, ``latency_residual_s`` (measured − applied) and
        ``latency_residual_lr_periods``; all None when the frames cannot tell
        (no motion) or the measurement failed (logged, never raised).
    """
    record: dict[str, Any] = {
        "latency_measured_s": None,
        "latency_residual_s": None,
        "latency_residual_lr_periods": None,
    }
    pick = _spread(hr.shape[0], MAX_CHECK_FRAMES)
    try:
        from xfusion_bluesky.calibration import measure_latency

        measured = measure_latency(
            lr,
            lr_times_s,
            hr[pick],
            np.asarray(hr_times_s)[pick],
            similarity,
            lr_period_s=lr_period_s,
        )
    except RegistrationError as err:
        logger.info("latency check: the burst cannot tell (%s)", err)
        return record
    except Exception:  # a check: it must never cost the fusion
        logger.warning("latency check failed; fusing without it", exc_info=True)
        return record
    latency = float(measured.latency_s)
    if not math.isfinite(latency):
        return record
    residual = latency - float(applied_s)
    record.update(
        latency_measured_s=latency,
        latency_residual_s=residual,
        latency_residual_lr_periods=residual / float(lr_period_s),
    )
    return record


def timing_summary(
    applied_s: float, bursts: Sequence[Mapping[str, Any]], lr_period_s: float | None
) -> dict[str, Any]:
    """Return the stop document's ``outcome.timing``: the median residual of the bursts.

    Parameters
    ----------
    applied_s : float
        The latency the fusion applied.
    bursts : sequence of mapping
        The per-burst records (with ``latency_residual_s``, None where unknown).
    lr_period_s : float or None
        The UHS frame period (None: no residual in periods).
    """
    residuals = [
        float(b["latency_residual_s"])
        for b in bursts
        if b.get("latency_residual_s") is not None
    ]
    residual = float(np.median(residuals)) if residuals else None
    periods = (
        residual / lr_period_s
        if residual is not None and lr_period_s and lr_period_s > 0
        else None
    )
    return {
        "hs_latency_s": float(applied_s),
        "residual_s": residual,
        "residual_lr_periods": periods,
        "bursts_measured": len(residuals),
    }


def _spread(count: int, most: int) -> NDArray[np.int64]:
    """Return up to ``most`` indices spread evenly over ``range(count)``."""
    if count <= most:
        return np.arange(count, dtype=np.int64)
    return np.unique(np.linspace(0, count - 1, most).round().astype(np.int64))
