"""Data, degradation and scoring of ``benchmarks/quality.py``.

The held-out sequences (synthetic scenes, the shipped real radiographs), their LR
frames at each noise level, the HR grid of each condition, and an evaluator that
fuses every method and scores every frame; ``quality.py`` documents the protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from quality_report import HR_SEPARATIONS, METHODS, attention_summary, summarise

from xfusion_bluesky.evaluation.datasets import flat_field, shown_path
from xfusion_bluesky.fusion import FusionResult, fuse
from xfusion_bluesky.fusion.methods import method_spec
from xfusion_bluesky.fusion.normalization import normalize_percentile, percentile_range
from xfusion_bluesky.metrics import aad, mean_finite, psnr, ssim
from xfusion_bluesky.synthetic.degradation import (
    add_poisson_noise,
    b0_for_psnr,
    bin_frames,
    lr_psnr,
)
from xfusion_bluesky.synthetic.scene import SCENE_VERSION, XRAY_FAMILIES, generate_scene

NOISE_DB = (None, 30.0)
#: Held-out scene seeds: training draws scene seeds below 2**31, never these.
SEEDS = (2**31 + 1, 2**31 + 2, 2**31 + 3)
SCALE = 4
LR_SEPARATION = 1
SSIM_WINDOW = "gaussian"


@dataclass(frozen=True)
class Size:
    """How much data a run fuses."""

    frames: int
    height: int
    width: int
    seeds: tuple[int, ...]
    radiograph_frames: int | None


FULL = Size(41, 128, 192, SEEDS, None)
QUICK = Size(41, 64, 96, SEEDS[:1], 41)


@dataclass(frozen=True)
class Sequence:
    """One ground-truth HR video in [0, 1] and where it came from."""

    name: str
    truth: np.ndarray  # (T, H, W) float32 in [0, 1]
    seed: int
    source: dict[str, Any]


@dataclass(frozen=True)
class Condition:
    """One setting of the table: LR noise level and HR separation."""

    noise_db: float | None
    hr_separation: int

    @property
    def label(self) -> str:
        noise = "no noise" if self.noise_db is None else f"LR {self.noise_db:g} dB"
        return f"{noise}, HR separation {self.hr_separation}"


CONDITIONS = tuple(Condition(n, p) for n in NOISE_DB for p in HR_SEPARATIONS)


def synthetic_sequences(
    size: Size, families: tuple[str, ...] = XRAY_FAMILIES
) -> list[Sequence]:
    """Render one held-out sequence per (scene family, seed); x-ray families default."""
    return [
        Sequence(
            f"{family}/{seed}",
            generate_scene(
                family,
                num_frames=size.frames,
                height=size.height,
                width=size.width,
                seed=seed,
            ),
            seed,
            {"family": family, "seed": seed, "scene_version": SCENE_VERSION},
        )
        for family in families
        for seed in size.seeds
    ]


def radiograph_sequences(size: Size, folder: Path) -> list[Sequence] | None:
    """Load the real I13-2 radiographs as one [0, 1] HR video; None if absent."""
    path = folder / "savu_i13_projections.npz"
    if not path.is_file():
        return None
    with np.load(path) as data:
        corrected = flat_field(data["proj"], data["dark"], data["flat"])
    height, width = (n - n % SCALE for n in corrected.shape[1:])
    corrected = corrected[: size.radiograph_frames, :height, :width]
    lo, hi = percentile_range(corrected)
    truth = normalize_percentile(corrected, lo, hi)
    source = {"file": shown_path(path), "crop": [height, width], "range": [lo, hi]}
    return [Sequence("savu_i13", truth, 0, source)]


def degrade_lr(
    truth: np.ndarray, noise_db: float | None, seed: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """Bin the truth 4× and add Poisson noise calibrated to ``noise_db`` (or none)."""
    clean = bin_frames(truth, SCALE).astype(np.float64)
    if noise_db is None:
        return clean.astype(np.float32), {"b0": None, "lr_psnr_db": None}
    b0 = b0_for_psnr(noise_db, clean, seed=seed)
    noisy = add_poisson_noise(clean, b0, seed)
    info = {"b0": b0, "lr_psnr_db": lr_psnr(clean, noisy), "noise_seed": seed}
    return noisy.astype(np.float32), info


def hr_grid(num_frames: int, hr_separation: int) -> np.ndarray:
    """Return the paper's HR frame grid ``0, P, 2P, … < T``."""
    return np.arange(0, num_frames, hr_separation)


def frame_scores(fused: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray]:
    """Return per-frame PSNR, SSIM and AAD (float mode, data range 1)."""
    return {
        "psnr": np.asarray(psnr(fused, truth)),
        "ssim": np.asarray(ssim(fused, truth, window=SSIM_WINDOW)),
        "aad": np.asarray(aad(fused, truth)),
    }


