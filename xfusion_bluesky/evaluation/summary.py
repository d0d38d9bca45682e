"""Summary of an evaluation: pooled numbers and the paper's findings checked.

:func:`summarise` pools the per-frame table into the numbers behind every
figure; :func:`findings` checks the paper's qualitative findings on them: each
holds or not, with the numbers that decide it (nothing is tuned to make one
hold).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

import numpy as np
from scipy import stats

from xfusion_bluesky.evaluation.figures import METHOD_LABELS
from xfusion_bluesky.evaluation.sweeps import HR_ENDS, SweepPlan
from xfusion_bluesky.evaluation.tables import Table, pooled, select

__all__ = [
    "PAPER_ATTENTION",
    "SYNTHETIC",
    "attention_samples",
    "findings",
    "group_mask",
    "hr_label",
    "noise_label",
    "summarise",
]

#: Pseudo-group of every synthetic sequence pooled together.
SYNTHETIC = "synthetic"
#: The paper's normalised attention at offsets 1, 10, 19 (HR every 20), §7.1.5.
PAPER_ATTENTION = {
    "case 1": {"backward": [0.69, 0.41, 0.32], "forward": [0.30, 0.39, 0.70]},
    "case 2": {"backward": [0.62, 0.36, 0.34], "forward": [0.34, 0.38, 0.65]},
}


def _label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def _group(group: str) -> str:
    return "all synthetic" if group == SYNTHETIC else group


def group_mask(table: Table, group: str) -> np.ndarray:
    """Return the rows of ``group``; :data:`SYNTHETIC` pools every scene family."""
    if group == SYNTHETIC:
        return ~np.isin(table["group"], ["radiographs", "user"])
    return table["group"] == group


def attention_samples(
    table: Table, plan: SweepPlan, group: str
) -> dict[str, np.ndarray]:
    """Normalised EDVR-STF scores of frames between two HR frames (Fig. 7 setting).

    No noise, HR every ``plan.base_hr_every``, LR separation
    ``plan.base_lr_separation``; frames at an HR instant, after the last HR frame
    or with a NaN score (normaliser ≤ 0) are left out.
    """
    mask = group_mask(table, group) & select(
        table,
        method="edvr_stf",
        noise_db=None,
        hr_every=plan.base_hr_every,
        lr_separation=plan.base_lr_separation,
        cluster_fraction=None,
    )
    backward = table["normalized_backward_attention"]
    forward = table["normalized_forward_attention"]
    mask &= ~table["at_hr"] & ~table["after_last_hr"]
    mask &= np.isfinite(backward) & np.isfinite(forward)
    return {
        "offset": table["offset"][mask],
        "backward": backward[mask],
        "forward": forward[mask],
    }


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(stats.spearmanr(x, y).statistic)


def summarise(
    table: Table, plan: SweepPlan, methods: Sequence[str], groups: Sequence[str]
) -> dict[str, Any]:
    """Pool the per-frame table into the numbers of every figure.

    Returns
    -------
    dict
        ``noise``, ``hr_sampling``, ``attention``, ``clusters``: lists of rows
        (dicts), per group (plus :data:`SYNTHETIC`, every scene family pooled).
    """
    everyone = [*groups, SYNTHETIC] if len(groups) > 1 else list(groups)
    base = {"cluster_fraction": None}
    out: dict[str, Any] = {"noise": [], "hr_sampling": [], "attention": []}
    for group in everyone:
        in_group = group_mask(table, group)
        for noise in plan.noise_db:
            for method in methods:
                mask = in_group & select(
                    table,
                    noise_db=noise,
                    hr_every=plan.base_hr_every,
                    lr_separation=plan.base_lr_separation,
                    method=method,
                    **base,
                )
                out["noise"].append(
                    {"group": group, "noise_db": noise, "method": method}
                    | pooled(table, mask)
                )
        for sep in plan.lr_separations:
            for hr_every in plan.hr_every:
                for method in methods:
                    mask = in_group & select(
                        table,
                        noise_db=None,
                        hr_every=hr_every,
                        lr_separation=sep,
                        method=method,
                        **base,
                    )
                    out["hr_sampling"].append(
                        {
                            "group": group,
                            "lr_separation": sep,
                            "hr_every": hr_every,
                            "method": method,
                        }
                        | pooled(table, mask)
                    )
        out["attention"].append(_attention_row(table, plan, group))
    out["clusters"] = _cluster_rows(table, plan, everyone)
    return out


def _attention_row(table: Table, plan: SweepPlan, group: str) -> dict[str, Any]:
    """Spearman ρ and mean scores per offset of one group."""
    samples = attention_samples(table, plan, group)
    offsets = np.unique(samples["offset"])
    return {
        "group": group,
        "frames": int(samples["offset"].size),
        "rho_backward": _spearman(samples["offset"], samples["backward"]),
        "rho_forward": _spearman(samples["offset"], samples["forward"]),
        "mean_by_offset": {
            int(k): [
                float(samples["backward"][samples["offset"] == k].mean()),
                float(samples["forward"][samples["offset"] == k].mean()),
            ]
            for k in offsets
        },
    }


def _cluster_rows(
    table: Table, plan: SweepPlan, groups: Sequence[str]
) -> list[dict[str, Any]]:
    """Bayesian mean PSNR per cluster fraction, noise level and group (Fig. S2)."""
    rows = []
    for group in groups:
        for noise in plan.cluster_noise_db:
            for fraction in plan.cluster_fractions:
                mask = group_mask(table, group) & select(
                    table, method="bayesian", noise_db=noise, cluster_fraction=fraction
                )
                rows.append(
                    {"group": group, "noise_db": noise, "cluster_fraction": fraction}
                    | pooled(table, mask)
                )
    return rows


def noise_label(noise: float | None) -> str:
    """Return how tables name a noise level: ``"no noise"``, ``"30 dB"``."""
    return "no noise" if noise is None else f"{noise:g} dB"


def hr_label(hr_every: int) -> str:
    """Return how tables name an HR spacing: ``"every 20"``, ``"first & last"``."""
    return "first & last" if hr_every == HR_ENDS else f"every {hr_every}"


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
    order = [m for m in ("edvr_stf", "edvr", "bicubic") if m in methods]
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
                        f"{_label(m)} {v:.2f}"
                        for m, v in zip(order, values, strict=True)
                    )
                    broken.append(
                        f"{_group(group)}, {noise_label(noise)}: {numbers} dB"
                    )
        out.append(
            {
                "finding": " ahead of ".join(_label(m) for m in order)
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
    rivals = [m for m in ("bicubic", "edvr") if m in methods]
    networks = [m for m in ("edvr", "edvr_stf") if m in methods] or ["bicubic"]
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
            strong.append(_group(group))
        if all(noisy["bayesian"] < noisy[m] for m in networks):
            weak.append(_group(group))
        details.append(
            f"{_group(group)}: no noise "
            + ", ".join(f"{_label(m)} {clean[m]:.2f}" for m in methods)
            + f"; {noise_label(worst)} "
            + ", ".join(f"{_label(m)} {noisy[m]:.2f}" for m in methods)
            + " dB"
        )
    names = [_group(g) for g in groups]
    details.insert(0, _split("strong without noise", strong, names))
    details.insert(1, _split(f"weak at {noise_label(worst)}", weak, names))
    holds = len(strong) == len(weak) == len(names)
    return {
        "finding": "Bayesian strong without noise (above "
        + " and ".join(_label(m) for m in rivals)
        + f") and weak at {noise_label(worst)} (below "
        + " and ".join(_label(m) for m in networks)
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
    spacing = sorted(p for p in plan.hr_every if p != HR_ENDS)
    spacing += [HR_ENDS] if HR_ENDS in plan.hr_every else []
    broken = []
    for group in groups:
        for sep in plan.lr_separations:
            for method in (m for m in methods if m in ("edvr_stf", "bayesian")):
                values = [
                    _psnr(
                        summary,
                        "hr_sampling",
                        group=group,
                        lr_separation=sep,
                        hr_every=p,
                        method=method,
                    )
                    for p in spacing
                ]
                if not all(a >= b for a, b in pairwise(values)):
                    numbers = " → ".join(f"{v:.2f}" for v in values)
                    broken.append(
                        f"{_group(group)}, {_label(method)}, s = {sep}: {numbers} dB"
                    )
    return {
        "finding": "every fusion method falls as HR frames get rarer (PSNR at HR "
        + ", ".join(hr_label(p) for p in spacing)
        + ")",
        "holds": not broken,
        "details": broken or ["for EDVR-STF and Bayesian, every group and separation"],
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
    picks = [1, plan.base_hr_every // 2, plan.base_hr_every - 1]
    at = " / ".join(map(str, picks))
    for row in summary["attention"]:
        if not row["frames"]:
            continue
        group = _group(row["group"])
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
