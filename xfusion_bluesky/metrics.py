"""PSNR, AAD, SSIM on (t, h, w) arrays.

Every metric compares an estimate (fused, bicubic, ...) with the ground truth frame by
frame, in float64, and returns one value per frame: shape ``(t,)`` for a ``(t, h, w)``
stack, a Python float for a single ``(h, w)`` image. The estimate is clipped to
``[0, data_range]`` first (``[0, 1]`` by default), as the paper's evaluation clips
before quantising. Use :func:`mean_finite` to average a sequence: identical frames
have PSNR = +inf, which it skips and counts.

Two modes (``docs/spec/baselines_and_metrics.md`` §2):

- float mode (default): data in [0, 1], data range 1, no quantisation;
- paper-compatible mode, ``quantize=True``: both images become
  ``round(255 · clip(x, 0, 1))`` (BasicSR ``tensor2img``) and the metric is computed
  on those 0..255 values with data range 255, as XFusion's evaluation does.

PSNR agrees between the modes up to the quantisation; AAD in paper mode is in
0..255 units. numpy only: no torch, no bluesky.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from xfusion_bluesky.errors import InvalidInputError

__all__ = ["aad", "mean_finite", "psnr", "ssim"]

#: One value per frame for (t, h, w) input, a float for one (h, w) image.
MetricValue = float | npt.NDArray[np.float64]
_PerFrame = Callable[[np.ndarray, np.ndarray, float], np.ndarray]

#: Frames are processed in chunks of about this many pixels to bound memory
#: (SSIM holds ~10 float64 maps of a chunk at once).
_CHUNK_PIXELS = 1 << 21
#: Quantisation scale of the paper-compatible mode (8-bit images).
_QUANT_LEVELS = 255.0
#: SSIM stabilising constants (Wang et al. 2004): C1 = (K1 L)^2, C2 = (K2 L)^2.
_K1, _K2 = 0.01, 0.03
_GAUSSIAN_SIGMA = 1.5
_GAUSSIAN_RADIUS = 5  # 11 taps = scipy's truncate 3.5 at sigma 1.5, as skimage
_UNIFORM_SIZE = 7


def _as_image_stack(array: npt.ArrayLike, name: str) -> np.ndarray:
    """Return ``array`` as an ndarray after checking dtype, ndim and size."""
    out = np.asarray(array)
    if out.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold real numbers; got dtype {out.dtype}. "
            "Pass a real (integer or float) array."
        )
    if out.ndim not in (2, 3):
        raise InvalidInputError(
            f"{name} must be an (h, w) image or a (t, h, w) stack; got shape "
            f"{out.shape}"
        )
    if out.size == 0:
        raise InvalidInputError(f"{name} is empty (shape {out.shape})")
    return out


def _check_finite(chunk: np.ndarray, name: str, first_frame: int) -> None:
    """Raise if ``chunk`` (frames from ``first_frame`` on) holds NaN or inf."""
    if chunk.dtype.kind != "f":
        return
    bad = ~np.isfinite(chunk)
    if bad.any():
        frame = first_frame + int(np.argwhere(bad)[0][0])
        raise InvalidInputError(
            f"{name} contains NaN or inf (first in frame {frame}); metrics need "
            "finite values: drop or repair those frames"
        )


def _scale(data_range: float, quantize: bool) -> float:
    """Check ``data_range`` against ``quantize``; return the data range used."""
    try:
        value = float(data_range)
    except (TypeError, ValueError) as err:
        raise TypeError(f"data_range must be a number; got {data_range!r}") from err
    if not (math.isfinite(value) and value > 0.0):
        raise InvalidInputError(f"data_range must be finite and > 0; got {data_range}")
    if quantize and value != 1.0:
        raise InvalidInputError(
            f"quantize=True takes [0, 1] images and works on 0..255 with data range "
            f"255; leave data_range at 1 (got {data_range})"
        )
    return _QUANT_LEVELS if quantize else value


def _per_frame(
    estimate: npt.ArrayLike,
    truth: npt.ArrayLike,
    metric: _PerFrame,
    *,
    data_range: float,
    quantize: bool,
    min_side: int = 1,
) -> MetricValue:
    """Check inputs, prepare them chunk by chunk and apply ``metric`` per frame.

    ``metric(estimate, truth, data_range)`` gets float64 (n, h, w) chunks, the
    estimate clipped (and both quantised in paper mode), and returns (n,) values.
    """
    est = _as_image_stack(estimate, "estimate")
    tru = _as_image_stack(truth, "truth")
    if est.shape != tru.shape:
        raise InvalidInputError(
            f"estimate and truth must have the same shape; got {est.shape} and "
            f"{tru.shape}"
        )
    if min(est.shape[-2:]) < min_side:
        raise InvalidInputError(
            f"frames of {est.shape[-2]}×{est.shape[-1]} pixels are smaller than the "
            f"{min_side}×{min_side} window; use larger frames or another window"
        )
    scale = _scale(data_range, quantize)
    est3, tru3 = (est, tru) if est.ndim == 3 else (est[None], tru[None])
    values = np.empty(est3.shape[0], dtype=np.float64)
    step = max(1, _CHUNK_PIXELS // (est3.shape[1] * est3.shape[2]))
    for start in range(0, est3.shape[0], step):
        part = slice(start, start + step)
        _check_finite(est3[part], "estimate", start)
        _check_finite(tru3[part], "truth", start)
        est_chunk = est3[part].astype(np.float64)
        tru_chunk = tru3[part].astype(np.float64)
        if quantize:
            est_chunk = np.round(_QUANT_LEVELS * np.clip(est_chunk, 0.0, 1.0))
            tru_chunk = np.round(_QUANT_LEVELS * np.clip(tru_chunk, 0.0, 1.0))
        else:
            est_chunk = np.clip(est_chunk, 0.0, scale)
        values[part] = metric(est_chunk, tru_chunk, scale)
    return float(values[0]) if est.ndim == 2 else values


def _psnr_frames(est: np.ndarray, tru: np.ndarray, scale: float) -> np.ndarray:
    diff = est - tru
    mse = np.mean(diff * diff, axis=(1, 2))
    with np.errstate(divide="ignore"):  # MSE = 0 -> +inf, on purpose
        return 10.0 * np.log10(scale * scale / mse)


def _aad_frames(est: np.ndarray, tru: np.ndarray, scale: float) -> np.ndarray:
    return np.mean(np.abs(est - tru), axis=(1, 2))


def psnr(
    estimate: npt.ArrayLike,
    truth: npt.ArrayLike,
    *,
    data_range: float = 1.0,
    quantize: bool = False,
) -> MetricValue:
    """Return the peak signal-to-noise ratio of ``estimate`` against ``truth``.

    Parameters
    ----------
    estimate, truth : array_like, (h, w) or (t, h, w), same shape, real, finite
        Estimated and ground-truth frames, normally in [0, 1]. The estimate is
        clipped to ``[0, data_range]``; neither is modified.
    data_range : float, default 1.0
        Peak value L of the data.
    quantize : bool, default False
        Paper-compatible mode: compare ``round(255 · clip(x, 0, 1))`` of both with
        L = 255 (then ``data_range`` must stay 1).

    Returns
    -------
    float or ndarray, (t,) float64
        ``10 · log10(L² / MSE)`` per frame, in dB; +inf where MSE = 0 (no hidden
        epsilon: average with :func:`mean_finite`).

    Raises
    ------
    InvalidInputError
        Shapes differ, ndim not 2 or 3, empty, NaN/inf, bad ``data_range``.
    """
    return _per_frame(
        estimate, truth, _psnr_frames, data_range=data_range, quantize=quantize
    )


def aad(
    estimate: npt.ArrayLike,
    truth: npt.ArrayLike,
    *,
    data_range: float = 1.0,
    quantize: bool = False,
) -> MetricValue:
    """Return the average absolute difference ``mean |estimate - truth|`` per frame.

    Parameters
    ----------
    estimate, truth : array_like, (h, w) or (t, h, w), same shape, real, finite
        Estimated and ground-truth frames; the estimate is clipped to
        ``[0, data_range]``.
    data_range : float, default 1.0
        Peak value of the data; only sets the clip.
    quantize : bool, default False
        Paper-compatible mode: compare ``round(255 · clip(x, 0, 1))`` of both; the
        result is then in 0..255 units (XFusion's ``aad_8bit``; divide by 255 for
        [0, 1] units).

    Returns
    -------
    float or ndarray, (t,) float64
        AAD in the units of the data ([0, 1] by default, 0..255 when quantised).

    Raises
    ------
    InvalidInputError
        Shapes differ, ndim not 2 or 3, empty, NaN/inf, bad ``data_range``.
    """
    return _per_frame(
        estimate, truth, _aad_frames, data_range=data_range, quantize=quantize
    )


def _gaussian_kernel() -> np.ndarray:
    offsets = np.arange(-_GAUSSIAN_RADIUS, _GAUSSIAN_RADIUS + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (offsets / _GAUSSIAN_SIGMA) ** 2)
    return kernel / kernel.sum()


def _filter_valid(maps: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of the last two axes of ``maps`` with ``kernel``.

    Only output pixels whose window lies inside the image are computed, which is
    exactly the region SSIM keeps after cropping (k - 1) / 2 pixels per side, so
    the border mode (skimage: reflect) never matters.
    """
    taps = kernel.size
    rows_out = maps.shape[-2] - taps + 1
    cols_out = maps.shape[-1] - taps + 1
    rows = kernel[0] * maps[..., :rows_out, :]
    for i in range(1, taps):
        rows += kernel[i] * maps[..., i : i + rows_out, :]
    out = kernel[0] * rows[..., :cols_out]
    for i in range(1, taps):
        out += kernel[i] * rows[..., i : i + cols_out]
    return out


