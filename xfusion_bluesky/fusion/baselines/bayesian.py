"""Kalman + K-means (Bayesian) fusion, vectorised: the paper's non-learned baseline.

Per reference frame t between the HR frames at t_a and t_b (spec
``docs/spec/baselines_and_metrics.md`` §1, after Xue et al. 2017 as re-implemented in
Tang
et al. 2025):

A. calibrate the degradation ``y_k ≈ g_k·B(x_k) + o_k + e_k`` (B = 4×4 block mean,
   ``e_k ~ N(0, σ_k²)``) on the co-temporal LR/HR pairs at t_a and t_b by least
   squares, and interpolate g, o, σ² linearly in time to t;
B. map the three LR frames to HR radiometry, ``z_k = (y_k − o_k)/g_k``, cluster
   the LR pixels by K-means on ``(z_a, z_b)`` (K from the 5 % geometric-mean rule)
   and learn each cluster's mean and covariance of ``(z_a, z_t, z_b)``;
C. predict every HR pixel from its two HR neighbours by Gaussian conditioning in
   its cluster: ``m_i = α + β_a·x_a,i + β_b·x_b,i``, variance ``v``;
D. update the prediction with the reference LR frame by the exact Kalman/MAP step
   of a block-mean observation with independent pixel priors.

Choices the paper leaves open are the spec's: K-means features ``(z_a, z_b)``,
HR pixel → nearest centroid of ``(x_a, x_b)``, degradation parameters
interpolated in time, a diagonal prior. The literal reading (features
``(z_a, z_t, z_b)``, each HR pixel inheriting its LR pixel's label) is kept as
``BayesianSettings(cluster_features="lr3")``. The K-means result, the labels and
the calibrations depend only on the HR interval, so they are computed once per
interval and reused for its reference frames.

numpy, not torch: every step is a reshape-mean, a weighted ``bincount``, a gather
or a batched 2×2 solve, and the Python loops run over clusters and K-means
iterations, never over pixels. Most of these operations are small (LR grid,
K ≈ 10); torch's intra-op threads cost milliseconds per such operation on a
loaded 2-core host (measured 1.7 s per 400×1024 frame with 2 threads against
0.04 s with one), while numpy runs them single-threaded. Tensors from the
engine are viewed as arrays (copied off a GPU) and the result goes back to
their device.

This module is the fuser: its settings, the per-HR-interval cache and the
order of steps A–D. The K-means clustering lives in
:mod:`~xfusion_bluesky.fusion.baselines.clustering`, the degradation model,
cluster statistics, prior and Kalman update in
:mod:`~xfusion_bluesky.fusion.baselines.kalman`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.fusion.baselines.clustering import (
    kmeans,
    label_hr_pixels,
    nearest_centroid,
    num_clusters,
)
from xfusion_bluesky.fusion.baselines.kalman import (
    SCALE,
    calibrate_degradation,
    cluster_statistics,
    kalman_update,
    temporal_prior,
    upsample_nearest,
)
from xfusion_bluesky.fusion.protocols import FusedBatch

__all__ = ["BayesianFuser", "BayesianSettings", "bayesian_fuse"]

logger = logging.getLogger(__name__)

Array = NDArray[Any]


@dataclass(frozen=True)
class BayesianSettings:
    """Settings of the Bayesian fusion; pass as ``fuse(method="bayesian", model=...)``.

    Attributes
    ----------
    cluster_fraction : float
        K = max(2, round(cluster_fraction · √(h·w))) for LR frames of h×w: the
        paper's "5 % of the LR pixels per axis, geometric mean over the axes"
        (0.05 → K = 8 at LR 100×256, 16 at 250×400).
    cluster_features : {"ab", "lr3"}
        ``"ab"`` (default, docs/spec/baselines_and_metrics.md §1.3): K-means on ``(z_a,
        z_b)``, HR pixels to the
        nearest centroid of ``(x_a, x_b)``. ``"lr3"``: the literal reading,
        K-means on ``(z_a, z_t, z_b)`` and every HR pixel takes its LR pixel's
        label (puts the reference frame into prior and likelihood alike).
    max_samples : int
        K-means is fitted on at most this many randomly chosen LR pixels.
    max_iterations : int
        Lloyd iterations at most; fewer once under 0.1 % of the labels change.
    seed : int
        Seed of the K-means sampling and k-means++ initialisation: the same seed
        gives bit-identical output.
    label_bins : int or None
        None (default): every HR pixel gets the label of its nearest centroid
        (K distance maps per HR interval). An int labels through a
        ``label_bins²`` table of ``(x_a, x_b)`` bin centres
        (docs/spec/baselines_and_metrics.md §1.4); it saves
        ~20 ms per interval at 400×1024 but labels pixels within half a bin of a
        cluster border by the bin centre, which on a moving texture changed
        0.5 % of the fused pixels by up to 0.03 at 256 bins (the spec's 1e-4 did
        not hold), so it is off by default.
    """

    cluster_fraction: float = 0.05
    cluster_features: Literal["ab", "lr3"] = "ab"
    max_samples: int = 8192
    max_iterations: int = 20
    seed: int = 0
    label_bins: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.cluster_fraction) and self.cluster_fraction > 0):
            raise InvalidInputError(
                "cluster_fraction must be a positive fraction of the LR pixels per "
                f"axis (paper: 0.05); got {self.cluster_fraction!r}"
            )
        if self.cluster_features not in ("ab", "lr3"):
            raise InvalidInputError(
                "cluster_features must be 'ab' (spec default) or 'lr3' (literal); "
                f"got {self.cluster_features!r}"
            )
        if self.label_bins is not None and self.label_bins < 2:
            raise InvalidInputError(
                f"label_bins must be None (exact) or ≥ 2; got {self.label_bins}"
            )
        for name in ("max_samples", "max_iterations"):
            if getattr(self, name) < 1:
                raise InvalidInputError(
                    f"{name} must be ≥ 1; got {getattr(self, name)}"
                )


@dataclass
class _Interval:
    """What depends only on the HR interval (t_a, t_b): reused for its frames."""

    frames: tuple[Array, ...]  # lr_a, lr_b, hr_a, hr_b, to recognise it
    gain: Array  # (2,) at t_a, t_b
    offset: Array
    noise_var: Array
    z_pair: Array  # (2, h, w) float64: z_a, z_b
    k: int
    lr_labels: Array | None  # (h·w,), "ab" only
    hr_labels: Array | None  # (H, W), "ab" only


class BayesianFuser:
    """Kalman + K-means fusion as a :class:`~xfusion_bluesky.fusion.protocols.Fuser`.

    Meets :class:`~xfusion_bluesky.fusion.protocols.PairedFuser` too: the engine
    then hands it the LR frames at the HR frames' instants and the reference
    (``[t_a, t, t_b]``) instead of the EDVR-STF window, since the degradation is
    calibrated on co-temporal LR/HR pairs. Attention scores are NaN. Computes on
    the CPU in float64 (LR-grid statistics) and float32 (HR pixels) whatever
    ``device`` and ``dtype`` the engine asks for.

    Parameters
    ----------
    settings : BayesianSettings, optional
        Default ``BayesianSettings()``.
    """

    name = "bayesian"
    model_id: str | None = None
    size_multiple = 1

    def __init__(self, settings: BayesianSettings | None = None) -> None:
        self.settings = settings or BayesianSettings()
        self.config: dict[str, Any] = {
            **asdict(self.settings),
            "lr_frames": "at the HR instants t_a, t_b and the reference t",
            "degradation": "4x4 block mean, affine, least squares per pair, "
            "interpolated in time",
            "prior": "independent pixels",
        }
        self._interval: _Interval | None = None

    @classmethod
    def create(
        cls,
        model: Any,
        *,
        device: torch.device,
        dtype: torch.dtype | None,
        channels_last: bool,
    ) -> BayesianFuser:
        """Build the fuser for the engine; ``model`` is None or a BayesianSettings."""
        if model is not None and not isinstance(model, BayesianSettings):
            if isinstance(model, str | bytes) or hasattr(model, "__fspath__"):
                raise InvalidInputError(
                    f"method 'bayesian' takes no model file; got model={model!r}: "
                    "pass model=None or a BayesianSettings"
                )
            raise TypeError(
                "method 'bayesian' takes model=None or a BayesianSettings; got "
                f"{type(model).__name__}"
            )
        if device.type != "cpu" or dtype not in (None, torch.float32):
            logger.debug("bayesian computes on the CPU (asked: %s, %s)", device, dtype)
        return cls(model)

    def fuse_batch(self, lr: torch.Tensor, hr: torch.Tensor) -> FusedBatch:
        """Fuse windows whose outer LR frames were taken with the HR frames.

        ``lr[:, 0]`` and ``lr[:, 2]`` are taken as co-temporal with ``hr[:, 0]``
        and ``hr[:, 1]``, and the reference ``lr[:, 1]`` as midway between them.
        The engine calls :meth:`fuse_pairs`, which knows the instants.
        """
        instants = torch.tensor([[0, 1, 2]]).expand(lr.shape[0], 3)
        return self.fuse_pairs(lr, hr, instants)

    def fuse_pairs(
        self, lr: torch.Tensor, hr: torch.Tensor, instants: torch.Tensor
    ) -> FusedBatch:
        """Fuse a batch of reference frames from co-temporal LR/HR pairs.

        Parameters
        ----------
        lr : Tensor, (b, 3, 1, h, w) float32 in [0, 1]
            LR frames at ``[t_a, t, t_b]``.
        hr : Tensor, (b, 2, 1, 4h, 4w) float32 in [0, 1]
            HR frames at t_a and t_b.
        instants : Tensor, (b, 3) int
            The LR frame indices ``[t_a, t, t_b]``; ``t = t_a`` returns the HR
            frame, ``t_a = t_b`` (past either end of the HR frames) uses the
            one-sided model.

        Returns
        -------
        FusedBatch
            Clipped to [0, 1]; attention NaN.
        """
        lr_np = lr[:, :, 0].detach().float().cpu().numpy()
        hr_np = hr[:, :, 0].detach().float().cpu().numpy()
        fused = np.empty_like(hr_np[:, 0])
        for i, (t_a, t, t_b) in enumerate(instants.tolist()):
            if t == t_a:
                fused[i] = hr_np[i, 0]
                continue
            weight = (t - t_a) / (t_b - t_a) if t_b != t_a else 0.0
            fused[i] = self._fuse_one(lr_np[i], hr_np[i], weight)
        out = torch.from_numpy(np.clip(fused, 0.0, 1.0)[:, None]).to(hr.device)
        nan = torch.full((lr.shape[0],), float("nan"), device=lr.device)
        return FusedBatch(out, nan, nan.clone())

    def _prepare(self, lr: Array, hr: Array) -> _Interval:
        """Return the (cached) calibration and clusters of one HR interval."""
        frames = (lr[0], lr[2], hr[0], hr[1])
        cached = self._interval
        if cached is not None and all(
            np.array_equal(a, b) for a, b in zip(cached.frames, frames, strict=True)
        ):
            return cached
        gain, offset, noise_var = calibrate_degradation(hr, lr[[0, 2]])
        z_pair = (lr[[0, 2]] - offset[:, None, None]) / gain[:, None, None]
        height, width = lr.shape[-2:]
        k = num_clusters(height, width, self.settings.cluster_fraction)
        lr_labels = hr_labels = None
        if self.settings.cluster_features == "ab":
            points = z_pair.reshape(2, -1).T  # (h·w, 2)
            centroids = self._kmeans(points, k)
            lr_labels = nearest_centroid(points, centroids)
            hr_labels = label_hr_pixels(hr, centroids, self.settings.label_bins)
        self._interval = _Interval(
            frames=tuple(f.copy() for f in frames),
            gain=gain,
            offset=offset,
            noise_var=noise_var,
            z_pair=z_pair,
            k=k,
            lr_labels=lr_labels,
            hr_labels=hr_labels,
        )
        return self._interval

    def _kmeans(self, points: Array, k: int) -> Array:
        """Run K-means with this fuser's settings."""
        return kmeans(
            points,
            k,
            max_samples=self.settings.max_samples,
            max_iterations=self.settings.max_iterations,
            seed=self.settings.seed,
        )

    def _fuse_one(self, lr: Array, hr: Array, weight: float) -> Array:
        """Fuse one reference frame: lr (3, h, w) at t_a, t, t_b; hr (2, H, W)."""
        interval = self._prepare(lr, hr)
        mix = np.array([1.0 - weight, weight])
        gain = float(mix @ interval.gain)
        offset = float(mix @ interval.offset)
        noise_var = float(mix @ interval.noise_var)
        z_ref = (lr[1].astype(np.float64) - offset) / gain
        vectors = np.stack([interval.z_pair[0], z_ref, interval.z_pair[1]], -1)
        vectors = vectors.reshape(-1, 3)
        lr_labels, hr_labels = interval.lr_labels, interval.hr_labels
        if lr_labels is None or hr_labels is None:  # "lr3": labels depend on t
            centroids = self._kmeans(vectors, interval.k)
            lr_labels = nearest_centroid(vectors, centroids)
            hr_labels = upsample_nearest(lr_labels.reshape(lr.shape[-2:]))
        table = temporal_prior(*cluster_statistics(lr_labels, vectors, interval.k))
        alpha, beta_a, beta_b, variance = table.astype(np.float32).T
        prior_mean = alpha[hr_labels] + beta_a[hr_labels] * hr[0]
        prior_mean += beta_b[hr_labels] * hr[1]
        return kalman_update(
            prior_mean, variance[hr_labels], lr[1], gain, offset, noise_var
        )


