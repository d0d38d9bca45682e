"""The report's per-sweep sections: markdown tables of the pooled numbers.

One function per comparison (LR noise, HR and LR separation, attention, speed,
cluster number), each returning the section's lines from ``summary.json``'s
content; :func:`~xfusion_bluesky.evaluation.report.write_report` puts them
together with the setup and the findings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from xfusion_bluesky.evaluation.datasets import CASES
from xfusion_bluesky.evaluation.summary import (
    PAPER_ATTENTION,
    SYNTHETIC,
    hr_label,
    method_label,
    noise_label,
)
from xfusion_bluesky.evaluation.timing import PAPER_SECONDS_PER_FRAME
from xfusion_bluesky.fusion.baselines.clustering import num_clusters
from xfusion_bluesky.fusion.methods import method_spec

__all__ = [
    "attention_section",
    "clusters_section",
    "group_title",
    "hr_section",
    "markdown_table",
    "noise_section",
    "timing_section",
]


def group_title(group: str) -> str:
    """Return a group's name in the report: ``"friction_stir (case 2, slow)"``."""
    if group == SYNTHETIC:
        return "all synthetic"
    case = CASES.get(group)
    return f"{group} ({case})" if case else group


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def _find(rows: Sequence[Mapping[str, Any]], **where: Any) -> Mapping[str, Any] | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in where.items())), None)


def _cells(
    rows: Sequence[Mapping[str, Any]],
    methods: Sequence[str],
    full: bool,
    **where: Any,
) -> list[str]:
    """Table cells per method: PSNR (and SSIM / AAD when ``full``)."""
    cells = []
    for method in methods:
        row = _find(rows, method=method, **where)
        if row is None or not row["frames"]:
            cells.append("–")
        elif full:
            cells.append(
                f"{_fmt(row['psnr_db'])} / {_fmt(row['ssim'], 3)} / "
                f"{_fmt(row['aad_8bit'])}"
            )
        else:
            cells.append(_fmt(row["psnr_db"]))
    return cells


def markdown_table(
    header: Sequence[str],
    lines: Sequence[Sequence[str]],
) -> list[str]:
    """Return a markdown table: left-aligned first column, the rest right-aligned."""
    out = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return out


def noise_section(
    summary: Mapping[str, Any], methods: Sequence[str], fig: str
) -> list[str]:
    """Return the LR noise section (Fig. 5): pooled and per-group tables, figure."""
    rows = summary["noise"]
    levels = list(dict.fromkeys(r["noise_db"] for r in rows))
    groups = list(dict.fromkeys(r["group"] for r in rows))
    pooled = SYNTHETIC if SYNTHETIC in groups else groups[0]
    lines = [
        "## LR noise (Fig. 5 type)",
        "",
        f"PSNR (dB) / SSIM / AAD (8-bit) per method, {group_title(pooled)}, mean over "
        "frames without an HR frame:",
        "",
        *markdown_table(
            ["LR image PSNR", *(method_label(m) for m in methods)],
            [
                [noise_label(n), *_cells(rows, methods, True, group=pooled, noise_db=n)]
                for n in levels
            ],
        ),
        "",
    ]
    others = [g for g in groups if g != pooled]
    if others:
        per_group = [
            [
                group_title(g),
                noise_label(n),
                *_cells(rows, methods, False, group=g, noise_db=n),
            ]
            for g in others
            for n in levels
        ]
        header = ["group", "LR image PSNR", *(method_label(m) for m in methods)]
        lines += ["PSNR (dB) per group:", "", *markdown_table(header, per_group), ""]
    return [*lines, f"![PSNR, SSIM, AAD against LR noise]({fig})", ""]


def hr_section(
    summary: Mapping[str, Any], methods: Sequence[str], figures: Mapping[str, str]
) -> list[str]:
    """Return the HR and LR separation section (Figs. 6, S3, S4): PSNR table, figures.

    Methods that honour the LR separation get one PSNR per separation in a cell
    (``a / b / c``); the others one.
    """
    rows = summary["hr_separation"]
    groups = list(dict.fromkeys(r["group"] for r in rows))
    seps = list(dict.fromkeys(r["lr_separation"] for r in rows))
    spacings = list(dict.fromkeys(r["hr_separation"] for r in rows))
    lines = [
        "## HR separation and LR separation (Figs. 6, S3, S4 type)",
        "",
        "PSNR (dB) without noise, at LR separation s = "
        + " / ".join(str(s) for s in seps)
        + " (bicubic and the Bayesian fusion do not depend on s):",
        "",
    ]
    table_rows = []
    for group in groups:
        for spacing in spacings:
            per_sep = [
                _cells(
                    rows,
                    methods,
                    False,
                    group=group,
                    lr_separation=s,
                    hr_separation=spacing,
                )
                for s in seps
            ]
            cells = [
                " / ".join(c[i] for c in per_sep)
                if method_spec(m).uses_lr_separation
                else per_sep[0][i]
                for i, m in enumerate(methods)
            ]
            table_rows.append([group_title(group), hr_label(spacing), *cells])
    header = ["group", "HR separation", *(method_label(m) for m in methods)]
    lines += markdown_table(header, table_rows)
    lines.append("")
    for sep in seps:
        key = f"hr_sep{sep}"
        if key in figures:
            lines += [
                f"![metrics against HR separation, s = {sep}]({figures[key]})",
                "",
            ]
    return lines


