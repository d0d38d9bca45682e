"""Fusion quality of EDVR-STF against EDVR and bicubic: issue 5 §4 targets.

Fuses held-out synthetic x-ray sequences (and, where ``../shared/data`` exists, the
real Diamond I13-2 radiographs) with the three methods and prints, per condition,
mean PSNR / SSIM / AAD on the frames with no HR frame, the Spearman ρ of the
normalised attention against the offset from the preceding HR frame, and every
target with PASS/FAIL. Writes every number, the seeds and the model ids to JSON
for the model card.

    python benchmarks/quality.py                          # shipped models/*.pth
    python benchmarks/quality.py --quick                  # < 2 min smoke run
    python benchmarks/quality.py --stf PATH --edvr PATH --out quality.json

Notes
-----
- Ground truth: ``generate_scene(family, num_frames=41, height=128, width=192)``
  for every x-ray family (``XRAY_FAMILIES``), seeds ``2**31 + 1 … 2**31 + 3``.
  Training draws its scene seeds with ``rng.integers(2**31)``
  (``training.dataset.make_window``), so seeds from ``2**31`` on never occur in
  training. ``--quick``: one seed, HR 64×96.
- LR: 4×4 mean binning of the truth; noise none, or Poisson with ``b0`` from
  ``b0_for_psnr(30, lr, seed=<sequence seed>)`` (LR PSNR 30 dB on that sequence;
  the achieved value is stored). LR separation 1.
- HR frames on the paper's grid ``t_a = P·⌊t/P⌋``: ``hr_index = 0, P, 2P, … < T``
  for P = 10 and 20; the last frame is an HR frame only if it falls on the grid
  (T = 41 does for both, so every scored frame lies between two HR frames).
- ``fuse(..., normalize=False)``: training feeds the scenes' own [0, 1]
  intensities to the network without any percentile stretch
  (``training.dataset.make_window``), so this is the input distribution the
  weights learned; ``normalize=True`` would stretch each sequence and clip its
  extreme 0.35 % before the metrics see it.
- Metrics: float mode (no quantisation, data range 1), SSIM with the Gaussian
  window (Wang et al. 2004, ``metrics.ssim(window="gaussian")``), on frames with
  no HR frame (``hr_at_reference`` False), pooled over the sequences of one
  condition; PSNR averages skip +inf frames and count them.
- Attention: EDVR-STF's normalised backward/forward scores (spec ``edvr_stf.md``
  §5) against the offset ``t − a`` from the preceding HR frame, pooled over the
  sequences of one condition; frames whose HR frame before or after is a stand-in
  (past the last HR frame) and NaN scores (normaliser ≤ 0) are left out and
  counted.
- Real radiographs (validation only, never training data):
  ``(raw − dark)/(flat − dark)`` (dead pixels filled with their 3×3 neighbours'
  median), cropped to 132×160, clipped at the 0.35 / 99.65 percentiles of the
  sequence and min-max scaled to [0, 1] (the paper's pre-processing): that is
  the truth, binned as above. All 91 frames (``--quick``: 41); with P = 20 the
  frames after 80 have no HR frame after them and are scored all the same.
- Targets are gates on the synthetic set (issue 5 §4) and reported for the
  radiographs: EDVR-STF ≥ bicubic + 4 dB and ≥ EDVR + 1 dB (PSNR, HR every 10,
  no noise); EDVR-STF's PSNR above both at every condition; ρ_backward ≤ −0.5
  and ρ_forward > 0 at every condition.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats
from tqdm import tqdm

from xfusion_bluesky import __version__
from xfusion_bluesky.fusion import FusionResult, fuse
from xfusion_bluesky.fusion.model import model_id
from xfusion_bluesky.fusion.model.checkpoint import (
    build_from_state_dict,
    extract_state_dict,
)
from xfusion_bluesky.metrics import aad, mean_finite, psnr, ssim
from xfusion_bluesky.synthetic.degradation import (
    add_poisson_noise,
    b0_for_psnr,
    bin_frames,
    lr_psnr,
    normalize_percentile,
    percentile_range,
)
from xfusion_bluesky.synthetic.scene import SCENE_VERSION, XRAY_FAMILIES, generate_scene

REPO = Path(__file__).resolve().parents[1]
RADIOGRAPHS = REPO.parent / "shared" / "data" / "savu_i13_projections"
METHODS = ("edvr_stf", "edvr", "bicubic")
LABELS = {"edvr_stf": "EDVR-STF", "edvr": "EDVR", "bicubic": "bicubic"}
MODEL_FILES = {"edvr_stf": "edvr_stf_small.pth", "edvr": "edvr_small.pth"}
NOISE_DB = (None, 30.0)
HR_EVERY = (10, 20)
#: Held-out scene seeds: training draws scene seeds below 2**31, never these.
SEEDS = (2**31 + 1, 2**31 + 2, 2**31 + 3)
SCALE = 4
LR_SEPARATION = 1
SSIM_WINDOW = "gaussian"
TARGET_BICUBIC_DB = 4.0
TARGET_EDVR_DB = 1.0
TARGET_RHO_BACKWARD = -0.5


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
    """One setting of the table: LR noise level and HR frame spacing."""

    noise_db: float | None
    hr_every: int

    @property
    def label(self) -> str:
        noise = "no noise" if self.noise_db is None else f"LR {self.noise_db:g} dB"
        return f"{noise}, HR every {self.hr_every}"


CONDITIONS = tuple(Condition(n, p) for n in NOISE_DB for p in HR_EVERY)


def synthetic_sequences(size: Size) -> list[Sequence]:
    """Render one held-out sequence per (x-ray family, seed)."""
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
        for family in XRAY_FAMILIES
        for seed in size.seeds
    ]


def flat_field(proj: np.ndarray, dark: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """Return ``(proj − dark)/(flat − dark)``, dead pixels filled from neighbours."""
    gain = flat.astype(np.float64) - dark
    dead = gain <= 0
    corrected = (proj - dark) / np.where(dead, np.nan, gain)
    for y, x in np.argwhere(dead):
        patch = corrected[:, max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2]
        corrected[:, y, x] = np.nanmedian(patch.reshape(len(patch), -1), axis=1)
    return corrected


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
    file = os.path.relpath(path, REPO)
    source = {"file": file, "crop": [height, width], "range": [lo, hi]}
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


def hr_grid(num_frames: int, hr_every: int) -> np.ndarray:
    """Return the paper's HR frame grid ``0, P, 2P, … < T``."""
    return np.arange(0, num_frames, hr_every)


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

    EDVR and bicubic never look at HR frames, so their per-frame scores are
    computed once per (sequence, noise level) and reused for both HR spacings.
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
        hr_index = hr_grid(seq.truth.shape[0], cond.hr_every)
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
        """Return per-frame scores over all frames (and the result for EDVR-STF)."""
        if method == "edvr_stf":
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
        hr_index = hr_grid(seq.truth.shape[0], cond.hr_every)
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
        "condition": {"noise_db": cond.noise_db, "hr_every": cond.hr_every},
        "label": cond.label,
        "lr_noise": [evaluator.lr_info[(s.name, cond.noise_db)] for s in sequences],
        "methods": {
            m: summarise(pooled[m]) | {"per_sequence_psnr_db": per_sequence[m]}
            for m in METHODS
        },
        "attention": attention_summary(attention, cond.hr_every),
    }