def bayesian_fuse(
    lr: Array,
    hr: Array,
    *,
    weight: float,
    settings: BayesianSettings | None = None,
) -> NDArray[np.float32]:
    """Fuse one reference frame from the LR frames at t_a, t, t_b and two HR frames.

    Parameters
    ----------
    lr : array_like, (3, h, w) float in [0, 1]
        LR frames at t_a, the reference t and t_b.
    hr : array_like, (2, 4h, 4w) float in [0, 1]
        HR frames at t_a and t_b.
    weight : float
        ``(t − t_a)/(t_b − t_a)`` in [0, 1]; 0 returns the HR frame at t_a.
    settings : BayesianSettings, optional

    Returns
    -------
    ndarray, (4h, 4w) float32 in [0, 1]
    """
    lr_arr = np.asarray(lr, dtype=np.float32)
    hr_arr = np.asarray(hr, dtype=np.float32)
    if lr_arr.ndim != 3 or lr_arr.shape[0] != 3 or hr_arr.ndim != 3 or len(hr_arr) != 2:
        raise InvalidInputError(
            f"lr must be (3, h, w) and hr (2, 4h, 4w); got {lr_arr.shape} and "
            f"{hr_arr.shape}"
        )
    if hr_arr.shape[-2:] != (SCALE * lr_arr.shape[-2], SCALE * lr_arr.shape[-1]):
        raise InvalidInputError(
            f"hr frames must be exactly {SCALE}× the lr frames; got {hr_arr.shape} "
            f"for lr {lr_arr.shape}"
        )
    if not 0.0 <= weight <= 1.0:
        raise InvalidInputError(f"weight must lie in [0, 1]; got {weight}")
    if weight == 0.0:
        return np.clip(hr_arr[0], 0.0, 1.0)
    fused = BayesianFuser(settings)._fuse_one(lr_arr, hr_arr, weight)
    return np.clip(fused, 0.0, 1.0).astype(np.float32)
