"""Fuser protocol met by the model and every baseline.

The engine builds windows, normalises, pads and batches; a fuser only turns one
batch of windows into fused frames and the two HR attention scores. A new method
(the Bayesian baseline, say) plugs in by meeting :class:`Fuser` and registering a
:class:`~xfusion_bluesky.fusion.methods.MethodSpec` with its factory in
:data:`xfusion_bluesky.fusion.methods.METHODS`. A method that calibrates
on co-temporal LR/HR pairs also meets :class:`PairedFuser`, and the engine then
gives it the LR frames taken with the HR frames instead of the LR window. A
network whose per-frame work does not depend on the window also meets
:class:`FeatureFuser`, and the engine then computes each frame's features once per
burst (:mod:`~xfusion_bluesky.fusion.features`).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch

__all__ = ["FeatureFuser", "FusedBatch", "Fuser", "FuserFactory", "PairedFuser"]

#: Per-frame tensors of one frame kind, frames along dim 0 (windows × frames along
#: dims 0 and 1 once stacked); what they hold is the fuser's business.
Features = tuple[torch.Tensor, ...]


class FusedBatch(NamedTuple):
    """One batch of fused frames and their HR attention scores.

    Attributes
    ----------
    fused : Tensor, (b, 1, 4h, 4w) float32
        Fused frames in normalised space, clipped to [0, 1].
    backward_attention, forward_attention : Tensor, (b,) float32
        Raw scores of the HR frame before / after the reference; NaN where the
        method has none.
    """

    fused: torch.Tensor
    backward_attention: torch.Tensor
    forward_attention: torch.Tensor


@runtime_checkable
class Fuser(Protocol):
    """What the engine needs from a fusion method.

    Attributes
    ----------
    name : str
        The method name, as passed to ``fuse(method=...)``.
    model_id : str or None
        sha256 of the weights; None for methods without weights.
    size_multiple : int
        LR height and width must be multiples of this (4 for the networks, 1 for
        bicubic); the engine pads (reflect) and crops back.
    config : dict
        JSON-serialisable settings that reproduce the method (model config, …).
    """

    name: str
    model_id: str | None
    size_multiple: int
    config: dict[str, Any]

    def fuse_batch(self, lr: torch.Tensor, hr: torch.Tensor) -> FusedBatch:
        """Fuse a batch of windows.

        The engine calls this under ``torch.inference_mode()`` with batches in time
        order (reference frames ascending, each once), so a stateful method (a
        Kalman filter, say) may carry state from one call to the next. A call that
        raises ``torch.OutOfMemoryError`` or ``MemoryError`` is repeated with the
        first half of the same frames, so such a method must not keep state from a
        call that raised.

        Parameters
        ----------
        lr : Tensor, (b, 3, 1, h, w) float32 in [0, 1]
            LR frames [t − s, t, t + s], on the engine's device.
        hr : Tensor, (b, 2, 1, 4h, 4w) float32 in [0, 1]
            HR frames [before, after].

        Returns
        -------
        FusedBatch
        """
        ...


@runtime_checkable
class PairedFuser(Fuser, Protocol):
    """A fuser that needs the LR frames acquired with its HR frames.

    The Bayesian baseline calibrates its degradation model on the LR/HR pairs at
    the HR instants (``docs/spec/baselines_and_metrics.md`` §0), which the EDVR-STF
    window ``[t − s, t, t + s]`` does not hold. For a fuser that has this method
    the engine calls it instead of :meth:`Fuser.fuse_batch`.
    """

    def fuse_pairs(
        self, lr: torch.Tensor, hr: torch.Tensor, instants: torch.Tensor
    ) -> FusedBatch:
        """Fuse a batch of reference frames from co-temporal LR/HR pairs.

        Parameters
        ----------
        lr : Tensor, (b, 3, 1, h, w) float32 in [0, 1]
            LR frames at ``[t_a, t, t_b]``: the instants of the HR frame before,
            of the reference, of the HR frame after.
        hr : Tensor, (b, 2, 1, 4h, 4w) float32 in [0, 1]
            HR frames [before, after], as for :meth:`Fuser.fuse_batch`.
        instants : Tensor, (b, 3) int64, on the CPU
            The LR frame indices ``[t_a, t, t_b]``. Before the first (after the
            last) HR frame both HR frames are the same one and ``t_a = t_b``.

        Returns
        -------
        FusedBatch
        """
        ...


@runtime_checkable
class FeatureFuser(Fuser, Protocol):
    """A fuser that splits its work into per-frame and per-window parts.

    ``fuse_features(stack(frame_features(frames)))`` must equal
    :meth:`Fuser.fuse_batch` of the same windows, so that the engine may compute
    each frame's features once and reuse them in every window the frame takes
    part in.

    Attributes
    ----------
    uses_hr : bool
        The fuser reads HR frames; when False the engine passes no HR frames to
        :meth:`frame_features` and no HR features to :meth:`fuse_features`.
    """

    uses_hr: bool

    def frame_features(
        self, lr: torch.Tensor | None, hr: torch.Tensor | None
    ) -> tuple[Features, Features]:
        """Compute the per-frame features of some LR and HR frames.

        Called under ``torch.inference_mode()``.

        Parameters
        ----------
        lr : Tensor, (n, 1, h, w) float32 in [0, 1], or None
            LR frames, padded as for :meth:`Fuser.fuse_batch`.
        hr : Tensor, (k, 1, 4h, 4w) float32 in [0, 1], or None
            HR frames.

        Returns
        -------
        lr_features, hr_features : tuple of Tensor
            Each tensor holds one row per frame along dim 0, in the order given;
            empty tuples for frames not given.
        """
        ...

    def fuse_features(self, lr: Features, hr: Features) -> FusedBatch:
        """Fuse a batch of windows from their frames' stacked features.

        Parameters
        ----------
        lr : tuple of Tensor, each (b, 3, …)
            :meth:`frame_features` rows of the LR frames [t − s, t, t + s].
        hr : tuple of Tensor, each (b, 2, …)
            Rows of the HR frames [before, after]; empty without ``uses_hr``.

        Returns
        -------
        FusedBatch
        """
        ...


class FuserFactory(Protocol):
    """Build a :class:`Fuser` for one ``fuse()`` call."""

    def __call__(
        self,
        model: Any,
        *,
        device: torch.device,
        dtype: torch.dtype | None,
        channels_last: bool,
    ) -> Fuser:
        """Return a fuser; ``model`` is what the caller passed to ``fuse()``."""
        ...
