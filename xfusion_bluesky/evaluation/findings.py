"""The paper's qualitative findings, checked on an evaluation's pooled numbers.

:func:`findings` reads the summary (:func:`~xfusion_bluesky.evaluation.summary.
summarise`) and says for each finding whether it holds here, with the numbers
that decide it (nothing is tuned to make one hold). Which methods a finding
compares follows from the method registry (HR frames, weights), not from lists.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

from xfusion_bluesky.evaluation.summary import (
    PAPER_ATTENTION,
    SYNTHETIC,
    group_name,
    hr_label,
    method_label,
    noise_label,
)
from xfusion_bluesky.evaluation.sweeps import HR_ENDS, SweepPlan
from xfusion_bluesky.fusion.methods import METHOD_NAMES, method_spec

__all__ = ["findings", "ranked_methods"]


def ranked_methods(methods: Sequence[str]) -> list[str]:
    """Return the methods of the paper's ranking at every noise level (Fig. 5).

    The networks, then the weight-free method without HR frames (bicubic), in
    registry order: EDVR-STF ahead of EDVR ahead of bicubic. The Bayesian fusion
    is strong without noise and weak with it, a finding of its own.
    """
    return [
        m
        for m in METHOD_NAMES
        if m in methods and (method_spec(m).trainable or not method_spec(m).uses_hr)
    ]


def _psnr(summary: Mapping[str, Any], key: str, **where: Any) -> float:
    """Look up the pooled PSNR of the one row of ``summary[key]`` matching ``where``."""
    for row in summary[key]:
        if all(row.get(k) == v for k, v in where.items()):
            return float(row["psnr_db"])
    return math.nan


def findings(
    summary: Mapping[str, Any],
    plan: SweepPlan,
    methods: Sequence[str],
    groups: Sequence[str],
) -> list[dict[str, Any]]:
    """Check the paper's qualitative findings on these numbers.

    Returns
    -------
    list of dict
        ``{"finding", "holds" (True/False/None: not testable here), "details"}``.
    """
    everyone = [*groups, SYNTHETIC] if len(groups) > 1 else list(groups)
    out = []
    order = ranked_methods(methods)
    if len(order) > 1:
        broken = []
        for group in everyone:
            for noise in plan.noise_db:
                values = [
                    _psnr(summary, "noise", group=group, noise_db=noise, method=m)
                    for m in order
                ]
                if not all(a > b for a, b in pairwise(values)):
                    numbers = ", ".join(
                        f"{method_label(m)} {v:.2f}"
                        for m, v in zip(order, values, strict=True)
                    )
                    broken.append(
                        f"{group_name(group)}, {noise_label(noise)}: {numbers} dB"
                    )
        out.append(
            {
                "finding": " ahead of ".join(method_label(m) for m in order)
                + " at every noise level (PSNR)",
                "holds": not broken,
                "details": broken or ["in every group and at every level"],
            }
        )
    if "bayesian" in methods and "bicubic" in methods:
        out.append(_bayesian_finding(summary, plan, everyone, methods))
    out.append(_hr_finding(summary, plan, everyone, methods))
    if "edvr_stf" in methods:
        out.append(_attention_finding(summary, plan))
    return out


def _bayesian_finding(
    summary: Mapping[str, Any],
    plan: SweepPlan,
    groups: Sequence[str],
    methods: Sequence[str],
) -> dict[str, Any]:
    """Bayesian strong without noise, weak at the lowest LR PSNR.

    Strong: above bicubic and above the LR-only EDVR (its HR frames help it);
    weak: below both networks. Where a network was not run, the comparison with
    it is left out.
    """
    levels = [n for n in plan.noise_db if n is not None]
    if not levels or None not in plan.noise_db:
        return {
            "finding": "Bayesian strong without noise, weak at the lowest LR PSNR",
            "holds": None,
            "details": ["needs the no-noise level and at least one noise level"],
        }
    worst = min(levels)
    listed = [m for m in METHOD_NAMES if m in methods]
    rivals = [m for m in listed if not method_spec(m).uses_hr]
    networks = [m for m in listed if method_spec(m).trainable] or rivals
    details, strong, weak = [], [], []
    for group in groups:
        clean, noisy = (
            {
                m: _psnr(summary, "noise", group=group, noise_db=noise, method=m)
                for m in methods
            }
            for noise in (None, worst)
        )
        if all(clean["bayesian"] > clean[m] for m in rivals):
            strong.append(group_name(group))
        if all(noisy["bayesian"] < noisy[m] for m in networks):
            weak.append(group_name(group))
        details.append(
            f"{group_name(group)}: no noise "
            + ", ".join(f"{method_label(m)} {clean[m]:.2f}" for m in methods)
            + f"; {noise_label(worst)} "
            + ", ".join(f"{method_label(m)} {noisy[m]:.2f}" for m in methods)
            + " dB"
        )
    names = [group_name(g) for g in groups]
    details.insert(0, _split("strong without noise", strong, names))
    details.insert(1, _split(f"weak at {noise_label(worst)}", weak, names))
    holds = len(strong) == len(weak) == len(names)
    return {
        "finding": "Bayesian strong without noise (above "
        + " and ".join(method_label(m) for m in rivals)
        + f") and weak at {noise_label(worst)} (below "
        + " and ".join(method_label(m) for m in networks)
        + ")",
        "holds": holds,
        "details": details,
    }


def _split(what: str, yes: Sequence[str], every: Sequence[str]) -> str:
    """Say in which groups ``what`` holds and in which not."""
    no = [g for g in every if g not in yes]
    return (
        f"{what}: holds in {len(yes)} of {len(every)} groups"
        + (f" ({', '.join(yes)})" if yes and no else "")
        + (f"; not in {', '.join(no)}" if no else "")
    )


def _hr_finding(
    summary: Mapping[str, Any],
    plan: SweepPlan,
    groups: Sequence[str],
    methods: Sequence[str],
) -> dict[str, Any]:
    """Every HR-using method falls as HR frames get rarer (PSNR, no noise)."""
    spacing = sorted(p for p in plan.hr_separations if p != HR_ENDS)
    spacing += [HR_ENDS] if HR_ENDS in plan.hr_separations else []
    fusing = [m for m in methods if method_spec(m).uses_hr]
    names = " and ".join(method_label(m) for m in fusing)
    broken = []
    for group in groups:
        for sep in plan.lr_separations:
            for method in fusing:
                values = [
                    _psnr(
                        summary,
                        "hr_separation",
                        group=group,
                        lr_separation=sep,
                        hr_separation=p,
                        method=method,
                    )
                    for p in spacing
                ]
                if not all(a >= b for a, b in pairwise(values)):
                    numbers = " → ".join(f"{v:.2f}" for v in values)
                    where = f"{group_name(group)}, {method_label(method)}, s = {sep}"
                    broken.append(f"{where}: {numbers} dB")
    return {
        "finding": "every fusion method falls as HR frames get rarer (PSNR at HR "
        "separation " + ", ".join(hr_label(p) for p in spacing) + ")",
        "holds": not broken,
        "details": broken or [f"for {names}, every group and separation"],
    }


def _attention_finding(summary: Mapping[str, Any], plan: SweepPlan) -> dict[str, Any]:
    """Normalised backward attention falls, forward rises, between HR frames.

    The direction is judged by Spearman's ρ against the offset (backward < 0,
    forward > 0); the size of the change from offset 1 to P − 1 is given beside
    the paper's.
    """
    details, falls, rises, names = [], [], [], []
    # Relative change of the mean score from offset 1 to P − 1, per group.
    change: dict[str, list[float]] = {"backward": [], "forward": []}
    picks = [1, plan.base_hr_separation // 2, plan.base_hr_separation - 1]
    at = " / ".join(map(str, picks))
    for row in summary["attention"]:
        if not row["frames"]:
            continue
        group = group_name(row["group"])
        names.append(group)
        means = {int(k): v for k, v in row["mean_by_offset"].items()}
        if row["rho_backward"] < 0:
            falls.append(group)
        if row["rho_forward"] > 0:
            rises.append(group)
        if picks[0] in means and picks[-1] in means:
            for i, key in enumerate(("backward", "forward")):
                first, last = means[picks[0]][i], means[picks[-1]][i]
                change[key].append(last / first - 1 if first else math.nan)
        back = " / ".join(f"{means[k][0]:.2f}" if k in means else "–" for k in picks)
        fwd = " / ".join(f"{means[k][1]:.2f}" if k in means else "–" for k in picks)
        details.append(
            f"{group}: ρ backward {row['rho_backward']:.2f}, ρ forward "
            f"{row['rho_forward']:.2f}; means at offsets {at}: "
            f"backward {back}, forward {fwd}"
        )
    if not names:
        return {
            "finding": "normalised backward attention falls and forward attention "
            "rises between HR frames",
            "holds": None,
            "details": ["no EDVR-STF frames between two HR frames"],
        }
    details.insert(0, _split("backward falls (ρ < 0)", falls, names))
    details.insert(1, _split("forward rises (ρ > 0)", rises, names))
    paper = PAPER_ATTENTION
    if change["backward"]:
        ours = {k: max(v, key=abs) for k, v in change.items()}
        theirs = {k: paper["case 1"][k][-1] / paper["case 1"][k][0] - 1 for k in change}
        details.insert(
            2,
            f"size: from offset {picks[0]} to {picks[-1]} the mean normalised score "
            f"changes by at most {ours['backward']:+.0%} (backward) and "
            f"{ours['forward']:+.0%} (forward) here; paper case 1: "
            f"{theirs['backward']:+.0%} and {theirs['forward']:+.0%}",
        )
    details.append(
        "paper (case 1 / case 2), offsets 1 / 10 / 19: backward "
        + " / ".join(f"{v:.2f}" for v in paper["case 1"]["backward"])
        + " and "
        + " / ".join(f"{v:.2f}" for v in paper["case 2"]["backward"])
        + ", forward "
        + " / ".join(f"{v:.2f}" for v in paper["case 1"]["forward"])
        + " and "
        + " / ".join(f"{v:.2f}" for v in paper["case 2"]["forward"])
    )
    return {
        "finding": "normalised backward attention falls and forward attention rises "
        "between HR frames (direction: Spearman ρ against the offset)",
        "holds": len(falls) == len(rises) == len(names),
        "details": details,
    }
