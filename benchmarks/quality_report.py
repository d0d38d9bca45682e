"""Pooled scores, quality targets and markdown tables of ``benchmarks/quality.py``.

What the methods' per-frame scores of one condition pool into (mean PSNR / SSIM /
AAD, Spearman ρ of the normalised attention against the offset), which targets
those numbers must meet, and the markdown the benchmark prints. The methods
compared are the paper's ranking (EDVR-STF ahead of EDVR ahead of bicubic), as
the method registry gives it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xfusion_bluesky.evaluation.findings import ranked_methods
from xfusion_bluesky.evaluation.summary import spearman
from xfusion_bluesky.fusion.methods import METHOD_NAMES, method_spec
from xfusion_bluesky.metrics import mean_finite

#: Methods compared: the networks and bicubic (the Bayesian fusion, minutes per
#: sequence at this size, is compared by ``xfusion-bluesky evaluate``).
METHODS = tuple(ranked_methods(METHOD_NAMES))
#: HR separations of the conditions, in LR frame periods; the first is gated.
HR_SEPARATIONS = (10, 20)
TARGET_BICUBIC_DB = 4.0
TARGET_EDVR_DB = 1.0
TARGET_RHO_BACKWARD = -0.5


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


def attention_summary(
    samples: list[dict[str, Any]], hr_separation: int
) -> dict[str, Any]:
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
        "paper_offsets": [1, hr_separation // 2, hr_separation - 1],
    }


def targets(conditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check the quality targets on one dataset's conditions."""
    rows = []
    for cond in conditions:
        psnr_db = {m: cond["methods"][m]["psnr_db"] for m in METHODS}
        stf = psnr_db["edvr_stf"]
        c = cond["condition"]
        if c["noise_db"] is None and c["hr_separation"] == HR_SEPARATIONS[0]:
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
                f"| {cond['label']} | {method_spec(method).label} "
                f"| {_fmt(row['psnr_db'], 2)} "
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
    kind = "gates" if gate else "reported only, not gates"
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
