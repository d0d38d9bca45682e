"""``report.md`` of an evaluation: setup, the paper's findings checked, tables, figures.

Written from ``summary.json``'s content alone, so it can be regenerated without
fusing anything; readable without the code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from xfusion_bluesky.evaluation.datasets import CASES
from xfusion_bluesky.evaluation.figures import METHOD_LABELS
from xfusion_bluesky.evaluation.summary import (
    PAPER_ATTENTION,
    SYNTHETIC,
    hr_label,
    noise_label,
)
from xfusion_bluesky.evaluation.sweeps import USES_LR_SEPARATION
from xfusion_bluesky.evaluation.timing import PAPER_SECONDS_PER_FRAME
from xfusion_bluesky.fusion.baselines.clustering import num_clusters

__all__ = ["write_report"]

_MARK = {True: "✅ holds", False: "❌ does not hold", None: "– not testable"}


def _label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def _group(group: str) -> str:
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


def _table(
    header: Sequence[str],
    lines: Sequence[Sequence[str]],
) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return out


def _setup(summary: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    host = summary["host"]
    counts: dict[str, int] = {}
    for seq in summary["sequences"]:
        counts[seq["group"]] = counts.get(seq["group"], 0) + 1
    shapes = {seq["group"]: seq["shape"] for seq in summary["sequences"]}
    plan = settings["plan"]
    runs = summary.get("invocations") or []
    history = "; ".join(
        f"{r['created']}: {r['runtime_s'] / 60:.1f} min, {r['runs_computed']} runs "
        "computed" + (" and the timing" if r["timing_computed"] else "")
        for r in runs
    )
    lines = [
        f"Made by `{summary['command']}` on {host['description']} (torch "
        f"{host['torch']}, {host['threads']} thread(s), device {settings['device']}). "
        f"The {summary['runs']} fusion runs took {summary['fuse_seconds'] / 60:.1f} "
        "min of wall time when computed; the command resumes from `cache/`, and "
        f"this output took {len(runs)} invocation(s): {history}.",
        "",
        "## What was run",
        "",
        *_table(
            ["group", "sequences", "T × HR H × W"],
            [
                [_group(g), str(n), " × ".join(str(v) for v in shapes[g])]
                for g, n in counts.items()
            ],
        ),
        "",
        "- Synthetic sequences are held-out seeds (≥ 2**31, never drawn in training) "
        "of the scene families; the real radiographs (Diamond I13-2, flat-field "
        "corrected, clipped at 0.35 / 99.65 % and min-max scaled) are validation "
        "data, never trained on.",
        "- LR = 4×4 block mean of the truth, then Poisson noise whose blank-scan "
        "factor b0 gives the target LR image PSNR on that sequence (spec §3). HR "
        "frames are truth frames at 0, P, 2P, … ('first & last': only the first "
        "and last instant). The networks fuse LR t − s, t, t + s with the HR "
        "frames before and after; the Bayesian fusion uses the LR frames at the "
        "two HR instants and at t (its degradation calibration needs "
        "co-temporal pairs), so it does not depend on s; bicubic upsamples LR t.",
        f"- Noise sweep (Fig. 5) and cluster sweep (Fig. S2): HR every "
        f"{plan['base_hr_every']}, s = {plan['base_lr_separation']}. HR sweeps "
        "(Figs. 6, S3, S4): no noise.",
        "- Metrics in the paper's 8-bit mode (spec §2): both images "
        "round(255·clip(x, 0, 1)); PSNR with L = 255; SSIM with scikit-image's "
        "defaults (7×7 uniform window, sample covariance); AAD in 0–255 units. "
        "Frames at an HR instant are left out of every average (EDVR-STF and EDVR "
        "fuse them anyway; the Bayesian fusion returns the HR frame there).",
        "- Models: "
        + "; ".join(
            f"{_label(m)} `{info['file']}` ({info['parameters']:,} parameters, "
            f"sha256 {info['model_id'][:12]}…)"
            for m, info in summary["models"].items()
        )
        + ". Bayesian: "
        + f"K = max(2, round(0.05·√(h·w))) = {settings['bayesian_k']} clusters at "
        "the synthetic LR size.",
        "",
    ]
    return lines


def _findings(summary: Mapping[str, Any]) -> list[str]:
    lines = ["## The paper's findings on these data", ""]
    for item in summary["findings"]:
        lines.append(f"- **{item['finding']}**: {_MARK[item['holds']]}")
        lines += [f"  - {d}" for d in item["details"]]
    lines += [
        "",
        "Read against the figures below; nothing was tuned to make a finding hold.",
        "",
    ]
    return lines


def _noise(summary: Mapping[str, Any], methods: Sequence[str], fig: str) -> list[str]:
    rows = summary["noise"]
    levels = list(dict.fromkeys(r["noise_db"] for r in rows))
    groups = list(dict.fromkeys(r["group"] for r in rows))
    pooled = SYNTHETIC if SYNTHETIC in groups else groups[0]
    lines = [
        "## LR noise (Fig. 5 type)",
        "",
        f"PSNR (dB) / SSIM / AAD (8-bit) per method, {_group(pooled)}, mean over "
        "frames without an HR frame:",
        "",
        *_table(
            ["LR image PSNR", *(_label(m) for m in methods)],
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
                _group(g),
                noise_label(n),
                *_cells(rows, methods, False, group=g, noise_db=n),
            ]
            for g in others
            for n in levels
        ]
        header = ["group", "LR image PSNR", *(_label(m) for m in methods)]
        lines += ["PSNR (dB) per group:", "", *_table(header, per_group), ""]
    return [*lines, f"![PSNR, SSIM, AAD against LR noise]({fig})", ""]


def _hr(
    summary: Mapping[str, Any], methods: Sequence[str], figures: Mapping[str, str]
) -> list[str]:
    rows = summary["hr_sampling"]
    groups = list(dict.fromkeys(r["group"] for r in rows))
    seps = list(dict.fromkeys(r["lr_separation"] for r in rows))
    spacings = list(dict.fromkeys(r["hr_every"] for r in rows))
    lines = [
        "## HR down-sampling and LR separation (Figs. 6, S3, S4 type)",
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
                    rows, methods, False, group=group, lr_separation=s, hr_every=spacing
                )
                for s in seps
            ]
            cells = [
                " / ".join(c[i] for c in per_sep)
                if m in USES_LR_SEPARATION
                else per_sep[0][i]
                for i, m in enumerate(methods)
            ]
            table_rows.append([_group(group), hr_label(spacing), *cells])
    lines += _table(["group", "HR", *(_label(m) for m in methods)], table_rows)
    lines.append("")
    for sep in seps:
        key = f"hr_sep{sep}"
        if key in figures:
            lines += [
                f"![metrics against HR down-sampling, s = {sep}]({figures[key]})",
                "",
            ]
    return lines


def _attention(
    summary: Mapping[str, Any], settings: Mapping[str, Any], figures: Mapping[str, str]
) -> list[str]:
    hr_every = settings["plan"]["base_hr_every"]
    picks = [1, hr_every // 2, hr_every - 1]
    lines = [
        "## Attention scores (Figs. 7, S5 type)",
        "",
        f"EDVR-STF, no noise, HR every {hr_every}, s = "
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
                _group(row["group"]),
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
    lines += _table(
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


def _timing(summary: Mapping[str, Any], figures: Mapping[str, str]) -> list[str]:
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
                _label(method),
                f"{row['seconds_per_frame']:.4g}",
                str(row["frames"]),
                "–" if paper is None else f"{paper:g}",
                "–" if paper is None else f"{row['seconds_per_frame'] / paper:.3g}",
            ]
        )
    lines += _table(
        ["method", "s / frame", "frames per run", "paper s / frame", "× paper"],
        table_rows,
    )
    lines.append("")
    if "timing" in figures:
        lines += [f"![time per frame]({figures['timing']})", ""]
    return lines


def _clusters(
    summary: Mapping[str, Any], settings: Mapping[str, Any], figures: Mapping[str, str]
) -> list[str]:
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
            _group(g),
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
    lines += _table(header, table_rows)
    lines.append("")
    if "clusters" in figures:
        lines += [
            f"![Bayesian PSNR against cluster fraction]({figures['clusters']})",
            "",
        ]
    return lines


def _files() -> list[str]:
    return [
        "## Files",
        "",
        "- `results.csv` (written beside this report; the repository's copy in "
        "`docs/evaluation/` leaves it out for size): one row per frame × "
        "condition × method: group, sequence, "
        "target LR noise (`noise_db`, empty = none) and the achieved `lr_psnr_db`, "
        "`hr_every` (0 = first and last only), `lr_separation`, method, "
        "`cluster_fraction` (Fig. S2 rows only), frame, `offset` from the "
        "preceding HR frame, `at_hr` (an HR frame at that instant: left out of "
        "averages), `after_last_hr`, PSNR / SSIM / AAD (8-bit mode), raw and "
        "normalised attention (NaN for methods without), wall time per frame.",
        "- `summary.json`: every number above, the settings, seeds, model ids.",
        "",
    ]


def write_report(
    path: Path,
    summary: Mapping[str, Any],
    *,
    settings: Mapping[str, Any],
    figures: Mapping[str, str],
) -> Path:
    """Write ``report.md`` beside the figures.

    Parameters
    ----------
    path : path
        The report file.
    summary : mapping
        ``summary.json``'s content.
    settings : mapping
        The run's settings (also in ``summary["settings"]``).
    figures : mapping of str to str
        Figure key → PNG file name beside the report.
    """
    methods = settings["methods"]
    sections: list[Callable[[], list[str]]] = [
        lambda: _setup(summary, settings),
        lambda: _findings(summary),
        lambda: (
            _noise(summary, methods, figures.get("noise", ""))
            if summary["noise"]
            else []
        ),
        lambda: _hr(summary, methods, figures),
        lambda: _attention(summary, settings, figures) if "edvr_stf" in methods else [],
        lambda: _timing(summary, figures),
        lambda: _clusters(summary, settings, figures),
        _files,
    ]
    lines = ["# Fusion methods compared: EDVR-STF, EDVR, bicubic, Bayesian", ""]
    for section in sections:
        lines += section()
    path.write_text("\n".join(lines) + "\n")
    return path
