"""Summary of an evaluation: the per-frame table pooled into every figure's numbers.

:func:`summarise` pools the table per sweep, group and method; the names tables
give conditions (:func:`noise_label`, :func:`hr_label`) live here too, so the
findings (:mod:`~xfusion_bluesky.evaluation.findings`), the report and the
figures say them alike. :func:`upgrade_summary` reads a ``summary.json`` written
before the HR separation got its one name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from xfusion_bluesky.evaluation.sweeps import HR_ENDS, SweepPlan
from xfusion_bluesky.evaluation.tables import Table, pooled, select
from xfusion_bluesky.fusion.methods import METHODS

__all__ = [
    "PAPER_ATTENTION",
    "SYNTHETIC",
    "attention_samples",
    "group_mask",
    "group_name",
    "hr_label",
    "method_label",
    "noise_label",
    "spearman",
    "summarise",
    "upgrade_summary",
]

#: Pseudo-group of every synthetic sequence pooled together.
SYNTHETIC = "synthetic"
#: The paper's normalised attention at offsets 1, 10, 19 (HR separation 20), §7.1.5.
PAPER_ATTENTION = {
    "case 1": {"backward": [0.69, 0.41, 0.32], "forward": [0.30, 0.39, 0.70]},
    "case 2": {"backward": [0.62, 0.36, 0.34], "forward": [0.34, 0.38, 0.65]},
}
#: Keys of a summary and of its rows before the HR separation got its one name:
#: old → new; the plan in its settings has its own (its tuple is plural, as
#: ``lr_separations``).
_RENAMED = {"hr_sampling": "hr_separation", "hr_every": "hr_separation"}
_PLAN_RENAMED = {"hr_every": "hr_separations", "base_hr_every": "base_hr_separation"}


def method_label(method: str) -> str:
    """Return the method's name in tables and figures (``"EDVR-STF"``)."""
    spec = METHODS.get(method)
    return spec.label if spec is not None else method


def group_name(group: str) -> str:
    """Return a group's name in prose: :data:`SYNTHETIC` is "all synthetic"."""
    return "all synthetic" if group == SYNTHETIC else group


def noise_label(noise: float | None) -> str:
    """Return how tables name a noise level: ``"no noise"``, ``"30 dB"``."""
    return "no noise" if noise is None else f"{noise:g} dB"


def hr_label(hr_separation: int) -> str:
    """Return how tables name an HR separation: ``"20"``, ``"first & last"``."""
    return "first & last" if hr_separation == HR_ENDS else str(hr_separation)


def group_mask(table: Table, group: str) -> np.ndarray:
    """Return the rows of ``group``; :data:`SYNTHETIC` pools every scene family."""
    if group == SYNTHETIC:
        return ~np.isin(table["group"], ["radiographs", "user"])
    return table["group"] == group


def attention_samples(
    table: Table, plan: SweepPlan, group: str
) -> dict[str, np.ndarray]:
    """Normalised EDVR-STF scores of frames between two HR frames (Fig. 7 setting).

    No noise, HR separation ``plan.base_hr_separation``, LR separation
    ``plan.base_lr_separation``; frames at an HR instant, after the last HR frame
    or with a NaN score (normaliser ≤ 0) are left out.
    """
    mask = group_mask(table, group) & select(
        table,
        method="edvr_stf",
        noise_db=None,
        hr_separation=plan.base_hr_separation,
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


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Return Spearman's ρ of ``y`` against ``x``; NaN when it is undefined."""
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
        ``noise``, ``hr_separation``, ``attention``, ``clusters``: lists of rows
        (dicts), per group (plus :data:`SYNTHETIC`, every scene family pooled).
    """
    everyone = [*groups, SYNTHETIC] if len(groups) > 1 else list(groups)
    base = {"cluster_fraction": None}
    out: dict[str, Any] = {"noise": [], "hr_separation": [], "attention": []}
    for group in everyone:
        in_group = group_mask(table, group)
        for noise in plan.noise_db:
            for method in methods:
                mask = in_group & select(
                    table,
                    noise_db=noise,
                    hr_separation=plan.base_hr_separation,
                    lr_separation=plan.base_lr_separation,
                    method=method,
                    **base,
                )
                out["noise"].append(
                    {"group": group, "noise_db": noise, "method": method}
                    | pooled(table, mask)
                )
        for sep in plan.lr_separations:
            for hr_separation in plan.hr_separations:
                for method in methods:
                    mask = in_group & select(
                        table,
                        noise_db=None,
                        hr_separation=hr_separation,
                        lr_separation=sep,
                        method=method,
                        **base,
                    )
                    out["hr_separation"].append(
                        {
                            "group": group,
                            "lr_separation": sep,
                            "hr_separation": hr_separation,
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
        "rho_backward": spearman(samples["offset"], samples["backward"]),
        "rho_forward": spearman(samples["offset"], samples["forward"]),
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


def _renamed(
    mapping: Mapping[str, Any], names: Mapping[str, str] = _RENAMED
) -> dict[str, Any]:
    """Return ``mapping`` with old keys under their new ``names``, in order."""
    return {names.get(k, k): v for k, v in mapping.items()}


def upgrade_summary(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Return a ``summary.json`` content with today's key names.

    Summaries written before the rename keep the HR-separation sweep under
    ``hr_sampling`` with ``hr_every`` per row, and the plan's ``hr_every`` /
    ``base_hr_every``; they are renamed here, so an old summary still gives a
    report. A current summary comes back unchanged (as a new dict).

    Parameters
    ----------
    summary : mapping
        ``summary.json``'s content, old or new.

    Returns
    -------
    dict
    """
    out = _renamed(summary)
    if isinstance(out.get("hr_separation"), list):
        out["hr_separation"] = [_renamed(row) for row in out["hr_separation"]]
    settings = out.get("settings")
    if isinstance(settings, Mapping) and isinstance(settings.get("plan"), Mapping):
        out["settings"] = {
            **settings,
            "plan": _renamed(settings["plan"], _PLAN_RENAMED),
        }
    return out