def _ssim_frames(
    est: np.ndarray, tru: np.ndarray, scale: float, kernel: np.ndarray, cov_norm: float
) -> np.ndarray:
    """Mean SSIM per frame over the valid region (Wang et al. 2004, eq. 13)."""
    stats = _filter_valid(np.stack([est, tru, est * est, tru * tru, est * tru]), kernel)
    mu_e, mu_t, mean_ee, mean_tt, mean_et = stats  # each (n, h - k + 1, w - k + 1)
    var_e = cov_norm * (mean_ee - mu_e * mu_e)
    var_t = cov_norm * (mean_tt - mu_t * mu_t)
    cov_et = cov_norm * (mean_et - mu_e * mu_t)
    c1 = (_K1 * scale) ** 2
    c2 = (_K2 * scale) ** 2
    numerator = (2.0 * mu_e * mu_t + c1) * (2.0 * cov_et + c2)
    denominator = (mu_e * mu_e + mu_t * mu_t + c1) * (var_e + var_t + c2)
    return np.mean(numerator / denominator, axis=(1, 2))


def ssim(
    estimate: npt.ArrayLike,
    truth: npt.ArrayLike,
    *,
    window: str = "gaussian",
    data_range: float = 1.0,
    quantize: bool = False,
) -> MetricValue:
    """Return the mean structural similarity index of ``estimate`` and ``truth``.

    Parameters
    ----------
    estimate, truth : array_like, (h, w) or (t, h, w), same shape, real, finite
        Estimated and ground-truth frames; the estimate is clipped to
        ``[0, data_range]``. Frames must be at least as large as the window.
    window : {"gaussian", "uniform"}, default "gaussian"
        ``"gaussian"``: 11×11 Gaussian, σ = 1.5, population covariance, mean over
        the valid region (5 px cropped per side) — Wang et al. 2004 / BasicSR;
        equals scikit-image with ``gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False``. ``"uniform"``: 7×7 uniform window, sample
        covariance (divide by N - 1 = 48), 3 px cropped per side — scikit-image's
        defaults, which the authors' evaluation (and so the paper's SSIM) used.
    data_range : float, default 1.0
        Peak value L; C1 = (0.01 L)², C2 = (0.03 L)².
    quantize : bool, default False
        Paper-compatible mode: compare ``round(255 · clip(x, 0, 1))`` of both with
        L = 255 (then ``data_range`` must stay 1).

    Returns
    -------
    float or ndarray, (t,) float64
        Mean SSIM per frame, at most 1 (identical frames give exactly 1).

    Raises
    ------
    InvalidInputError
        Unknown ``window``; frames smaller than the window; shapes differ; ndim
        not 2 or 3; empty; NaN/inf; bad ``data_range``.

    Notes
    -----
    The two windows differ materially (≈ 0.04 at moderate error): label which
    one every table uses. Local statistics are computed only where the window
    fits inside the frame, which is the region both references average over.

    References
    ----------
    Wang, Bovik, Sheikh, Simoncelli, "Image quality assessment: from error
    visibility to structural similarity", IEEE TIP 13(4):600-612 (2004).
    """
    if window == "gaussian":
        kernel, cov_norm = _gaussian_kernel(), 1.0
    elif window == "uniform":
        kernel = np.full(_UNIFORM_SIZE, 1.0 / _UNIFORM_SIZE)
        taps = _UNIFORM_SIZE * _UNIFORM_SIZE
        cov_norm = taps / (taps - 1.0)  # sample covariance, as skimage's default
    else:
        raise InvalidInputError(
            f"window must be 'gaussian' (Wang 2004) or 'uniform' (scikit-image "
            f"default, the paper's); got {window!r}"
        )

    def metric(est: np.ndarray, tru: np.ndarray, scale: float) -> np.ndarray:
        return _ssim_frames(est, tru, scale, kernel, cov_norm)

    return _per_frame(
        estimate,
        truth,
        metric,
        data_range=data_range,
        quantize=quantize,
        min_side=kernel.size,
    )


def mean_finite(values: npt.ArrayLike) -> tuple[float, int]:
    """Average per-frame metric values, skipping +inf (perfect PSNR) frames.

    Parameters
    ----------
    values : array_like of float
        Per-frame values, e.g. from :func:`psnr`; any shape, flattened.

    Returns
    -------
    mean : float
        Mean of the finite values; +inf when every value is +inf.
    n_inf : int
        Number of +inf values skipped; report it beside the mean.

    Raises
    ------
    InvalidInputError
        Empty input, or NaN / -inf values (no metric here produces them).
    """
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        raise InvalidInputError("values is empty; pass at least one metric value")
    if np.isnan(array).any() or np.isneginf(array).any():
        raise InvalidInputError(
            f"values contains NaN or -inf ({array[~np.isfinite(array)][:5]} ...); "
            "only +inf (MSE = 0) is expected and skipped"
        )
    finite = array[np.isfinite(array)]
    n_inf = array.size - finite.size
    return (float(finite.mean()) if finite.size else math.inf), n_inf
