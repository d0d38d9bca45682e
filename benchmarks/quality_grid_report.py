"""Targets and markdown tables of ``benchmarks/quality_grid.py``.

What the default method must reach on scenes it never saw (ahead of every
baseline at every setting, a margin over bicubic at HR every 20 without noise,
backward attention falling with the distance from the preceding HR frame, and
the gain of self-supervised adaptation), checked on the pooled conditions of one
dataset, and the markdown the script prints.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from quality_report import _fmt

from xfusion_bluesky.evaluation.sweeps import HR_ENDS
from xfusion_bluesky.fusion import METHODS, fuse, method_spec

#: The method ``fuse`` uses when none is named: the one the targets are about.
DEFAULT = str(inspect.signature(fuse).parameters["method"].default)
ADAPTED = f"{DEFAULT}+adapt"
BASELINES = ("bicubic", "edvr", "bayesian")
#: The thresholds (dB, except ρ).
GAIN_SYNTHETIC_DB, GAIN_RADIOGRAPHS_DB = 6.0, 4.0
RHO_BACKWARD = -0.5
ADAPT_GAIN_DB, ADAPT_WORST_DB = 1.0, -0.1
TITLES = {
    "held_out": "Held-out scene family ({families}; never trained on)",
    "seen": "Seen x-ray families ({families}; held-out seeds), for reference",
    "radiographs": "Real radiographs, Diamond I13-2 (never trained on)",
}


def hr_label(hr_every: int) -> str:
    """``"ends"`` or the HR separation."""
    return "ends" if hr_every == HR_ENDS else str(hr_every)


def noise_label(noise_db: float | None) -> str:
    """``"none"`` or e.g. ``"30 dB"``."""
    return "none" if noise_db is None else f"{noise_db:g} dB"


def targets(dataset: str, conditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check the held-out targets on one dataset's conditions (NaN fails)."""
    rows = []

    def check(
        cond: dict[str, Any], name: str, value: float, op: str, bar: float
    ) -> None:
        passed = (
            value >= bar if op == ">=" else value > bar if op == ">" else value <= bar
        )
        rows.append(
            {
                "dataset": dataset,
                "condition": cond["label"],
                "target": name,
                "value": value,
                "needs": f"{op} {bar:g}",
                "passed": bool(passed),
            }
        )

    gain = GAIN_RADIOGRAPHS_DB if dataset == "radiographs" else GAIN_SYNTHETIC_DB
    for cond in conditions:
        psnr_db = {m: r["psnr_db"] for m, r in cond["methods"].items()}
        if DEFAULT not in psnr_db:
            continue
        own = psnr_db[DEFAULT]
        for base in BASELINES:
            if base in psnr_db:
                check(cond, f"{DEFAULT} − {base} (dB)", own - psnr_db[base], ">", 0.0)
        if (
            cond["noise_db"] is None
            and cond["hr_every"] == "20"
            and "bicubic" in psnr_db
        ):
            check(
                cond, f"{DEFAULT} − bicubic (dB)", own - psnr_db["bicubic"], ">=", gain
            )
        attn = cond["attention"]
        if attn is not None and np.isfinite(attn["rho_backward"]):
            check(cond, "ρ backward", attn["rho_backward"], "<=", RHO_BACKWARD)
        if ADAPTED in psnr_db:
            delta = psnr_db[ADAPTED] - own
            check(cond, "adaptation gain (dB)", delta, ">=", ADAPT_GAIN_DB)
            check(cond, "adaptation never worse (dB)", delta, ">=", ADAPT_WORST_DB)
    return rows


def psnr_table(conditions: list[dict[str, Any]], methods: list[str]) -> list[str]:
    """Markdown rows: PSNR / SSIM per condition and method, and the default's lead."""
    present = {m for cond in conditions for m in cond["methods"]}
    shown = [m for m in [*methods, ADAPTED] if m in present]
    names = [method_spec(m).label if m in METHODS else m for m in shown]
    lines = [
        "| LR noise | HR every | "
        + " | ".join(names)
        + f" | {DEFAULT} − bicubic | {DEFAULT} − best baseline | ρ backward |",
        "|---|---|" + "---:|" * (len(shown) + 3),
    ]
    for cond in conditions:
        rows = cond["methods"]
        cells = [
            f"{_fmt(rows[m]['psnr_db'], 2)} / {_fmt(rows[m]['ssim'], 3)}"
            if m in rows
            else "—"
            for m in shown
        ]
        own = rows[DEFAULT]["psnr_db"]
        best = max(rows[b]["psnr_db"] for b in BASELINES if b in rows)
        rho = cond["attention"]["rho_backward"] if cond["attention"] else None
        lines.append(
            f"| {noise_label(cond['noise_db'])} | {cond['hr_every']} | "
            + " | ".join(cells)
            + f" | {own - rows['bicubic']['psnr_db']:+.2f} | {own - best:+.2f} "
            f"| {'n/a' if rho is None or not np.isfinite(rho) else f'{rho:.2f}'} |"
        )
    return lines


def target_table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown rows: every target with its value and PASS/FAIL."""
    lines = [
        "| dataset | condition | target | value | needs | result |",
        "|---|---|---|---:|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['condition']} | {r['target']} "
            f"| {_fmt(r['value'], 2)} | {r['needs']} "
            f"| {'PASS' if r['passed'] else 'FAIL'} |"
        )
    return lines


def markdown(results: dict[str, Any], methods: list[str], notes: list[str]) -> str:
    """Return the tables of every dataset and the targets, as the script prints."""
    lines = [f"note: {note}" for note in dict.fromkeys(notes)]
    rows = []
    for name, result in results.items():
        families = sorted({s.get("family", s["name"]) for s in result["sequences"]})
        shape = result.get("shape")  # absent in files of the first version
        size = (
            "" if shape is None else f" of {shape[0]} frames, HR {shape[1]}×{shape[2]}"
        )
        lines += [
            "",
            f"### {TITLES[name].format(families=', '.join(families))}",
            "",
            "PSNR (dB) / SSIM on frames without an HR frame; "
            f"{len(result['sequences'])} sequence(s){size}.",
            "",
            *psnr_table(result["conditions"], methods),
        ]
        rows += result["targets"]
    passed = sum(r["passed"] for r in rows)
    lines += ["", f"### Targets: {passed}/{len(rows)} pass", "", *target_table(rows)]
    return "\n".join(lines)
