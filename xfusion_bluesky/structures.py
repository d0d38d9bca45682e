"""Plain dataclasses for every layer (FusionWindow, FusionResult, …); no I/O.

Arrays are numpy; nothing here imports torch, so the catalog, callbacks and CLI can
describe fusion results without loading the model code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "AttentionSeries",
    "FrameScores",
    "FusionResult",
    "FusionWindow",
    "WindowPlan",
]


@dataclass(frozen=True)
class FusionWindow:
    """The model input for one reference frame, as indices into the LR and HR stacks.

    Attributes
    ----------
    ref_index : int
        The reference frame t (an LR frame index).
    lr_indices : tuple of int
        LR frames ``(t − s, t, t + s)``, clamped to ``0 … T − 1``.
    hr_before, hr_after : int
        Indices into the HR stack (0 … K − 1, not LR frame numbers) of the HR frames
        used as "before" (latest acquired at or before t) and "after" (earliest
        acquired after t).
    hr_at_reference : bool
        The HR frame before was acquired at the reference instant itself.
    hr_before_substituted : bool
        t precedes the first HR frame, so "before" is the first HR frame (after t).
    hr_after_substituted : bool
        t is at or after the last HR frame, so "after" is the last HR frame.
    lr_clamped : bool
        At least one LR neighbour was clamped at the sequence ends (it repeats t).
    """

    ref_index: int
    lr_indices: tuple[int, ...]
    hr_before: int
    hr_after: int
    hr_at_reference: bool
    hr_before_substituted: bool
    hr_after_substituted: bool
    lr_clamped: bool


@dataclass(frozen=True)
class WindowPlan:
    """Every reference frame's window, as (T, …) index and flag arrays.

    Built by :func:`xfusion_bluesky.fusion.windows.plan_windows`; row t describes
    reference frame t. Integer arrays are int64, flags bool.

    Attributes
    ----------
    lr_indices : ndarray, (T, 3) int64
        LR frames ``[t − s, t, t + s]`` clamped to ``0 … T − 1``.
    hr_before, hr_after : ndarray, (T,) int64
        Indices into the HR stack, see :class:`FusionWindow`.
    hr_at_reference, hr_before_substituted, hr_after_substituted, lr_clamped : \
ndarray, (T,) bool
        Flags, see :class:`FusionWindow`.
    hr_index : ndarray, (K,) int64
        LR frame index at which each HR frame was acquired.
    lr_separation : int
        The separation s in LR frame periods.
    """

    lr_indices: NDArray[np.int64]
    hr_before: NDArray[np.int64]
    hr_after: NDArray[np.int64]
    hr_at_reference: NDArray[np.bool_]
    hr_before_substituted: NDArray[np.bool_]
    hr_after_substituted: NDArray[np.bool_]
    lr_clamped: NDArray[np.bool_]
    hr_index: NDArray[np.int64]
    lr_separation: int

    @property
    def num_frames(self) -> int:
        """Number of reference frames T."""
        return int(self.lr_indices.shape[0])

    def window(self, ref_index: int) -> FusionWindow:
        """Return the window of reference frame ``ref_index`` (0 … T − 1)."""
        t = int(ref_index)
        if not 0 <= t < self.num_frames:
            raise IndexError(f"ref_index must be in 0 … {self.num_frames - 1}; got {t}")
        return FusionWindow(
            ref_index=t,
            lr_indices=tuple(int(i) for i in self.lr_indices[t]),
            hr_before=int(self.hr_before[t]),
            hr_after=int(self.hr_after[t]),
            hr_at_reference=bool(self.hr_at_reference[t]),
            hr_before_substituted=bool(self.hr_before_substituted[t]),
            hr_after_substituted=bool(self.hr_after_substituted[t]),
            lr_clamped=bool(self.lr_clamped[t]),
        )


@dataclass(frozen=True)
class FrameScores:
    """Raw attention scores of one fused frame, with the window that produced it.

    Attributes
    ----------
    backward_attention, forward_attention : float
        Raw (pre-sigmoid, spatially averaged) TSA score of the HR frame before / after
        the reference instant; NaN for methods without HR attention.
    window : FusionWindow
        The reference frame's window.
    passed_through : bool
        The frame is the HR frame taken at the reference instant itself, not the
        method's output (``fuse(hr_passthrough=True)``).
    """

    backward_attention: float
    forward_attention: float
    window: FusionWindow
    passed_through: bool = False


@dataclass
class FusionResult:
    """Fused frames of a whole sequence with their attention scores and provenance.

    Attributes
    ----------
    frames : ndarray, (T, 4h, 4w) float32
        Fused frames at every LR instant: in the HR input's intensity scale when
        fused with ``normalize=True``, in [0, 1] otherwise.
    backward_attention, forward_attention : ndarray, (T,) float64
        Raw scores of the HR frame before / after each reference frame; NaN for
        methods without HR attention (bicubic, EDVR).
    normalized_backward_attention, normalized_forward_attention : ndarray, (T,) \
float64
        Raw scores divided by the backward score at the preceding HR frame's own
        instant (the paper's normalisation, ``docs/spec/edvr_stf.md`` §5); NaN where it
        is undefined.
    hr_before, hr_after : ndarray, (T,) int64
        Indices into the HR stack of the HR frames used for each reference frame.
    hr_at_reference : ndarray, (T,) bool
        The HR frame before was acquired at the reference instant itself.
    hr_before_substituted, hr_after_substituted : ndarray, (T,) bool
        Before the first (after the last) HR frame the other side's nearest HR frame
        stood in.
    lr_clamped : ndarray, (T,) bool
        An LR neighbour was clamped at the sequence ends.
    hr_passed_through : ndarray, (T,) bool
        The frame is the HR frame taken at its own instant, returned as is.
    method : str
        ``"edvr_stf"``, ``"edvr"``, ``"bicubic"``, …
    model_id : str or None
        sha256 of the weights; None for methods without weights.
    params : dict
        Everything needed to reproduce the result (JSON-serialisable).
    """

    frames: NDArray[np.float32]
    backward_attention: NDArray[np.float64]
    forward_attention: NDArray[np.float64]
    normalized_backward_attention: NDArray[np.float64]
    normalized_forward_attention: NDArray[np.float64]
    hr_before: NDArray[np.int64]
    hr_after: NDArray[np.int64]
    hr_at_reference: NDArray[np.bool_]
    hr_before_substituted: NDArray[np.bool_]
    hr_after_substituted: NDArray[np.bool_]
    lr_clamped: NDArray[np.bool_]
    hr_passed_through: NDArray[np.bool_]
    method: str
    model_id: str | None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        """Number of fused frames T."""
        return int(self.frames.shape[0])


@dataclass(frozen=True)
class AttentionSeries:
    """One burst's attention scores against time, as a derived run stores them.

    The catalog reads it from a derived run and the figures draw it, so it lives
    here, below both.

    Attributes
    ----------
    times_us : ndarray, (T,)
        Each fused frame's time after the trigger, µs.
    backward, forward : ndarray, (T,)
        Raw TSA scores of the HR frame before / after (NaN for baselines).
    normalized_backward, normalized_forward : ndarray, (T,)
        The same, normalised as in the paper (§7.1.5); NaN where undefined.
    hr_times_us : ndarray, (K,)
        When the HS frames used were taken, µs.
    label : str
        The method, for the legend.
    """

    times_us: np.ndarray
    backward: np.ndarray
    forward: np.ndarray
    normalized_backward: np.ndarray
    normalized_forward: np.ndarray
    hr_times_us: np.ndarray
    label: str = ""