def attention_samples(result: FusionResult, hr_index: np.ndarray) -> dict[str, Any]:
    """Return offsets t − a and normalised scores of the frames between HR frames."""
    t = np.arange(result.frames.shape[0])
    offset = t - hr_index[result.hr_before]
    real = ~(
        result.hr_at_reference
        | result.hr_before_substituted
        | result.hr_after_substituted
    )
    backward = result.normalized_backward_attention
    forward = result.normalized_forward_attention
    finite = np.isfinite(backward) & np.isfinite(forward)
    keep = real & finite
    # The backward share of the raw scores: unlike the paper's normalisation it does
    # not move when the reference frame's own features grow or shrink.
    raw_sum = result.backward_attention + result.forward_attention
    with np.errstate(divide="ignore", invalid="ignore"):
        share = result.backward_attention / raw_sum
    return {
        "offset": offset[keep],
        "backward": backward[keep],
        "forward": forward[keep],
        "share": share[keep],
        "nan_frames": int((real & ~finite).sum()),
    }


class Evaluator:
    """Fuse and score sequences; cache what does not depend on the HR grid.

    Methods without HR frames (the registry says which: EDVR, bicubic) give the
    same frames at every HR separation, so their per-frame scores are computed
    once per (sequence, noise level) and reused.
    """

    def __init__(self, models: dict[str, torch.nn.Module]) -> None:
        self.models = models
        self.lr_info: dict[tuple[str, float | None], dict[str, Any]] = {}
        self._lr: dict[tuple[str, float | None], np.ndarray] = {}
        self._scores: dict[tuple[str, float | None, str], dict[str, np.ndarray]] = {}

    def lr(self, seq: Sequence, noise_db: float | None) -> np.ndarray:
        """Return the (cached) LR frames of ``seq`` at ``noise_db``."""
        key = (seq.name, noise_db)
        if key not in self._lr:
            self._lr[key], self.lr_info[key] = degrade_lr(seq.truth, noise_db, seq.seed)
        return self._lr[key]

    def fuse(self, seq: Sequence, cond: Condition, method: str) -> FusionResult:
        """Fuse ``seq`` under ``cond`` with ``method``."""
        hr_index = hr_grid(seq.truth.shape[0], cond.hr_separation)
        return fuse(
            self.lr(seq, cond.noise_db),
            seq.truth[hr_index],
            hr_index,
            method,
            model=self.models.get(method),
            lr_separation=LR_SEPARATION,
            normalize=False,
        )

    def scores(
        self, seq: Sequence, cond: Condition, method: str
    ) -> tuple[dict[str, np.ndarray], FusionResult | None]:
        """Return per-frame scores over all frames (and the result if HR is used)."""
        if method_spec(method).uses_hr:
            result = self.fuse(seq, cond, method)
            return frame_scores(result.frames, seq.truth), result
        key = (seq.name, cond.noise_db, method)
        if key not in self._scores:
            fused = self.fuse(seq, cond, method).frames
            self._scores[key] = frame_scores(fused, seq.truth)
        return self._scores[key], None


def evaluate_condition(
    evaluator: Evaluator, sequences: list[Sequence], cond: Condition
) -> dict[str, Any]:
    """Fuse every sequence with every method; pool scores and attention samples."""
    pooled: dict[str, dict[str, list[np.ndarray]]] = {
        m: {"psnr": [], "ssim": [], "aad": []} for m in METHODS
    }
    per_sequence: dict[str, list[float]] = {m: [] for m in METHODS}
    attention: list[dict[str, Any]] = []
    for seq in sequences:
        hr_index = hr_grid(seq.truth.shape[0], cond.hr_separation)
        no_hr = ~np.isin(np.arange(seq.truth.shape[0]), hr_index)
        for method in METHODS:
            scores, result = evaluator.scores(seq, cond, method)
            for metric, values in scores.items():
                pooled[method][metric].append(values[no_hr])
            per_sequence[method].append(mean_finite(scores["psnr"][no_hr])[0])
            if result is not None:
                samples = attention_samples(result, hr_index)
                samples["family"] = seq.source.get("family", seq.name)
                attention.append(samples)
    return {
        "condition": {"noise_db": cond.noise_db, "hr_separation": cond.hr_separation},
        "label": cond.label,
        "lr_noise": [evaluator.lr_info[(s.name, cond.noise_db)] for s in sequences],
        "methods": {
            m: summarise(pooled[m]) | {"per_sequence_psnr_db": per_sequence[m]}
            for m in METHODS
        },
        "attention": attention_summary(attention, cond.hr_separation),
    }
