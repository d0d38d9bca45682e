"""``report.md`` of an evaluation: setup, the paper's findings checked, tables, figures.

Written from ``summary.json``'s content alone, so it can be regenerated without
fusing anything (an older summary is read through
:func:`~xfusion_bluesky.evaluation.summary.upgrade_summary`); readable without
the code. The per-sweep sections are in
:mod:`~xfusion_bluesky.evaluation.report_sections`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from xfusion_bluesky.evaluation.report_sections import (
    attention_section,
    clusters_section,
    group_title,
    hr_section,
    markdown_table,
    noise_section,
    timing_section,
)
from xfusion_bluesky.evaluation.summary import method_label, upgrade_summary

__all__ = ["write_report"]

_MARK = {True: "✅ holds", False: "❌ does not hold", None: "– not testable"}


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
        *markdown_table(
            ["group", "sequences", "T × HR H × W"],
            [
                [group_title(g), str(n), " × ".join(str(v) for v in shapes[g])]
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
        "frames are truth frames at 0, P, 2P, … for an HR separation P ('first & "
        "last': only the first and last instant). The networks fuse LR t − s, t, "
        "t + s with the HR frames before and after; the Bayesian fusion uses the "
        "LR frames at the two HR instants and at t (its degradation calibration "
        "needs co-temporal pairs), so it does not depend on s; bicubic upsamples "
        "LR t.",
        f"- Noise sweep (Fig. 5) and cluster sweep (Fig. S2): HR separation "
        f"{plan['base_hr_separation']}, s = {plan['base_lr_separation']}. HR "
        "separation sweeps (Figs. 6, S3, S4): no noise.",
        "- Metrics in the paper's 8-bit mode (spec §2): both images "
        "round(255·clip(x, 0, 1)); PSNR with L = 255; SSIM with scikit-image's "
        "defaults (7×7 uniform window, sample covariance); AAD in 0–255 units. "
        "Frames at an HR instant are left out of every average (EDVR-STF and EDVR "
        "fuse them anyway; the Bayesian fusion returns the HR frame there).",
        "- Models: "
        + "; ".join(
            f"{method_label(m)} `{info['file']}` ({info['parameters']:,} parameters, "
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


def _files() -> list[str]:
    return [
        "## Files",
        "",
        "- `results.csv` (written beside this report; the repository's copy in "
        "`docs/evaluation/` leaves it out for size): one row per frame × "
        "condition × method: group, sequence, "
        "target LR noise (`noise_db`, empty = none) and the achieved `lr_psnr_db`, "
        "`hr_separation` (0 = first and last only), `lr_separation`, method, "
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
    summary = upgrade_summary(summary)
    settings = upgrade_summary({"settings": settings})["settings"]
    methods = settings["methods"]
    sections: list[Callable[[], list[str]]] = [
        lambda: _setup(summary, settings),
        lambda: _findings(summary),
        lambda: (
            noise_section(summary, methods, figures.get("noise", ""))
            if summary["noise"]
            else []
        ),
        lambda: hr_section(summary, methods, figures),
        lambda: (
            attention_section(summary, settings, figures)
            if "edvr_stf" in methods
            else []
        ),
        lambda: timing_section(summary, figures),
        lambda: clusters_section(summary, settings, figures),
        _files,
    ]
    title = ", ".join(method_label(m) for m in methods)
    lines = [f"# Fusion methods compared: {title}", ""]
    for section in sections:
        lines += section()
    path.write_text("\n".join(lines) + "\n")
    return path
