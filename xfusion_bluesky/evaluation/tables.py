"""Per-frame result tables: concatenation, selection, pooled means, CSV.

A table is a dict of equally long 1-D arrays, one per column (one row per
frame × condition × method), so selections are boolean masks and no data-frame
library is needed.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xfusion_bluesky.metrics import mean_finite

__all__ = [
    "CSV_COLUMNS",
    "METRICS",
    "Table",
    "concat",
    "pooled",
    "scored",
    "select",
    "write_csv",
]

Table = dict[str, NDArray[Any]]

#: Column order of ``results.csv``.
CSV_COLUMNS = (
    "group",
    "sequence",
    "noise_db",
    "lr_psnr_db",
    "hr_separation",
    "lr_separation",
    "method",
    "cluster_fraction",
    "frame",
    "offset",
    "at_hr",
    "after_last_hr",
    "psnr_db",
    "ssim",
    "aad_8bit",
    "backward_attention",
    "forward_attention",
    "normalized_backward_attention",
    "normalized_forward_attention",
    "seconds_per_frame",
)
#: Metric columns and how the report names them.
METRICS = {"psnr_db": "PSNR (dB)", "ssim": "SSIM", "aad_8bit": "AAD (8-bit)"}


def concat(parts: Iterable[Mapping[str, NDArray[Any]]]) -> Table:
    """Concatenate tables (or row blocks) with the same columns."""
    blocks = list(parts)
    if not blocks:
        return {}
    return {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}


def select(table: Table, **equal: Any) -> NDArray[np.bool_]:
    """Return the mask of rows whose columns equal the given values.

    ``None`` matches NaN (no noise, no cluster fraction); a tuple or list
    matches any of its values.
    """
    n = len(next(iter(table.values()))) if table else 0
    mask = np.ones(n, dtype=bool)
    for column, wanted in equal.items():
        values = table[column]
        options = wanted if isinstance(wanted, tuple | list) else (wanted,)
        hit = np.zeros(n, dtype=bool)
        for option in options:
            if option is None:
                hit |= np.isnan(values.astype(np.float64))
            else:
                hit |= values == option
        mask &= hit
    return mask


def scored(table: Table) -> NDArray[np.bool_]:
    """Rows that count in the averages: no HR frame at that instant, a truth."""
    if not table:
        return np.zeros(0, dtype=bool)
    truth = ~np.isnan(table["psnr_db"])
    return ~table["at_hr"] & truth


def pooled(table: Table, mask: NDArray[np.bool_]) -> dict[str, Any]:
    """Mean PSNR / SSIM / AAD over the scored rows in ``mask``.

    PSNR skips +inf frames (identical after 8-bit quantisation) and counts them.
    """
    keep = mask & scored(table)
    frames = int(keep.sum())
    if frames == 0:
        return {
            "frames": 0,
            "psnr_db": math.nan,
            "ssim": math.nan,
            "aad_8bit": math.nan,
        }
    psnr_db, n_inf = mean_finite(table["psnr_db"][keep])
    return {
        "frames": frames,
        "psnr_db": psnr_db,
        "psnr_inf_frames": n_inf,
        "ssim": float(np.mean(table["ssim"][keep])),
        "aad_8bit": float(np.mean(table["aad_8bit"][keep])),
    }


def _cell(value: Any) -> str:
    """Format one CSV cell: NaN empty, floats with 6 significant digits."""
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return ""
        return f"{value:.6g}"
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    return str(value)


def write_csv(table: Table, path: Path) -> Path:
    """Write the table as CSV (columns :data:`CSV_COLUMNS`, NaN as empty)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = [c for c in CSV_COLUMNS if c in table]
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(columns)
        for row in zip(*(table[c].tolist() for c in columns), strict=True):
            writer.writerow([_cell(v) for v in row])
    return path
