"""Figures a person would rather look at than read: fusion panels, attention plots."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from xfusion_bluesky.structures import FusionResult


def _pyplot():  # type: ignore[no-untyped-def]
    """Import pyplot on the non-interactive backend (no display on beamline hosts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def fusion_panel(
    path: str | Path,
    *,
    ref_index: int,
    lr_frames: np.ndarray,
    results: Mapping[str, FusionResult],
    hr_frames: np.ndarray,
    truth: np.ndarray | None = None,
    title: str = "",
) -> Path:
    """Write a PNG panel of one reference frame and the attention scores over time.

    Top row: LR (upsampled) | each method's fused frame | truth | HR before; below,
    the first result's normalised attention scores against time (paper Figs. 2, 7).

    Parameters
    ----------
    path : path
        Output PNG.
    ref_index : int
        The reference frame to show.
    lr_frames : ndarray, (T, h, w)
    results : mapping of str to FusionResult
        Method label → result; frames (T, 4h, 4w).
    hr_frames : ndarray, (K, 4h, 4w)
        The acquired HR frames; the panel shows the one used as "before".
    truth : ndarray, (T, 4h, 4w), optional
        Ground truth (simulations only).
    title : str
        Figure title.
    """
    plt = _pyplot()
    first = next(iter(results.values()))
    before = int(first.hr_before[ref_index])
    images = [("LR (nearest ×4)", np.kron(lr_frames[ref_index], np.ones((4, 4))))]
    images += [(label, r.frames[ref_index]) for label, r in results.items()]
    if truth is not None:
        images.append(("truth", truth[ref_index]))
    acquired_at = first.params.get("hr_index", [before])[before]
    images.append((f"HR before (at frame {acquired_at})", hr_frames[before]))
    lo, hi = np.percentile(np.stack([im for _, im in images]), [0.5, 99.5])
    fig = plt.figure(figsize=(3.2 * len(images), 6.2))
    grid = fig.add_gridspec(2, len(images), height_ratios=[1.4, 1])
    for col, (label, image) in enumerate(images):
        ax = fig.add_subplot(grid[0, col])
        ax.imshow(image, cmap="gray", vmin=lo, vmax=hi)
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    attention_plot(ax, first)
    ax.axvline(ref_index, color="k", linewidth=0.8, linestyle=":")
    fig.suptitle(title or f"reference frame {ref_index}")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def attention_plot(ax, result: FusionResult) -> None:  # type: ignore[no-untyped-def]
    """Draw normalised backward/forward attention against the reference frame index."""
    t = np.arange(result.frames.shape[0])
    ax.plot(t, result.normalized_backward_attention, ".-", label="backward (HR before)")
    ax.plot(t, result.normalized_forward_attention, ".-", label="forward (HR after)")
    for index in result.params.get("hr_index", []):  # LR frames with an HR frame
        ax.axvline(index, color="gray", alpha=0.3)
    ax.set(xlabel="reference frame", ylabel="normalised attention score")
    if np.isfinite(result.normalized_backward_attention).any():
        ax.legend(loc="upper right", fontsize=8)
    else:
        ax.text(
            0.5,
            0.5,
            f"{result.method}: no attention scores",
            ha="center",
            transform=ax.transAxes,
        )