def attention_section(
    summary: Mapping[str, Any], settings: Mapping[str, Any], figures: Mapping[str, str]
) -> list[str]:
    """Return the attention section (Figs. 7, S5): scores per offset, the paper's."""
    hr_separation = settings["plan"]["base_hr_separation"]
    picks = [1, hr_separation // 2, hr_separation - 1]
    lines = [
        "## Attention scores (Figs. 7, S5 type)",
        "",
        f"EDVR-STF, no noise, HR separation {hr_separation}, s = "
        f"{settings['plan']['base_lr_separation']}: normalised scores (divided by "
        "the backward score at the preceding HR frame's own instant, paper §7.1.5) "
        f"at {picks[0]} / {picks[1]} / {picks[2]} frames after the HR frame:",
        "",
    ]
    table_rows = []
    for row in summary["attention"]:
        means = {int(k): v for k, v in row["mean_by_offset"].items()}
        back = " / ".join(_fmt(means[k][0]) if k in means else "–" for k in picks)
        fwd = " / ".join(_fmt(means[k][1]) if k in means else "–" for k in picks)
        table_rows.append(
            [
                group_title(row["group"]),
                back,
                fwd,
                _fmt(row["rho_backward"]),
                _fmt(row["rho_forward"]),
                str(row["frames"]),
            ]
        )
    for case, values in PAPER_ATTENTION.items():
        table_rows.append(
            [
                f"paper, {case}",
                " / ".join(f"{v:.2f}" for v in values["backward"]),
                " / ".join(f"{v:.2f}" for v in values["forward"]),
                "",
                "",
                "",
            ]
        )
    lines += markdown_table(
        ["group", "backward", "forward", "ρ backward", "ρ forward", "frames"],
        table_rows,
    )
    lines.append("")
    for key, alt in (
        ("attention", "mean curves"),
        ("attention_hist", "2-D histograms"),
    ):
        if key in figures:
            lines += [f"![attention, {alt}]({figures[key]})", ""]
    return lines


def timing_section(summary: Mapping[str, Any], figures: Mapping[str, str]) -> list[str]:
    """Return the speed section (Fig. 8); empty when nothing was timed."""
    timing = summary.get("timing") or {}
    if not timing:
        return []
    any_row = next(iter(timing.values()))
    h, w = any_row["lr_shape"]
    lines = [
        "## Speed (Fig. 8 type)",
        "",
        f"Wall time per output frame at LR {h}×{w} → HR {4 * h}×{4 * w}, median of "
        f"{len(any_row['runs'])} runs, on this machine ({any_row['device']}, "
        f"{any_row['threads']} thread(s)); the paper's times are EDVR-STF on one "
        "A100, Bayesian and bicubic on a CPU.",
        "",
    ]
    table_rows = []
    for method, row in timing.items():
        paper = PAPER_SECONDS_PER_FRAME.get(method)
        table_rows.append(
            [
                method_label(method),
                f"{row['seconds_per_frame']:.4g}",
                str(row["frames"]),
                "–" if paper is None else f"{paper:g}",
                "–" if paper is None else f"{row['seconds_per_frame'] / paper:.3g}",
            ]
        )
    lines += markdown_table(
        ["method", "s / frame", "frames per run", "paper s / frame", "× paper"],
        table_rows,
    )
    lines.append("")
    if "timing" in figures:
        lines += [f"![time per frame]({figures['timing']})", ""]
    return lines


def clusters_section(
    summary: Mapping[str, Any], settings: Mapping[str, Any], figures: Mapping[str, str]
) -> list[str]:
    """Return the Bayesian cluster-number section (Fig. S2); empty without its rows."""
    rows = summary["clusters"]
    if not rows:
        return []
    h, w = (n // 4 for n in settings["hr_shape"])
    fractions = list(dict.fromkeys(r["cluster_fraction"] for r in rows))
    groups = list(dict.fromkeys(r["group"] for r in rows))
    noises = list(dict.fromkeys(r["noise_db"] for r in rows))
    lines = [
        "## Bayesian cluster number (Fig. S2 type)",
        "",
        f"Bayesian PSNR (dB) against the cluster-number fraction f, "
        f"K = max(2, round(f·√(h·w))) (K given at the synthetic LR size {h}×{w}):",
        "",
    ]
    header = [
        "group",
        "LR noise",
        *(f"{f:g} (K={num_clusters(h, w, f)})" for f in fractions),
    ]
    table_rows = [
        [
            group_title(g),
            noise_label(n),
            *(
                _fmt(
                    (_find(rows, group=g, noise_db=n, cluster_fraction=f) or {}).get(
                        "psnr_db", math.nan
                    )
                )
                for f in fractions
            ),
        ]
        for g in groups
        for n in noises
    ]
    lines += markdown_table(header, table_rows)
    lines.append("")
    if "clusters" in figures:
        lines += [
            f"![Bayesian PSNR against cluster fraction]({figures['clusters']})",
            "",
        ]
    return lines
