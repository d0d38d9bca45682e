"""Per-burst cache of per-frame features: each frame once, dropped when done.

In a burst every LR frame takes part in three windows and every HR frame in up to
~20, but a network's first convolution, extraction blocks and pyramid see one frame
at a time (:meth:`~xfusion_bluesky.fusion.model.edvr_stf.EDVR.frame_features`).
:class:`FeatureCache` computes them once per frame, in one batched call per batch of
windows, and, since windows come in time order, drops a frame's features after the
last window that uses it, so it holds a few frames whatever the burst's length.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray

from xfusion_bluesky.fusion.protocols import Features
from xfusion_bluesky.structures import WindowPlan

__all__ = ["FeatureCache", "FrameKind"]

logger = logging.getLogger(__name__)

FrameKind = Literal["lr", "hr"]
#: Per-frame features of some LR and some HR frames (either may be None).
Compute = Callable[
    [torch.Tensor | None, torch.Tensor | None], tuple[Features, Features]
]
#: Normalised, padded frames of one kind, (n, 1, H, W), on the device.
Load = Callable[[FrameKind, NDArray[np.int64]], torch.Tensor]


class FeatureCache:
    """Per-frame features of one burst, keyed by (LR or HR, frame index).

    Parameters
    ----------
    plan : WindowPlan
        Every reference frame's window: which LR and HR frames it uses.
    compute : callable
        ``compute(lr, hr)`` → per-frame features of LR frames (n, 1, h, w) and
        HR frames (k, 1, 4h, 4w) (either may be None), as
        :meth:`~xfusion_bluesky.fusion.protocols.FeatureFuser.frame_features`.
    load : callable
        ``load(kind, indices)`` → those frames, normalised and padded, on the
        device.
    uses_hr : bool
        Compute HR features too; False for LR-only networks.

    Notes
    -----
    Windows must be asked for in time order (reference frames ascending), and
    :meth:`release` called after each batch is fused: a frame's features are then
    dropped after the last window that uses it, and never computed twice.
    """

    def __init__(
        self, plan: WindowPlan, compute: Compute, load: Load, *, uses_hr: bool
    ) -> None:
        self._compute, self._load = compute, load
        self._rows: dict[FrameKind, NDArray[np.int64]] = {
            "lr": plan.lr_indices,
            "hr": np.stack([plan.hr_before, plan.hr_after], axis=1),
        }
        self._kinds: tuple[FrameKind, ...] = ("lr", "hr") if uses_hr else ("lr",)
        self._last_use = {kind: _last_use(rows) for kind, rows in self._rows.items()}
        self._entries: dict[tuple[FrameKind, int], Features] = {}

    def __len__(self) -> int:
        """Return the number of frames whose features are held."""
        return len(self._entries)

    def window_features(self, refs: NDArray[np.int64]) -> tuple[Features, Features]:
        """Return the stacked features of the windows of reference frames ``refs``.

        Computes the frames not held yet, all in one call.

        Returns
        -------
        lr, hr : tuple of Tensor
            Each (b, 3, …) for the LR frames [t − s, t, t + s] and (b, 2, …) for
            the HR frames [before, after]; ``hr`` is empty without HR frames.
        """
        rows = {kind: self._rows[kind][refs] for kind in self._kinds}
        self._fill(rows)
        lr = self._stack("lr", rows["lr"])
        hr = self._stack("hr", rows["hr"]) if "hr" in rows else ()
        return lr, hr

    def release(self, through: int) -> None:
        """Drop the frames no window after reference frame ``through`` uses."""
        done = [
            key for key in self._entries if self._last_use[key[0]][key[1]] <= through
        ]
        for key in done:
            del self._entries[key]

    def _fill(self, rows: dict[FrameKind, NDArray[np.int64]]) -> None:
        """Compute the features of every frame in ``rows`` not held yet."""
        missing = {
            kind: np.array(
                [j for j in np.unique(r) if (kind, int(j)) not in self._entries],
                dtype=np.int64,
            )
            for kind, r in rows.items()
        }
        frames = {
            kind: self._load(kind, index) if index.size else None
            for kind, index in missing.items()
        }
        if all(f is None for f in frames.values()):
            return
        lr_features, hr_features = self._compute(frames["lr"], frames.get("hr"))
        computed = {"lr": lr_features, "hr": hr_features}
        for kind, index in missing.items():
            for i, j in enumerate(index.tolist()):
                row = tuple(x[i] for x in computed[kind])
                if kind == "hr":
                    # An HR frame outlives the batch it was computed in by ~20
                    # windows: a copy lets that batch's LR rows go when they are done.
                    row = tuple(x.clone() for x in row)
                self._entries[kind, j] = row
        logger.debug(
            "computed features of LR %s, HR %s; holding %d frames",
            missing["lr"].tolist(),
            missing.get("hr", np.empty(0)).tolist(),
            len(self._entries),
        )

    def _stack(self, kind: FrameKind, rows: NDArray[np.int64]) -> Features:
        """Stack the held features of frames ``rows`` (b, k) into (b, k, …) tensors."""
        entries = [self._entries[kind, int(j)] for j in rows.ravel()]
        return tuple(
            torch.stack([entry[p] for entry in entries]).view(
                *rows.shape, *entries[0][p].shape
            )
            for p in range(len(entries[0]))
        )


def _last_use(rows: NDArray[np.int64]) -> NDArray[np.int64]:
    """Return, per frame index, the last reference frame whose window uses it."""
    last = np.full(int(rows.max()) + 1, -1, dtype=np.int64)
    refs = np.repeat(np.arange(rows.shape[0]), rows.shape[1])
    np.maximum.at(last, rows.ravel(), refs)
    return last
