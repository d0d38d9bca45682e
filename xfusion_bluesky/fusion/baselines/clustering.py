"""K-means clustering of pixels for the Bayesian fusion (step B's clusters).

The cluster-number rule of the paper, Lloyd's K-means with k-means++
initialisation on a seeded subsample, and the labelling of LR points and HR
pixels by their nearest centroid. Pure numpy: the Python loops run over
clusters, features and iterations, never over pixels. Used by
:mod:`xfusion_bluesky.fusion.baselines.bayesian`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["kmeans", "label_hr_pixels", "nearest_centroid", "num_clusters"]

Array = NDArray[Any]


def num_clusters(lr_height: int, lr_width: int, fraction: float = 0.05) -> int:
    """Return K = max(2, round(fraction · √(h·w))), the paper's cluster-number rule."""
    return max(2, round(fraction * math.sqrt(lr_height * lr_width)))


def _squared_distances(points: Array, centroids: Array) -> Array:
    """Return ‖p − c‖², (n, k), summed over the (few) feature columns."""
    dist = np.zeros((points.shape[0], centroids.shape[0]), dtype=points.dtype)
    centroids = centroids.astype(points.dtype, copy=False)
    for j in range(points.shape[1]):  # d ≤ 3 features
        diff = points[:, j, None] - centroids[None, :, j]
        dist += diff * diff
    return dist


def _kmeans_plus_plus(points: Array, k: int, rng: np.random.Generator) -> Array:
    """Pick k initial centroids by D² sampling (Arthur & Vassilvitskii 2007)."""
    m = points.shape[0]
    chosen = [int(rng.integers(m))]
    nearest = ((points - points[chosen[0]]) ** 2).sum(1)
    for _ in range(1, k):
        total = float(nearest.sum())
        # All points on a centroid already (a flat scene): any point will do.
        pick = (
            int(rng.choice(m, p=nearest / total)) if total > 0 else int(rng.integers(m))
        )
        chosen.append(pick)
        nearest = np.minimum(nearest, ((points - points[pick]) ** 2).sum(1))
    return points[chosen].copy()


def kmeans(
    points: Array,
    k: int,
    *,
    max_samples: int = 8192,
    max_iterations: int = 20,
    seed: int = 0,
) -> Array:
    """Cluster ``points`` with Lloyd's K-means and k-means++ initialisation.

    Parameters
    ----------
    points : ndarray, (n, d) float
        Feature vectors (here LR pixels in HR radiometry).
    k : int
        Number of clusters.
    max_samples : int
        Fit on a random subset of at most this many points.
    max_iterations : int
        Lloyd iterations at most; stops once under 0.1 % of labels change.
    seed : int
        Seed of the subset and the initialisation.

    Returns
    -------
    ndarray, (k, d) float64
        Centroids. An empty cluster is re-seeded at the worst-fitted point.
    """
    rng = np.random.default_rng(seed)
    points = np.asarray(points, dtype=np.float64)
    if points.shape[0] > max_samples:
        points = points[rng.choice(points.shape[0], max_samples, replace=False)]
    centroids = _kmeans_plus_plus(points, k, rng)
    labels: Array | None = None
    for _ in range(max_iterations):
        distances = _squared_distances(points, centroids)
        new_labels = distances.argmin(1)
        counts = np.bincount(new_labels, minlength=k)
        for j in range(points.shape[1]):
            sums = np.bincount(new_labels, weights=points[:, j], minlength=k)
            centroids[:, j] = sums / np.maximum(counts, 1)
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            fit = distances[np.arange(points.shape[0]), new_labels]
            worst = np.argsort(fit)[::-1][: empty.size]
            centroids[empty[: worst.size]] = points[worst]
        changed = 1.0 if labels is None else float(np.mean(new_labels != labels))
        labels = new_labels
        if changed < 1e-3 and not empty.size:
            break
    return centroids


def nearest_centroid(points: Array, centroids: Array) -> Array:
    """Return the label of the nearest centroid of every point, (n,) int64."""
    return _squared_distances(points, centroids).argmin(1)


def label_hr_pixels(hr_pair: Array, centroids: Array, bins: int | None) -> Array:
    """Label every HR pixel by the nearest centroid of its ``(x_a, x_b)``.

    None: exact, in the HR frames' dtype. With ``bins`` the labels of a
    ``bins × bins`` grid of bin centres over [0, 1]² are computed once and
    gathered (docs/spec/baselines_and_metrics.md §1.4; see
    :class:`~xfusion_bluesky.fusion.baselines.bayesian.BayesianSettings` for its
    error).
    """
    if bins is None:
        # A running minimum over the K centroids on whole maps (contiguous
        # passes, several times faster than argmin over an (H·W, K) array) of
        # ‖c‖² − 2 x·c, which orders the centroids as ‖x − c‖² does.
        shape = hr_pair.shape[1:]
        best = np.full(shape, np.inf, dtype=hr_pair.dtype)
        labels = np.zeros(shape, dtype=np.intp)
        score = np.empty(shape, dtype=hr_pair.dtype)
        closer = np.empty(shape, dtype=bool)
        for c, (c_a, c_b) in enumerate(centroids.tolist()):  # clusters, not pixels
            np.multiply(hr_pair[0], -2.0 * c_a, out=score)
            score += hr_pair[1] * np.float32(-2.0 * c_b)
            score += c_a * c_a + c_b * c_b
            np.less(score, best, out=closer)
            np.copyto(best, score, where=closer)  # boolean indexing is ~10× slower
            np.copyto(labels, c, where=closer)
        return labels
    centres = (np.arange(bins) + 0.5) / bins
    grid = np.stack(np.meshgrid(centres, centres, indexing="ij"), -1).reshape(-1, 2)
    table = nearest_centroid(grid, centroids)  # (bins²,), row = x_a bin
    cells = np.clip((hr_pair * bins).astype(np.int64), 0, bins - 1)  # (2, H, W)
    return table[cells[0] * bins + cells[1]]
