"""Sweeps over LR noise, HR separation, LR separation and Bayesian cluster number.

A :class:`Condition` fixes one setting; :class:`SweepPlan` lists the conditions
of each of the paper's figures; :class:`Evaluator` fuses a sequence under a
condition with a method and scores every frame against the truth. What it
computes is stored per *run*, a condition reduced to what the method depends on
(bicubic sees neither the HR frames nor the LR neighbours, LR-only EDVR no HR
frames, the Bayesian fusion no LR separation), one ``.npz`` per run, written
atomically: a rerun reads them back instead of fusing again, so an interrupted
evaluation resumes where it stopped.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xfusion_bluesky.evaluation.datasets import Sequence
from xfusion_bluesky.fusion import fuse
from xfusion_bluesky.fusion.baselines import BayesianSettings
from xfusion_bluesky.fusion.methods import method_spec
from xfusion_bluesky.metrics import aad, psnr, ssim
from xfusion_bluesky.synthetic.degradation import (
    add_poisson_noise,
    b0_for_psnr,
    bin_frames,
    lr_psnr,
)

__all__ = [
    "DEFAULT_CLUSTER_FRACTION",
    "HR_ENDS",
    "Condition",
    "Evaluator",
    "SweepPlan",
    "hr_grid",
]

logger = logging.getLogger(__name__)

#: ``hr_separation`` value meaning "HR frames at the first and the last instant only".
HR_ENDS = 0
#: The paper's cluster-number fraction (5 % of the LR pixels per axis).
DEFAULT_CLUSTER_FRACTION = BayesianSettings().cluster_fraction
#: Per-frame columns of a run.
RUN_COLUMNS = (
    "psnr_db",
    "ssim",
    "aad_8bit",
    "backward_attention",
    "forward_attention",
    "normalized_backward_attention",
    "normalized_forward_attention",
)


@dataclass(frozen=True)
class Condition:
    """One evaluation setting.

    Attributes
    ----------
    noise_db : float or None
        Target LR image PSNR of the Poisson noise (dB); None: no noise.
    hr_separation : int
        LR frame periods between HR frames, HR at ``0, P, 2P, …``;
        :data:`HR_ENDS` (0): at the first and last instant only; -1 in a run of
        a method that takes no HR frames.
    lr_separation : int
        s of the EDVR-STF/EDVR window ``t − s, t, t + s``.
    cluster_fraction : float or None
        Bayesian cluster-number fraction (Fig. S2 sweep); None: the default.
    """

    noise_db: float | None
    hr_separation: int
    lr_separation: int = 1
    cluster_fraction: float | None = None

    @property
    def noise_label(self) -> str:
        """``"none"`` or the target LR PSNR, e.g. ``"30"``."""
        return "none" if self.noise_db is None else f"{self.noise_db:g}"

    @property
    def hr_label(self) -> str:
        """``"ends"`` or the HR separation, e.g. ``"20"``."""
        return "ends" if self.hr_separation == HR_ENDS else str(self.hr_separation)

    def for_method(self, method: str) -> Condition:
        """Return the condition reduced to what ``method`` depends on (its run).

        What the method does not read (HR frames, LR neighbours: the method
        registry says) is set to -1 / 0, so conditions differing only there
        share one run; the cluster fraction is the Bayesian fusion's own.
        """
        spec = method_spec(method)
        fraction = self.cluster_fraction or DEFAULT_CLUSTER_FRACTION
        return Condition(
            self.noise_db,
            self.hr_separation if spec.uses_hr else -1,
            self.lr_separation if spec.uses_lr_separation else 0,
            fraction if method == "bayesian" else None,
        )

    def slug(self) -> str:
        """File-name form of the condition."""
        parts = [f"noise-{self.noise_label}"]
        # "hr-…" names the HR separation; run files keep this spelling so that
        # caches written before the rename are read back.
        if self.hr_separation >= 0:
            parts.append(f"hr-{self.hr_label}")
        if self.lr_separation > 0:
            parts.append(f"sep-{self.lr_separation}")
        if self.cluster_fraction is not None:
            parts.append(f"k-{self.cluster_fraction:g}")
        return "_".join(parts)


def hr_grid(num_frames: int, hr_separation: int) -> NDArray[np.int64]:
    """Return the HR instants: ``0, P, 2P, … < T`` (the paper's grid) or both ends."""
    if hr_separation == HR_ENDS:
        return np.array([0, num_frames - 1], dtype=np.int64)
    return np.arange(0, num_frames, hr_separation, dtype=np.int64)


@dataclass(frozen=True)
class SweepPlan:
    """The conditions of the paper's figures.

    Attributes
    ----------
    noise_db : tuple
        Fig. 5: target LR PSNR levels (None: no noise), at ``base_hr_separation``
        and ``base_lr_separation``.
    hr_separations : tuple of int
        Figs. 6 / S3 / S4: HR separations (:data:`HR_ENDS` for first and last
        only), without noise, for every LR separation in ``lr_separations``.
    lr_separations : tuple of int
    cluster_fractions : tuple of float
        Fig. S2: Bayesian cluster-number fractions, at each ``cluster_noise_db``.
    cluster_noise_db : tuple
    base_hr_separation, base_lr_separation : int
        The fixed setting of the noise and cluster sweeps and of Fig. 7.
    """

    noise_db: tuple[float | None, ...] = (20.0, 30.0, 40.0, 50.0, 60.0, None)
    hr_separations: tuple[int, ...] = (2, 10, 20, HR_ENDS)
    lr_separations: tuple[int, ...] = (1, 2, 3)
    cluster_fractions: tuple[float, ...] = (0.025, 0.05, 0.1, 0.2, 0.4, 0.8)
    cluster_noise_db: tuple[float | None, ...] = (None, 30.0)
    base_hr_separation: int = 20
    base_lr_separation: int = 1

    def noise_conditions(self) -> list[Condition]:
        """Conditions of the noise sweep (Fig. 5)."""
        return [
            Condition(n, self.base_hr_separation, self.base_lr_separation)
            for n in self.noise_db
        ]

    def hr_conditions(self) -> list[Condition]:
        """Conditions of the HR separation sweeps (Figs. 6, S3, S4)."""
        return [
            Condition(None, p, s)
            for s in self.lr_separations
            for p in self.hr_separations
        ]

    def cluster_conditions(self) -> list[Condition]:
        """Conditions of the Bayesian cluster-number sweep (Fig. S2)."""
        return [
            Condition(n, self.base_hr_separation, self.base_lr_separation, f)
            for n in self.cluster_noise_db
            for f in self.cluster_fractions
        ]

    def jobs(self, methods: tuple[str, ...]) -> list[tuple[Condition, str]]:
        """Every distinct (condition, method) to report, in a stable order."""
        jobs: list[tuple[Condition, str]] = []
        for cond in self.noise_conditions() + self.hr_conditions():
            jobs += [(cond, m) for m in methods if (cond, m) not in jobs]
        if "bayesian" in methods:
            jobs += [(c, "bayesian") for c in self.cluster_conditions()]
        return jobs

    def for_frames(self, num_frames: int) -> SweepPlan:
        """Drop HR and LR separations a sequence of T frames cannot have."""
        return replace(
            self,
            hr_separations=tuple(p for p in self.hr_separations if p < num_frames - 1),
            lr_separations=tuple(s for s in self.lr_separations if s < num_frames),
            base_hr_separation=min(self.base_hr_separation, max(num_frames - 1, 1)),
        )


class Evaluator:
    """Fuse sequences under conditions, score them, keep every run on disk.

    Parameters
    ----------
    cache_dir : path
        Run files go here, one folder per sequence. Point it at a folder whose
        name fingerprints the settings (frame size, metrics) so stale runs are
        never read back.
    models : dict
        Method → what ``fuse(model=...)`` gets (a loaded network); methods not
        listed get None (their default).
    device : str
        Torch device for the networks.
    model_ids : dict, optional
        Method → sha256 of its weights; part of its run files' names, so runs
        of other weights are never read back.
    """

    def __init__(
        self,
        cache_dir: Path,
        models: dict[str, Any],
        *,
        device: str = "cpu",
        model_ids: dict[str, str] | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.models = models
        self.device = device
        self.model_ids = model_ids or {}
        self._lr: dict[tuple[str, float | None], tuple[NDArray[Any], dict[str, Any]]]
        self._lr = {}
        #: Wall time each run used or took when it was computed (s), by run file.
        self.run_seconds: dict[Path, float] = {}
        #: Run files computed (not read back) by this evaluator.
        self.computed: set[Path] = set()

    def lr_frames(
        self, seq: Sequence, noise_db: float | None
    ) -> tuple[NDArray[Any], dict[str, Any]]:
        """Return the LR frames of ``seq`` at ``noise_db`` and how they were made.

        4×4 binning of the truth, then Poisson noise whose blank-scan factor b0
        gives an LR PSNR of ``noise_db`` on this sequence (calibrated with the
        sequence seed, spec ``baselines_and_metrics.md`` §3). A user's LR frames
        are used as recorded.
        """
        if seq.lr is not None:
            return seq.lr, {"b0": None, "lr_psnr_db": math.nan}
        key = (seq.name, noise_db)
        if key not in self._lr:
            if seq.truth is None:
                raise ValueError(f"sequence {seq.name} has neither LR frames nor truth")
            clean = bin_frames(seq.truth)
            if noise_db is None:
                self._lr[key] = (clean, {"b0": None, "lr_psnr_db": math.inf})
            else:
                b0 = b0_for_psnr(noise_db, clean, seed=seq.seed)
                noisy = add_poisson_noise(clean, b0, seq.seed)
                self._lr[key] = (noisy, {"b0": b0, "lr_psnr_db": lr_psnr(clean, noisy)})
        return self._lr[key]

    def forget(self, seq: Sequence) -> None:
        """Drop the LR frames held for ``seq``."""
        self._lr = {k: v for k, v in self._lr.items() if k[0] != seq.name}

    def run_path(self, seq: Sequence, cond: Condition, method: str) -> Path:
        """Return the file of the run that ``cond`` needs for ``method``."""
        run = cond.for_method(method)
        weights = self.model_ids.get(method)
        name = f"{method}-{weights[:12]}" if weights else method
        return self.cache_dir / seq.name / f"{name}_{run.slug()}.npz"

    def run(self, seq: Sequence, cond: Condition, method: str) -> dict[str, Any]:
        """Return per-frame scores of ``seq`` fused under ``cond`` (cached on disk)."""
        path = self.run_path(seq, cond, method)
        if path.is_file():
            with np.load(path) as data:
                result = {k: data[k] for k in data.files}
        else:
            result = self._compute(seq, cond, method)
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial.npz")
            np.savez(partial, **result)
            os.replace(partial, path)  # a killed run never leaves a half-written file
            self.computed.add(path)
        self.run_seconds[path] = float(result["seconds_per_frame"]) * seq.num_frames
        return result

    def _compute(self, seq: Sequence, cond: Condition, method: str) -> dict[str, Any]:
        """Fuse and score one run."""
        lr, info = self.lr_frames(seq, cond.noise_db)
        if seq.hr is not None and seq.hr_index is not None:
            hr, hr_index, normalize = seq.hr, seq.hr_index, True
        elif seq.truth is not None:  # HR frames are truth frames on the grid
            hr_index = hr_grid(seq.num_frames, cond.hr_separation)
            hr, normalize = seq.truth[hr_index], False
        else:
            raise ValueError(f"sequence {seq.name} has no HR frames and no truth")
        model = self.models.get(method)
        if method == "bayesian":
            fraction = cond.cluster_fraction or DEFAULT_CLUSTER_FRACTION
            model = BayesianSettings(cluster_fraction=fraction)
        tick = time.perf_counter()
        result = fuse(
            lr,
            hr,
            hr_index,
            method,
            model=model,
            lr_separation=cond.lr_separation,
            normalize=normalize,
            device=self.device,
        )
        seconds = (time.perf_counter() - tick) / seq.num_frames
        scores = self._scores(seq, result.frames, result.params.get("hr_range"))
        return {
            **scores,
            "backward_attention": result.backward_attention,
            "forward_attention": result.forward_attention,
            "normalized_backward_attention": result.normalized_backward_attention,
            "normalized_forward_attention": result.normalized_forward_attention,
            "hr_index": hr_index,
            "seconds_per_frame": np.float64(seconds),
            "lr_psnr_db": np.float64(info["lr_psnr_db"]),
            "b0": np.float64(math.nan if info["b0"] is None else info["b0"]),
        }

    @staticmethod
    def _scores(
        seq: Sequence, frames: NDArray[np.float32], hr_range: list[float] | None
    ) -> dict[str, NDArray[np.float64]]:
        """Per-frame PSNR, SSIM and AAD in the paper's 8-bit mode; NaN without truth.

        Paper-compatible metrics (spec ``baselines_and_metrics.md`` §2):
        ``round(255·clip(x, 0, 1))`` of both images, PSNR with L = 255, SSIM
        with scikit-image's defaults (7×7 uniform window), AAD in 0–255 units.
        """
        if seq.truth is None:
            nan = np.full(frames.shape[0], math.nan)
            return {"psnr_db": nan, "ssim": nan.copy(), "aad_8bit": nan.copy()}
        if hr_range is not None:  # a user's frames: compare in the HR [0, 1] scale
            lo, hi = hr_range
            frames = (frames - np.float32(lo)) / np.float32(max(hi - lo, 1e-30))
        return {
            "psnr_db": np.asarray(psnr(frames, seq.truth, quantize=True)),
            "ssim": np.asarray(
                ssim(frames, seq.truth, window="uniform", quantize=True)
            ),
            "aad_8bit": np.asarray(aad(frames, seq.truth, quantize=True)),
        }

    def rows(self, seq: Sequence, cond: Condition, method: str) -> dict[str, Any]:
        """Return one row per frame of ``seq`` under ``cond``: columns of a table."""
        run = self.run(seq, cond, method)
        hr_index = run["hr_index"]
        n = seq.num_frames
        frames = np.arange(n)
        preceding = np.searchsorted(hr_index, frames, side="right") - 1
        offset = np.where(preceding >= 0, frames - hr_index[preceding.clip(0)], -1)
        fraction = cond.cluster_fraction
        columns: dict[str, Any] = {
            "group": np.full(n, seq.group),
            "sequence": np.full(n, seq.name),
            "noise_db": np.full(
                n, math.nan if cond.noise_db is None else cond.noise_db
            ),
            "lr_psnr_db": np.full(n, float(run["lr_psnr_db"])),
            "hr_separation": np.full(n, cond.hr_separation),
            "lr_separation": np.full(n, cond.lr_separation),
            "method": np.full(n, method),
            "cluster_fraction": np.full(n, math.nan if fraction is None else fraction),
            "frame": frames,
            "offset": offset,
            "at_hr": np.isin(frames, hr_index),
            "after_last_hr": frames > hr_index[-1],
            "seconds_per_frame": np.full(n, float(run["seconds_per_frame"])),
        }
        columns |= {name: run[name] for name in RUN_COLUMNS}
        return columns