def summarise(pooled: dict[str, list[np.ndarray]]) -> dict[str, Any]:
    """Average pooled per-frame scores; PSNR skips +inf frames and counts them."""
    psnr_db, n_inf = mean_finite(np.concatenate(pooled["psnr"]))
    return {
        "psnr_db": psnr_db,
        "psnr_inf_frames": n_inf,
        "ssim": float(np.concatenate(pooled["ssim"]).mean()),
        "aad": float(np.concatenate(pooled["aad"]).mean()),
        "frames": int(sum(v.size for v in pooled["psnr"])),
    }


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Return Spearman's ρ (average ranks for ties); NaN if undefined."""
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.spearmanr(x, y).statistic)


def attention_summary(samples: list[dict[str, Any]], hr_every: int) -> dict[str, Any]:
    """Pool attention samples: ρ against the offset and the mean per offset."""
    offset = np.concatenate([s["offset"] for s in samples])
    backward = np.concatenate([s["backward"] for s in samples])
    forward = np.concatenate([s["forward"] for s in samples])
    profile = {
        int(k): [
            float(backward[offset == k].mean()),
            float(forward[offset == k].mean()),
        ]
        for k in np.unique(offset)
    }
    share = np.concatenate([s["share"] for s in samples])
    families = sorted({s["family"] for s in samples})
    by_family = {}
    for family in families:
        mine = [s for s in samples if s["family"] == family]
        off = np.concatenate([s["offset"] for s in mine])
        by_family[family] = {
            "rho_backward": spearman(
                off, np.concatenate([s["backward"] for s in mine])
            ),
            "rho_forward": spearman(off, np.concatenate([s["forward"] for s in mine])),
            "rho_backward_share": spearman(
                off, np.concatenate([s["share"] for s in mine])
            ),
        }
    return {
        "rho_backward": spearman(offset, backward),
        "rho_forward": spearman(offset, forward),
        "rho_backward_share": spearman(offset, share),
        "by_family": by_family,
        "frames": int(offset.size),
        "nan_frames": int(sum(s["nan_frames"] for s in samples)),
        "mean_by_offset": profile,  # offset -> [backward, forward]
        "paper_offsets": [1, hr_every // 2, hr_every - 1],
    }


def targets(conditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check issue 5 §4's targets on one dataset's conditions."""
    rows = []
    for cond in conditions:
        psnr_db = {m: cond["methods"][m]["psnr_db"] for m in METHODS}
        stf = psnr_db["edvr_stf"]
        c = cond["condition"]
        if c["noise_db"] is None and c["hr_every"] == HR_EVERY[0]:
            rows.append(
                _target(
                    cond,
                    "EDVR-STF − bicubic (dB)",
                    stf - psnr_db["bicubic"],
                    TARGET_BICUBIC_DB,
                    ">=",
                )
            )
            rows.append(
                _target(
                    cond,
                    "EDVR-STF − EDVR (dB)",
                    stf - psnr_db["edvr"],
                    TARGET_EDVR_DB,
                    ">=",
                )
            )
        ahead = stf - max(psnr_db["edvr"], psnr_db["bicubic"])
        rows.append(_target(cond, "EDVR-STF − best other (dB)", ahead, 0.0, ">"))
        attn = cond["attention"]
        rows.append(
            _target(cond, "ρ backward", attn["rho_backward"], TARGET_RHO_BACKWARD, "<=")
        )
        rows.append(_target(cond, "ρ forward", attn["rho_forward"], 0.0, ">"))
    return rows


def _target(
    cond: dict[str, Any], name: str, value: float, threshold: float, op: str
) -> dict[str, Any]:
    """Return one target row; NaN fails."""
    passed = {
        ">=": value >= threshold,
        ">": value > threshold,
        "<=": value <= threshold,
    }[op]
    return {
        "condition": cond["label"],
        "target": name,
        "value": value,
        "threshold": f"{op} {threshold:g}",
        "passed": bool(passed),
    }


def load_models(paths: dict[str, Path]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load each network once from a snapshot of its file; return them and ids.

    The file is read into memory first, so a checkpoint that a running training
    overwrites meanwhile cannot mix the hash of one version with the weights of
    another.
    """
    models, info = {}, {}
    for method, path in paths.items():
        if not path.is_file():
            raise SystemExit(
                f"no {method} weights at {path}: train them (`xfusion-bluesky "
                f"train`) or pass --{'stf' if method == 'edvr_stf' else 'edvr'} PATH"
            )
        blob = path.read_bytes()
        checkpoint = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
        network = build_from_state_dict(extract_state_dict(checkpoint)).eval()
        network.source = str(path)
        models[method] = network
        info[method] = {
            "path": str(path),
            "model_id": model_id(network),
            "file_sha256": hashlib.sha256(blob).hexdigest(),
            "class": type(network).__name__,
            "config": dict(network.config),
            "parameters": sum(p.numel() for p in network.parameters()),
            "iteration": checkpoint.get("iteration"),
            "stage": checkpoint.get("stage"),
        }
    return models, info


def _fmt(value: float | None, digits: int) -> str:
    """Format a number for the table; NaN/None as 'nan'."""
    if value is None or not np.isfinite(value):
        return "nan" if value is None or np.isnan(value) else f"{value}"
    return f"{value:.{digits}f}"


def quality_table(conditions: list[dict[str, Any]]) -> list[str]:
    """Markdown rows: PSNR / SSIM / AAD per condition and method."""
    lines = [
        "| condition | method | PSNR (dB) | SSIM | AAD | Δ PSNR vs bicubic | frames |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for cond in conditions:
        bicubic = cond["methods"]["bicubic"]["psnr_db"]
        for method in METHODS:
            row = cond["methods"][method]
            delta = "" if method == "bicubic" else f"{row['psnr_db'] - bicubic:+.2f}"
            lines.append(
                f"| {cond['label']} | {LABELS[method]} | {_fmt(row['psnr_db'], 2)} "
                f"| {_fmt(row['ssim'], 4)} | {_fmt(row['aad'], 4)} | {delta} "
                f"| {row['frames']} |"
            )
    return lines


def attention_table(conditions: list[dict[str, Any]]) -> list[str]:
    """Markdown rows: Spearman ρ and the mean scores at offsets 1, P/2, P − 1."""
    lines = [
        "| condition | ρ backward | ρ forward | backward at 1 / P/2 / P−1 "
        "| forward at 1 / P/2 / P−1 | frames (NaN left out) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for cond in conditions:
        attn = cond["attention"]
        means = [attn["mean_by_offset"].get(k) for k in attn["paper_offsets"]]
        back = " / ".join(_fmt(m[0] if m else None, 3) for m in means)
        fwd = " / ".join(_fmt(m[1] if m else None, 3) for m in means)
        lines.append(
            f"| {cond['label']} | {_fmt(attn['rho_backward'], 3)} "
            f"| {_fmt(attn['rho_forward'], 3)} | {back} | {fwd} "
            f"| {attn['frames']} ({attn['nan_frames']}) |"
        )
    return lines


def family_table(conditions: list[dict[str, Any]]) -> list[str]:
    """Markdown rows: ρ per scene family, and ρ of the backward share b / (b + f)."""
    families = sorted(
        {f for cond in conditions for f in cond["attention"].get("by_family", {})}
    )
    if len(families) < 2:
        return []
    lines = [
        "| condition | ρ of | " + " | ".join(families) + " | all |",
        "|---|---|" + "---:|" * (len(families) + 1),
    ]
    for cond in conditions:
        attn = cond["attention"]
        for key, name in (
            ("rho_backward", "normalised backward"),
            ("rho_forward", "normalised forward"),
            ("rho_backward_share", "share b / (b + f)"),
        ):
            values = [_fmt(attn["by_family"][f][key], 2) for f in families]
            lines.append(
                f"| {cond['label']} | {name} | "
                + " | ".join(values)
                + f" | {_fmt(attn[key], 2)} |"
            )
    return lines


def target_table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown rows: every target, its value, threshold and PASS/FAIL."""
    lines = [
        "| condition | target | value | needs | result |",
        "|---|---|---:|---|---|",
    ]
    for row in rows:
        verdict = "PASS" if row["passed"] else "FAIL"
        lines.append(
            f"| {row['condition']} | {row['target']} | {_fmt(row['value'], 3)} "
            f"| {row['threshold']} | {verdict} |"
        )
    return lines


def dataset_report(title: str, conditions: list[dict[str, Any]], gate: bool) -> str:
    """Return the markdown section of one dataset."""
    rows = targets(conditions)
    passed = sum(r["passed"] for r in rows)
    kind = "gates (issue 5 §4)" if gate else "reported only, not gates"
    return "\n".join(
        [
            f"### {title}",
            "",
            *quality_table(conditions),
            "",
            *attention_table(conditions),
            "",
            *family_table(conditions),
            "",
            f"Targets, {kind}: {passed}/{len(rows)} pass",
            "",
            *target_table(rows),
            "",
        ]
    )


def _jsonable(value: Any) -> Any:
    """Return ``value`` with NaN/inf as None and numpy scalars as Python ones."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def settings(size: Size) -> dict[str, Any]:
    """Return the protocol settings recorded in the JSON."""
    return {
        "frames": size.frames,
        "hr_shape": [size.height, size.width],
        "lr_shape": [size.height // SCALE, size.width // SCALE],
        "families": list(XRAY_FAMILIES),
        "seeds": list(size.seeds),
        "seed_rule": "scene seeds >= 2**31; training draws them below 2**31",
        "radiograph_frames": size.radiograph_frames,
        "binning": SCALE,
        "noise_db": list(NOISE_DB),
        "hr_every": list(HR_EVERY),
        "hr_grid": "hr_index = 0, P, 2P, ... < T",
        "lr_separation": LR_SEPARATION,
        "normalize": False,
        "metrics": "float mode, data range 1, frames with no HR frame",
        "ssim_window": SSIM_WINDOW,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    parser.add_argument("--stf", type=Path, help="EDVR-STF weights (.pth)")
    parser.add_argument("--edvr", type=Path, help="LR-only EDVR weights (.pth)")
    parser.add_argument("--quick", action="store_true", help="smaller, < 2 min")
    parser.add_argument("--out", type=Path, help="write every number here (JSON)")
    return parser.parse_args(argv)


def json_report(
    args: argparse.Namespace,
    size: Size,
    model_info: dict[str, Any],
    datasets: dict[str, list[Sequence]],
    results: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    """Return every number, setting, seed and model id as one JSON-able dict."""
    report: dict[str, Any] = {
        "script": "benchmarks/quality.py",
        "quick": args.quick,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "versions": {"xfusion_bluesky": __version__, "torch": torch.__version__},
        "settings": settings(size),
        "models": model_info,
        "datasets": {"radiographs": {"skipped": f"{RADIOGRAPHS} missing"}},
    }
    for name, sequences in datasets.items():
        report["datasets"][name] = {
            "sequences": [
                {"name": s.name, "shape": list(s.truth.shape), **s.source}
                for s in sequences
            ],
            "conditions": results[name],
            "targets": targets(results[name]),
            "gate": name == "synthetic",
        }
    return _jsonable(report)


def run(
    evaluator: Evaluator, datasets: dict[str, list[Sequence]]
) -> dict[str, list[dict[str, Any]]]:
    """Evaluate every (dataset, condition), with a progress bar over them."""
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in datasets}
    jobs = [(name, cond) for name in datasets for cond in CONDITIONS]
    for name, cond in tqdm(jobs, desc="conditions", unit="cond", file=sys.stderr):
        results[name].append(evaluate_condition(evaluator, datasets[name], cond))
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the tables, write the JSON."""
    args = parse_args(argv)
    # Errors only: the per-call warnings (pure-PyTorch deform conv, NaN attention
    # counts) would repeat for every fuse() call; the tables count NaN scores.
    logging.basicConfig(
        level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s"
    )
    size = QUICK if args.quick else FULL
    models, model_info = load_models(
        {
            "edvr_stf": args.stf or args.models_dir / MODEL_FILES["edvr_stf"],
            "edvr": args.edvr or args.models_dir / MODEL_FILES["edvr"],
        }
    )
    datasets = {"synthetic": synthetic_sequences(size)}
    radiographs = radiograph_sequences(size, RADIOGRAPHS)
    if radiographs is None:
        print(f"note: {RADIOGRAPHS} not found: real radiographs skipped\n")
    else:
        datasets["radiographs"] = radiographs
    start = time.perf_counter()
    results = run(Evaluator(models), datasets)
    runtime_s = time.perf_counter() - start
    print(f"## Fusion quality (SSIM: Gaussian window; float mode; {runtime_s:.0f} s)\n")
    for name, conditions in results.items():
        print(dataset_report(title(name, size), conditions, gate=name == "synthetic"))
    if args.out:
        report = json_report(args, size, model_info, datasets, results)
        report["runtime_s"] = runtime_s
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


def title(name: str, size: Size) -> str:
    """Return the heading of one dataset's section."""
    if name == "radiographs":
        return "Real radiographs, Diamond I13-2 (validation only, never trained on)"
    sequences = len(XRAY_FAMILIES) * len(size.seeds)
    return (
        f"Synthetic x-ray scenes ({sequences} held-out sequences, {size.frames} "
        f"frames, LR {size.height // SCALE}×{size.width // SCALE} → HR "
        f"{size.height}×{size.width})"
    )


if __name__ == "__main__":
    sys.exit(main())
