"""The figures of the paper's comparisons, drawn by ``xfusion-bluesky evaluate``.

Figs. 5–8, S2 and S5 types from the per-frame result table
(:mod:`xfusion_bluesky.evaluation.tables`), all in one look: method colours, sizes,
PNG settings. The figures of one fused run (the demo's and ``show``'s panel and
attention plot) are in :mod:`xfusion_bluesky.evaluation.panels`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xfusion_bluesky.evaluation.summary import method_label
from xfusion_bluesky.evaluation.tables import METRICS, scored, select


def agg_pyplot():  # type: ignore[no-untyped-def]
    """Import pyplot on the non-interactive backend (no display on beamline hosts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


#: Colour of each method in every figure (names come from the method registry).
METHOD_COLORS = {
    "edvr_stf": "tab:red",
    "edvr": "tab:orange",
    "bicubic": "tab:gray",
    "bayesian": "tab:blue",
}
#: Figure resolution: small PNGs for the repository (≲ 150 kB each).
_DPI = 72


def _color(method: str) -> str:
    return METHOD_COLORS.get(method, "tab:green")


def _save(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` as a PNG and close it."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=_DPI)
    agg_pyplot().close(fig)
    return out


def metric_boxplots(
    path: str | Path,
    table: Mapping[str, np.ndarray],
    mask: np.ndarray,
    *,
    x_column: str,
    x_values: Sequence[Any],
    x_labels: Sequence[str],
    methods: Sequence[str],
    groups: Mapping[str, str],
    xlabel: str,
    title: str,
) -> Path:
    """Box plots of PSNR, SSIM and AAD per method against one condition column.

    The Fig. 5 / 6 / S3 / S4 type: one row per metric, one column per group of
    sequences; at every x value one box per method over the scored frames
    (no HR frame at that instant) of the rows in ``mask``; whiskers 1.5 IQR,
    outliers not drawn. +inf PSNR frames are left out.

    Parameters
    ----------
    path : path
        Output PNG.
    table : mapping of str to ndarray
        Per-frame results (``evaluation.tables``).
    mask : ndarray of bool
        Rows of the sweep to draw.
    x_column : str
        Condition column on the x axis (``noise_db``, ``hr_separation``).
    x_values, x_labels : sequence
        Its values in axis order (None: NaN, e.g. no noise) and their tick labels.
    methods : sequence of str
    groups : mapping of str to str
        Group → column title.
    xlabel, title : str
    """
    plt = agg_pyplot()
    keep = mask & scored(dict(table))
    width = 0.8 / max(len(methods), 1)
    fig, axes = plt.subplots(
        len(METRICS),
        len(groups),
        figsize=(max(3.6 * len(groups) + 0.6, 6.4), 7.4),
        squeeze=False,
        sharex=True,
    )
    for col, (group, group_title) in enumerate(groups.items()):
        in_group = keep & (table["group"] == group)
        for row, (metric, metric_label) in enumerate(METRICS.items()):
            ax = axes[row, col]
            for j, method in enumerate(methods):
                rows = in_group & (table["method"] == method)
                data, positions = [], []
                for i, value in enumerate(x_values):
                    values = table[metric][
                        rows & select(dict(table), **{x_column: value})
                    ]
                    values = values[np.isfinite(values)]
                    if values.size:
                        data.append(values)
                        positions.append(i + (j - (len(methods) - 1) / 2) * width)
                if data:
                    parts = ax.boxplot(
                        data,
                        positions=positions,
                        widths=0.9 * width,
                        patch_artist=True,
                        showfliers=False,
                        manage_ticks=False,
                    )
                    for box in parts["boxes"]:
                        box.set(facecolor=_color(method), alpha=0.7, linewidth=0.6)
                    for median in parts["medians"]:
                        median.set(color="k", linewidth=0.8)
            ax.set_xticks(range(len(x_values)), x_labels, fontsize=8)
            ax.tick_params(labelsize=8)
            ax.grid(axis="y", alpha=0.3)
            if col == 0:
                ax.set_ylabel(metric_label, fontsize=9)
            if row == 0:
                ax.set_title(group_title, fontsize=9)
            if row == len(METRICS) - 1:
                ax.set_xlabel(xlabel, fontsize=9)
    handles = [
        plt.Rectangle((0, 0), 1, 1, facecolor=_color(m), alpha=0.7) for m in methods
    ]
    fig.legend(
        handles,
        [method_label(m) for m in methods],
        loc="lower center",
        ncol=len(methods),
        fontsize=8,
        frameon=False,
    )
    fig.suptitle(title, fontsize=10, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0.04, 1, 0.96))
    return _save(fig, path)


def attention_curves(
    path: str | Path,
    samples: Mapping[str, Mapping[str, np.ndarray]],
    *,
    groups: Mapping[str, str],
    hr_separation: int,
    title: str,
) -> Path:
    """Mean normalised backward / forward attention against the offset (Fig. 7 type).

    Parameters
    ----------
    path : path
    samples : mapping
        Group → ``{"offset", "backward", "forward"}`` arrays (one entry per
        fused frame between two HR frames).
    groups : mapping of str to str
        Group → panel title.
    hr_separation : int
        HR separation P (the x axis runs 1 … P − 1).
    title : str
    """
    plt = agg_pyplot()
    fig, axes = plt.subplots(
        1, len(groups), figsize=(max(3.4 * len(groups) + 0.4, 5.0), 3.4), squeeze=False
    )
    offsets = np.arange(1, hr_separation)
    for ax, (group, group_title) in zip(axes[0], groups.items(), strict=True):
        data = samples.get(group)
        for key, color, label in (
            ("backward", "tab:blue", "backward (HR before)"),
            ("forward", "tab:red", "forward (HR after)"),
        ):
            if data is None or not data["offset"].size:
                continue
            mean, low, high = (np.full(offsets.size, np.nan) for _ in range(3))
            for i, k in enumerate(offsets):
                values = data[key][data["offset"] == k]
                if values.size:
                    mean[i] = values.mean()
                    low[i], high[i] = np.percentile(values, [25, 75])
            ax.plot(offsets, mean, ".-", color=color, label=label)
            ax.fill_between(offsets, low, high, color=color, alpha=0.2, linewidth=0)
        ax.set_title(group_title, fontsize=9)
        ax.set_xlabel("frames after the preceding HR frame", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("normalised attention score", fontsize=8)
    axes[0, 0].legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=10, x=0.02, ha="left")
    fig.tight_layout()
    return _save(fig, path)


def attention_histograms(
    path: str | Path,
    samples: Mapping[str, Mapping[str, np.ndarray]],
    *,
    groups: Mapping[str, str],
    hr_separation: int,
    title: str,
) -> Path:
    """2-D histograms of the normalised scores against the offset (Fig. S5 type).

    Each offset's column is normalised to sum to 1, so columns with few frames
    read like the others. Rows: backward, forward; columns: groups. The score
    axis spans the 1st to 99th percentile of all scores drawn (the paper's
    Fig. S5 spans 0 to 1; scores of a small model may vary far less).
    """
    plt = agg_pyplot()
    fig, axes = plt.subplots(
        2,
        len(groups),
        figsize=(max(3.2 * len(groups) + 1.2, 5.6), 5.6),
        squeeze=False,
        layout="constrained",
    )
    edges_x = np.arange(0.5, hr_separation, 1.0)
    every = [d[k] for d in samples.values() for k in ("backward", "forward")]
    pooled = np.concatenate(every) if every else np.zeros(0)
    low, high = np.percentile(pooled, [1, 99]) if pooled.size else (0.0, 1.0)
    pad = max(0.1 * (high - low), 1e-3)
    edges_y = np.linspace(low - pad, high + pad, 41)
    image = None
    for col, (group, group_title) in enumerate(groups.items()):
        data = samples.get(group)
        for row, key in enumerate(("backward", "forward")):
            ax = axes[row, col]
            if data is not None and data["offset"].size:
                scores = np.clip(data[key], edges_y[0], edges_y[-1])
                counts, _, _ = np.histogram2d(
                    data["offset"], scores, [edges_x, edges_y]
                )
                share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
                image = ax.pcolormesh(
                    edges_x, edges_y, share.T, cmap="viridis", vmin=0, vmax=0.5
                )
            ax.set_title(f"{group_title}: {key}".replace("\n", " "), fontsize=8)
            ax.tick_params(labelsize=8)
            if row == 1:
                ax.set_xlabel("frames after the preceding HR frame", fontsize=8)
            if col == 0:
                ax.set_ylabel("normalised score", fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="share of the offset's frames")
    fig.suptitle(title, fontsize=10, x=0.02, ha="left")
    return _save(fig, path)


def timing_bars(
    path: str | Path,
    timings: Mapping[str, Mapping[str, Any]],
    *,
    paper: Mapping[str, float],
    title: str,
) -> Path:
    """Wall time per frame per method, log scale, with the paper's times (Fig. 8)."""
    plt = agg_pyplot()
    methods = list(timings)
    fig, ax = plt.subplots(figsize=(6.4, 0.5 * len(methods) + 1.4))
    seconds = [timings[m]["seconds_per_frame"] for m in methods]
    y = np.arange(len(methods))
    ax.barh(y, seconds, color=[_color(m) for m in methods], alpha=0.8, label="here")
    marked = [(i, paper[m]) for i, m in enumerate(methods) if m in paper]
    if marked:
        ax.plot(
            [v for _, v in marked],
            [i for i, _ in marked],
            "k|",
            markersize=18,
            markeredgewidth=2,
            label="paper",
        )
    for i, value in enumerate(seconds):
        ax.text(value, i, f" {value:.3g} s", va="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_yticks(y, [method_label(m) for m in methods])
    ax.set_xlabel("seconds per fused frame (median of runs)", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def cluster_fraction_plot(
    path: str | Path,
    curves: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]],
    *,
    groups: Mapping[str, str],
    title: str,
) -> Path:
    """Bayesian PSNR against the cluster-number fraction (Fig. S2 type).

    Parameters
    ----------
    curves : mapping
        Panel title (a noise level) → group → ``(fractions, mean PSNR)``.
    """
    plt = agg_pyplot()
    fig, axes = plt.subplots(
        1, len(curves), figsize=(max(3.8 * len(curves) + 0.4, 5.0), 3.8), squeeze=False
    )
    for ax, (panel, by_group) in zip(axes[0], curves.items(), strict=True):
        ticks: set[float] = set()
        for group, group_title in groups.items():
            if group in by_group:
                fractions, values = by_group[group]
                ax.plot(fractions, values, "o-", label=group_title.replace("\n", " "))
                ticks.update(float(f) for f in fractions)
        ax.axvline(0.05, color="k", linewidth=0.8, linestyle=":")
        ax.set_xscale("log")
        ax.set_xticks(sorted(ticks), [f"{f:g}" for f in sorted(ticks)])
        ax.minorticks_off()
        ax.set_xlabel("cluster-number fraction (paper: 0.05)", fontsize=8)
        ax.set_title(panel, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("Bayesian PSNR (dB)", fontsize=8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return _save(fig, path)


# -- a derived run's frame panel and attention over time (``show``, ``demo``) ---------
