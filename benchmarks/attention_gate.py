"""Why the attention scores barely move: the TSA temporal gate of a trained model.

EDVR-STF's attention score (spec ``edvr_stf.md`` §5) is the spatial mean of the
pre-sigmoid correlation ``Σ_c temporal_attn2(A_i) · temporal_attn1(A_ref)`` that
TSA feeds to a sigmoid to weight each aligned frame. This script hooks
``TSAFusion`` of a trained model on the same held-out synthetic sequences as
``benchmarks/quality.py`` (no noise, HR separation 10) and prints, per scene
family:

- the mean correlation of each frame slot (LR t−1, t, t+1, HR before, HR after);
- the share of HR-slot pixels where the gate ``sigmoid(corr)`` exceeds 0.99, i.e.
  where the network lets the HR frame through whatever its content;
- the normalised backward score one and nine frames after the HR frame
  (the signal ρ_backward looks for: the paper's model fell from 1 to ~0.3);
- the drift of the raw backward score at the HR instants over the sequence
  (how much the reference frame's own content moves the score).

Then one line on whether the gate looks at content at all: on held-out training
windows (LR separation 1), one HR frame is swapped for the same instant of
another scene (``WindowSampling.p_hr_decoy``), and the script prints how often
the foreign frame scores lower than the true one and the mean ratio of their
raw scores.

When the gate is saturated the score follows the magnitude of the features more
than their agreement, the within-group fall is a fraction of a percent, and the
drift decides the sign of ρ.

    python benchmarks/attention_gate.py               # models/edvr_stf_small.pth
    python benchmarks/attention_gate.py --stf PATH --quick
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from xfusion_bluesky.fusion import fuse
from xfusion_bluesky.fusion.model.loader import load_network
from xfusion_bluesky.fusion.model.tsa import TSAFusion
from xfusion_bluesky.synthetic.degradation import bin_frames
from xfusion_bluesky.synthetic.scene import XRAY_FAMILIES, generate_scene
from xfusion_bluesky.training.dataset import WindowSampling, make_window
from xfusion_bluesky.training.trainer import VALIDATION_SEED

REPO = Path(__file__).resolve().parents[1]
#: The held-out seeds of benchmarks/quality.py (training never draws ≥ 2**31).
SEEDS = (2**31 + 1, 2**31 + 2, 2**31 + 3)
HR_SEPARATION = 10
SLOTS = ("LR t-1", "LR t", "LR t+1", "HR before", "HR after")
SATURATED = 0.99


def capture_correlations(model: torch.nn.Module) -> tuple[list[np.ndarray], object]:
    """Hook ``model``'s TSA and collect each call's correlation maps (b, T, h, w)."""
    maps: list[np.ndarray] = []

    def hook(module: TSAFusion, inputs: tuple[torch.Tensor], _output: object) -> None:
        aligned = inputs[0]
        b, t, c, h, w = aligned.shape
        emb_ref = module.temporal_attn1(aligned[:, module.ref_index])
        emb = module.temporal_attn2(aligned.reshape(b * t, c, h, w))
        corr = (emb.view(b, t, c, h, w) * emb_ref.unsqueeze(1)).sum(dim=2)
        maps.append(corr.numpy())

    tsa = next(m for m in model.modules() if isinstance(m, TSAFusion))
    return maps, tsa.register_forward_hook(hook)


def family_row(model: torch.nn.Module, family: str, size: tuple[int, int, int], seeds):
    """Fuse ``family``'s held-out sequences and summarise the gate and the scores."""
    frames, height, width = size
    hr_index = list(range(0, frames, HR_SEPARATION))
    maps, handle = capture_correlations(model)
    offsets, backward, drift = [], [], []
    try:
        for seed in seeds:
            truth = generate_scene(
                family, num_frames=frames, height=height, width=width, seed=seed
            )
            result = fuse(
                bin_frames(truth, 4),
                truth[hr_index],
                hr_index,
                model=model,
                normalize=False,
                progress=False,
            )
            t = np.arange(frames)
            scored = (t % HR_SEPARATION != 0) & (t < hr_index[-1])
            offsets += list((t % HR_SEPARATION)[scored])
            backward += list(result.normalized_backward_attention[scored])
            at_hr = result.backward_attention[hr_index]
            drift.append((at_hr.max() - at_hr.min()) / abs(at_hr.mean()))
    finally:
        handle.remove()
    corr = np.concatenate(maps)  # (frames fused, T, h, w)
    offsets_a, backward_a = np.asarray(offsets), np.asarray(backward)
    return {
        "slot_mean": corr.mean(axis=(0, 2, 3)),
        "saturated": float((1 / (1 + np.exp(-corr[:, 3:])) > SATURATED).mean()),
        "b1": float(backward_a[offsets_a == 1].mean()),
        "b9": float(backward_a[offsets_a == HR_SEPARATION - 1].mean()),
        "drift": float(np.mean(drift)),
        "rho": float(stats.spearmanr(offsets_a, backward_a)[0]),
    }


@torch.inference_mode()
def decoy_scores(model: torch.nn.Module, windows: int) -> tuple[float, float]:
    """Return (share of windows where a foreign HR frame scores lower, mean ratio)."""
    true = WindowSampling(
        families=XRAY_FAMILIES, lr_patch=24, max_lr_separation=1, seed=VALIDATION_SEED
    )
    foreign = dataclasses.replace(true, p_hr_decoy=1.0)
    lower, ratios = [], []
    for index in range(windows):
        a, b = make_window(index, true), make_window(index, foreign)
        slot = 3 if not torch.equal(a.hr[0], b.hr[0]) else 4
        score_true = model(a.lr[None], a.hr[None]).attention[0, slot].item()
        score_foreign = model(b.lr[None], b.hr[None]).attention[0, slot].item()
        lower.append(score_foreign < score_true)
        ratios.append(score_foreign / score_true)
    return float(np.mean(lower)), float(np.mean(ratios))


def main(argv: list[str] | None = None) -> int:
    """Print the gate table for one EDVR-STF checkpoint."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--stf", type=Path, default=REPO / "models" / "edvr_stf_small.pth"
    )
    parser.add_argument("--quick", action="store_true", help="one seed, 64×96 frames")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_network("edvr_stf", args.stf).network
    size, seeds = ((41, 64, 96), SEEDS[:1]) if args.quick else ((41, 128, 192), SEEDS)

    print(
        f"model {args.stf}  frames {size}  seeds {len(seeds)}  "
        f"HR separation {HR_SEPARATION}"
    )
    print(
        f"{'family':24s} "
        + " ".join(f"{s:>9s}" for s in SLOTS)
        + f" {'σ>0.99':>7s} {'b@1':>6s} {'b@9':>6s} {'drift':>6s} {'ρ_b':>6s}"
    )
    for family in XRAY_FAMILIES:
        row = family_row(model, family, size, seeds)
        print(
            f"{family:24s} "
            + " ".join(f"{v:9.3g}" for v in row["slot_mean"])
            + f" {row['saturated']:7.1%} {row['b1']:6.3f} {row['b9']:6.3f}"
            f" {row['drift']:6.1%} {row['rho']:+6.2f}"
        )
    lower, ratio = decoy_scores(model.eval(), 8 if args.quick else 48)
    print(
        f"foreign HR frame (another scene) scores lower than the true one in "
        f"{lower:.0%} of windows; mean raw-score ratio foreign/true {ratio:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
