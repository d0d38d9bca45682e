"""Figures of one fused run: the frame panel and the attention plot over time.

``xfusion-bluesky show`` and ``make demo`` draw these from a derived run (the
paper's Figs. 2 and 7 for a single burst): UHS frame upsampled | fused | nearest
HS frame, and the raw and normalised attention scores against time with the HS
frame instants marked.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xfusion_bluesky.evaluation.figures import agg_pyplot
from xfusion_bluesky.structures import AttentionSeries


def draw_attention_series(
    raw_ax: Any,
    normalized_ax: Any,
    series: AttentionSeries,
    *,
    ref_time_us: float | None = None,
) -> None:
    """Draw raw (``raw_ax``) and normalised (``normalized_ax``) scores against time.

    HS frame instants are grey lines, the shown frame (``ref_time_us``) a dotted
    black one (paper Figs. 2 and 7). A method without scores says so in the plot.
    """
    for ax, (backward, forward), ylabel in (
        (raw_ax, (series.backward, series.forward), "raw TSA score"),
        (
            normalized_ax,
            (series.normalized_backward, series.normalized_forward),
            "normalised score",
        ),
    ):
        ax.plot(series.times_us, backward, ".-", ms=3, label="backward (HS before)")
        ax.plot(series.times_us, forward, ".-", ms=3, label="forward (HS after)")
        for when in series.hr_times_us:
            ax.axvline(when, color="gray", alpha=0.35, linewidth=0.8)
        if ref_time_us is not None:
            ax.axvline(ref_time_us, color="k", linewidth=0.8, linestyle=":")
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if np.isfinite(backward).any() or np.isfinite(forward).any():
            ax.legend(
                loc="upper left",
                bbox_to_anchor=(1.005, 1.0),
                borderaxespad=0.0,
                fontsize=7,
                frameon=False,
            )
        else:
            ax.text(
                0.5,
                0.5,
                f"{series.label or 'this method'}: no attention scores",
                ha="center",
                va="center",
                transform=ax.transAxes,
                fontsize=8,
            )
    normalized_ax.set_xlabel("time after the trigger (µs); grey: HS frames", fontsize=8)


def attention_figure(
    path: str | Path,
    series: AttentionSeries,
    *,
    ref_time_us: float | None = None,
    title: str = "",
) -> Path:
    """Write a PNG of raw and normalised attention scores over time (Fig. 7 type).

    Parameters
    ----------
    path : path
        Output PNG.
    series : AttentionSeries
        One burst of a derived run.
    ref_time_us : float, optional
        A frame to mark.
    title : str
        Figure title.

    Returns
    -------
    Path
    """
    plt = agg_pyplot()
    fig, (raw_ax, normalized_ax) = plt.subplots(
        2, 1, figsize=(8.0, 4.6), sharex=True, layout="constrained"
    )
    draw_attention_series(raw_ax, normalized_ax, series, ref_time_us=ref_time_us)
    fig.suptitle(title or f"{series.label} attention scores", fontsize=10)
    return _save_png(fig, path, dpi=90)


def frame_panel(
    path: str | Path,
    images: Sequence[tuple[str, np.ndarray]],
    *,
    series: AttentionSeries | None = None,
    ref_time_us: float | None = None,
    title: str = "",
) -> Path:
    """Write a PNG: frames side by side over the attention scores (Figs. 2 and 7).

    Parameters
    ----------
    path : path
        Output PNG.
    images : sequence of (str, ndarray (H, W))
        Label and frame, left to right (e.g. UHS upsampled | fused | nearest
        HS), on one intensity scale: shown with one shared grey range.
    series : AttentionSeries, optional
        Scores drawn below the frames (raw, then normalised).
    ref_time_us : float, optional
        The shown frame's time, marked in the score plots.
    title : str
        Figure title.

    Returns
    -------
    Path
    """
    plt = agg_pyplot()
    columns = len(images)
    height, width = np.asarray(images[0][1]).shape
    image_h = 2.9 * height / width
    rows = [image_h] + ([1.15, 1.15] if series is not None else [])
    fig = plt.figure(
        figsize=(max(2.9 * columns, 7.0), sum(rows) + 0.9), layout="constrained"
    )
    grid = fig.add_gridspec(len(rows), columns, height_ratios=rows)
    stack = np.stack([np.asarray(image, dtype=np.float64) for _, image in images])
    lo, hi = np.percentile(stack[np.isfinite(stack)], [0.5, 99.5])
    for col, (label, image) in enumerate(images):
        ax = fig.add_subplot(grid[0, col])
        ax.imshow(image, cmap="gray", vmin=lo, vmax=hi)
        ax.set_title(label, fontsize=8)
        ax.axis("off")
    if series is not None:
        raw_ax = fig.add_subplot(grid[1, :])
        normalized_ax = fig.add_subplot(grid[2, :], sharex=raw_ax)
        raw_ax.tick_params(labelbottom=False)
        draw_attention_series(raw_ax, normalized_ax, series, ref_time_us=ref_time_us)
    fig.suptitle(title, fontsize=10)
    return _save_png(fig, path, dpi=80)


def _save_png(fig: Any, path: str | Path, *, dpi: int) -> Path:
    """Write ``fig`` to ``path`` (folders made) and close it."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    agg_pyplot().close(fig)
    return out
