"""Which figures one evaluation draws: file names, titles and the rows of each.

:func:`draw_figures` picks, from the per-frame table, the sweep plan and the
summary, the data of every comparison figure this run has data for and hands
it to :mod:`xfusion_bluesky.evaluation.figures`, which draws it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xfusion_bluesky.evaluation import figures
from xfusion_bluesky.evaluation.summary import SYNTHETIC, attention_samples, noise_label
from xfusion_bluesky.evaluation.sweeps import HR_ENDS, SweepPlan
from xfusion_bluesky.evaluation.tables import Table, select
from xfusion_bluesky.evaluation.timing import PAPER_SECONDS_PER_FRAME

__all__ = ["draw_figures"]

#: File name stem of the HR separation figure at each LR separation.
_HR_FIGURE = {1: "fig6", 2: "figS3", 3: "figS4"}


def draw_figures(
    out: Path,
    table: Table,
    plan: SweepPlan,
    summary: Mapping[str, Any],
    *,
    methods: tuple[str, ...],
    groups: dict[str, str],
    timing_lr_shape: tuple[int, int] | None,
) -> dict[str, str]:
    """Draw every figure this run has data for.

    Parameters
    ----------
    out : Path
        Folder the PNG files go to.
    table : Table
        Per-frame results (``results.csv``'s rows).
    plan : SweepPlan
        The sweeps the table holds.
    summary : mapping
        :func:`~xfusion_bluesky.evaluation.summary.summarise`'s content plus
        ``"timing"`` (method → timing, empty when not timed).
    methods : tuple of str
        Methods compared, in legend order.
    groups : dict
        Group → figure column title, in column order.
    timing_lr_shape : (int, int) or None
        LR frame size the methods were timed at.

    Returns
    -------
    dict
        Figure key → file name under ``out``, in drawing order.
    """
    drawn: dict[str, str] = {}
    no_k = select(table, cluster_fraction=None)
    if len(plan.noise_db) > 1:
        drawn["noise"] = _noise_figure(
            out, table, no_k, plan, methods=methods, groups=groups
        )
    for sep in plan.lr_separations:
        drawn[f"hr_sep{sep}"] = _hr_figure(
            out, table, no_k, plan, sep, methods=methods, groups=groups
        )
    if "edvr_stf" in methods:
        drawn |= _attention_figures(out, table, plan, groups)
    if summary.get("timing"):
        drawn["timing"] = _timing_figure(out, summary["timing"], timing_lr_shape)
    if summary["clusters"]:
        drawn["clusters"] = _cluster_figure(out, summary["clusters"], plan, groups)
    return drawn


def _noise_figure(
    out: Path,
    table: Table,
    no_k: NDArray[np.bool_],
    plan: SweepPlan,
    *,
    methods: tuple[str, ...],
    groups: dict[str, str],
) -> str:
    """Fig. 5 type: metrics against LR noise at the base HR and LR separations."""
    mask = no_k & select(
        table,
        hr_separation=plan.base_hr_separation,
        lr_separation=plan.base_lr_separation,
    )
    figures.metric_boxplots(
        out / "fig5_noise.png",
        table,
        mask,
        x_column="noise_db",
        x_values=plan.noise_db,
        x_labels=[noise_label(n).replace(" dB", "") for n in plan.noise_db],
        methods=methods,
        groups=groups,
        xlabel="LR image PSNR (dB)",
        title="Fig. 5 type: against LR noise (HR separation "
        f"{plan.base_hr_separation}, "
        f"s = {plan.base_lr_separation})",
    )
    return "fig5_noise.png"


def _hr_figure(
    out: Path,
    table: Table,
    no_k: NDArray[np.bool_],
    plan: SweepPlan,
    sep: int,
    *,
    methods: tuple[str, ...],
    groups: dict[str, str],
) -> str:
    """Fig. 6, S3, S4 type: metrics against HR separation at LR separation ``sep``."""
    stem = _HR_FIGURE.get(sep, "fig6")
    name = f"{stem}_hr_separation_s{sep}.png"
    figures.metric_boxplots(
        out / name,
        table,
        no_k & select(table, noise_db=None, lr_separation=sep),
        x_column="hr_separation",
        x_values=plan.hr_separations,
        x_labels=["ends" if p == HR_ENDS else str(p) for p in plan.hr_separations],
        methods=methods,
        groups=groups,
        xlabel="HR separation (LR frame periods)",
        title=f"{_HR_FIGURE.get(sep, 'Fig. 6').replace('fig', 'Fig. ')} type: against "
        f"HR separation (no noise, LR separation s = {sep})",
    )
    return name


def _attention_figures(
    out: Path, table: Table, plan: SweepPlan, groups: dict[str, str]
) -> dict[str, str]:
    """Figs. 7 and S5 type: EDVR-STF's normalised attention between HR frames."""
    samples = {g: attention_samples(table, plan, g) for g in groups}
    title = (
        "EDVR-STF normalised attention, HR separation "
        f"{plan.base_hr_separation}, no noise "
        "(mean, 25–75 % band)"
    )
    drawn = {}
    for key, draw, name in (
        ("attention", figures.attention_curves, "fig7_attention.png"),
        ("attention_hist", figures.attention_histograms, "figS5_attention_hist.png"),
    ):
        draw(
            out / name,
            samples,
            groups=groups,
            hr_separation=plan.base_hr_separation,
            title=title,
        )
        drawn[key] = name
    return drawn


def _timing_figure(
    out: Path, timing: Mapping[str, Mapping[str, Any]], lr_shape: tuple[int, int] | None
) -> str:
    """Fig. 8 type: time per fused frame of every method beside the paper's."""
    h, w = lr_shape or (0, 0)
    figures.timing_bars(
        out / "fig8_timing.png",
        timing,
        paper=PAPER_SECONDS_PER_FRAME,
        title=f"Fig. 8 type: LR {h}×{w} → HR {4 * h}×{4 * w}, "
        f"{next(iter(timing.values()))['device']}",
    )
    return "fig8_timing.png"


def _cluster_figure(
    out: Path,
    clusters: Sequence[Mapping[str, Any]],
    plan: SweepPlan,
    groups: dict[str, str],
) -> str:
    """Fig. S2 type: Bayesian PSNR against the cluster fraction, per LR noise."""
    curves: dict[str, dict[str, Any]] = {}
    for row in clusters:
        panel = f"LR {noise_label(row['noise_db'])}"
        group = curves.setdefault(panel, {}).setdefault(row["group"], ([], []))
        group[0].append(row["cluster_fraction"])
        group[1].append(row["psnr_db"])
    figures.cluster_fraction_plot(
        out / "figS2_clusters.png",
        {
            p: {g: (np.array(f), np.array(v)) for g, (f, v) in by.items()}
            for p, by in curves.items()
        },
        groups=groups | {SYNTHETIC: "all synthetic"},
        title=f"Fig. S2 type: Bayesian PSNR (HR separation {plan.base_hr_separation})",
    )
    return "figS2_clusters.png"
