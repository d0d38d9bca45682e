"""Gaussian model of the Bayesian fusion: degradation, cluster prior, Kalman update.

Steps A–D of :mod:`xfusion_bluesky.fusion.baselines.bayesian` but the clustering,
as array functions: the 4×4 block-mean degradation operator B and its nearest
upsampling U, the least-squares calibration ``y ≈ g·B(x) + o``, every cluster's
mean and covariance of ``(z_a, z_t, z_b)``, the Gaussian conditioning of the
value at t on the HR pair, and the exact Kalman/MAP update of a pixel-wise prior
with a block-mean observation (``docs/spec/baselines_and_metrics.md`` §1). Pure
numpy: reshape-means, weighted ``bincount`` and batched 2×2 solves.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "block_mean",
    "calibrate_degradation",
    "cluster_statistics",
    "kalman_update",
    "temporal_prior",
    "upsample_nearest",
]

Array = NDArray[Any]

#: Spatial factor between the LR and HR grids (4×4 binning).
SCALE = 4
#: Clusters with fewer LR pixels than this take the global mean and covariance.
MIN_CLUSTER_PIXELS = 10
#: Ridge on the 2×2 HR-pair covariance, relative to its mean variance
#: (docs/spec/baselines_and_metrics.md §1.4).
RIDGE = 1e-3
#: An |LR/HR gain| below this means the LR frame carries no measurable HR signal
#: (z = (y − o)/g would explode); the gain is then taken as 1.
MIN_GAIN = 1e-3


def block_mean(frames: Array) -> Array:
    """Return B(x): the mean of every non-overlapping 4×4 block, (…, H/4, W/4)."""
    *lead, height, width = frames.shape
    blocks = frames.reshape(*lead, height // SCALE, SCALE, width // SCALE, SCALE)
    # Summing the contiguous last axis first is ~3× faster than mean over (-3, -1).
    return blocks.sum(-1).sum(-2) / (SCALE * SCALE)


def upsample_nearest(frames: Array) -> Array:
    """Return U(y): every LR value repeated over its 4×4 block, (…, 4h, 4w)."""
    *lead, height, width = frames.shape
    grid = np.broadcast_to(
        frames[..., :, None, :, None], (*lead, height, SCALE, width, SCALE)
    )
    return grid.reshape(*lead, SCALE * height, SCALE * width)


def calibrate_degradation(hr: Array, lr: Array) -> tuple[Array, Array, Array]:
    """Fit ``lr ≈ gain·B(hr) + offset`` by least squares, per co-temporal pair.

    Parameters
    ----------
    hr : ndarray, (n, H, W) float
        HR frames, H and W multiples of 4.
    lr : ndarray, (n, H/4, W/4) float
        The LR frames taken at the same instants.

    Returns
    -------
    gain, offset, noise_var : ndarray, (n,) float64
        Affine degradation parameters and the residual variance
        ``Σ residual² / (N − 2)`` (noise plus model misfit). A flat HR frame
        (var B(x) < 1e-12) or an |gain| < :data:`MIN_GAIN` gets gain 1, with the
        offset from the means.
    """
    # Block means of 16 values are exact enough in float32; the sums over the
    # LR frame are not, so they run in float64.
    binned = block_mean(hr.astype(np.float32, copy=False)).reshape(len(hr), -1)
    binned = binned.astype(np.float64)
    observed = lr.reshape(len(lr), -1).astype(np.float64)
    mean_x, mean_y = binned.mean(1), observed.mean(1)
    dx, dy = binned - mean_x[:, None], observed - mean_y[:, None]
    var_x = (dx * dx).mean(1)
    gain = (dx * dy).mean(1) / np.maximum(var_x, 1e-300)
    gain = np.where((var_x < 1e-12) | (np.abs(gain) < MIN_GAIN), 1.0, gain)
    offset = mean_y - gain * mean_x
    residual = observed - gain[:, None] * binned - offset[:, None]
    dof = max(observed.shape[1] - 2, 1)
    return gain, offset, (residual * residual).sum(1) / dof


def cluster_statistics(labels: Array, vectors: Array, k: int) -> tuple[Array, Array]:
    """Return every cluster's mean and unbiased covariance of ``vectors``.

    Parameters
    ----------
    labels : ndarray, (n,) int in 0 … k − 1
    vectors : ndarray, (n, d) float64
        Here ``(z_a, z_t, z_b)`` per LR pixel.
    k : int

    Returns
    -------
    mean : ndarray, (k, d)
    cov : ndarray, (k, d, d)
        Clusters with fewer than :data:`MIN_CLUSTER_PIXELS` members take the
        global mean and covariance.
    """
    n, d = vectors.shape
    centre = vectors.mean(0)
    centred = vectors - centre  # fewer cancellations in Σx² − nμ²
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    mean = (
        np.stack(
            [np.bincount(labels, weights=centred[:, j], minlength=k) for j in range(d)],
            1,
        )
        / np.maximum(counts, 1)[:, None]
    )
    scatter = np.empty((k, d, d))
    for i in range(d):
        for j in range(i, d):  # weighted bincounts of the upper triangle
            products = centred[:, i] * centred[:, j]
            sums = np.bincount(labels, weights=products, minlength=k)
            scatter[:, i, j] = scatter[:, j, i] = (
                sums - counts * mean[:, i] * mean[:, j]
            )
    cov = scatter / np.maximum(counts - 1, 1)[:, None, None]
    global_cov = centred.T @ centred / max(n - 1, 1)
    small = counts < MIN_CLUSTER_PIXELS
    mean = np.where(small[:, None], 0.0, mean) + centre
    cov = np.where(small[:, None, None], global_cov, cov)
    return mean, cov


def temporal_prior(mean: Array, cov: Array) -> Array:
    """Condition the value at t on the values at t_a, t_b, per cluster.

    The temporal prior of docs/spec/baselines_and_metrics.md §1.4.

    Parameters
    ----------
    mean : ndarray, (k, 3)
        Cluster means of ``(z_a, z_t, z_b)``.
    cov : ndarray, (k, 3, 3)
        Their covariances.

    Returns
    -------
    ndarray, (k, 4) float64
        Columns α, β_a, β_b, v: the prior mean of a pixel is
        ``α + β_a·x_a + β_b·x_b``, its block-level variance ``v`` (≥ 1e-10).
        A ridge of 1e-3 of the mean HR-pair variance keeps the 2×2 solve
        well-posed, also when t_a = t_b past the ends of the HR frames (the
        two-sided model then splits β evenly, the one-sided model of
        docs/spec/baselines_and_metrics.md §1.7).
    """
    pair = [0, 2]
    s_oo = cov[:, pair][:, :, pair]  # (k, 2, 2)
    s_ot = cov[:, pair, 1]  # (k, 2)
    ridge = RIDGE * np.trace(s_oo, axis1=1, axis2=2) / 2 + 1e-8
    system = s_oo + ridge[:, None, None] * np.eye(2)
    beta = np.linalg.solve(system, s_ot[:, :, None])[:, :, 0]  # (k, 2)
    alpha = mean[:, 1] - (beta * mean[:, pair]).sum(1)
    variance = np.maximum(cov[:, 1, 1] - (beta * s_ot).sum(1), 1e-10)
    return np.stack([alpha, beta[:, 0], beta[:, 1], variance], 1)


def kalman_update(
    prior_mean: Array,
    prior_var: Array,
    lr_ref: Array,
    gain: float,
    offset: float,
    noise_var: float,
) -> Array:
    """Update a pixel-wise Gaussian prior with the reference LR frame.

    The observation update of docs/spec/baselines_and_metrics.md §1.5.

    Parameters
    ----------
    prior_mean, prior_var : ndarray, (H, W)
        Prior mean m and block-level variance p of every HR pixel.
    lr_ref : ndarray, (H/4, W/4)
        Reference LR frame y_t.
    gain, offset, noise_var : float
        Degradation at t: ``y_t = gain·B(x) + offset + e``, ``e ~ N(0, noise_var)``.

    Returns
    -------
    ndarray, (H, W)
        Posterior mean ``m + g·p·U(r/S)`` with innovation
        ``r = y_t − o − g·B(m)`` and its variance ``S = g²·B(p) + σ²``. With
        σ² → 0 the block means reproduce ``(y_t − o)/g`` exactly; the
        correction within a block goes to the pixels with the larger variance.
    """
    innovation = lr_ref - offset - gain * block_mean(prior_mean)
    spread = np.maximum(gain * gain * block_mean(prior_var) + noise_var, 1e-12)
    ratio = (innovation / spread).astype(prior_mean.dtype)
    return prior_mean + np.float32(gain) * prior_var * upsample_nearest(ratio)
