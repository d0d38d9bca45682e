"""The model adapter: EDVR-STF or EDVR as the engine's fuser.

:class:`ModelFuser` is the engine's view of a network (dtype, memory format,
which attention scores are the HR frames'), and :func:`network_fuser` is the
factory every network method in :mod:`~xfusion_bluesky.fusion.methods`
registers: it loads the weights with
:func:`~xfusion_bluesky.fusion.model.loader.load_network` and wraps them.
"""

from __future__ import annotations

import copy
import logging
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import torch

from xfusion_bluesky.fusion.model.edvr_stf import EDVR, SCALE, FusionOutput
from xfusion_bluesky.fusion.model.loader import load_network
from xfusion_bluesky.fusion.protocols import Features, FusedBatch

if TYPE_CHECKING:
    from xfusion_bluesky.fusion.methods import MethodSpec

__all__ = ["ModelFuser", "network_fuser"]

logger = logging.getLogger(__name__)


class ModelFuser:
    """EDVR-STF or EDVR as a :class:`~xfusion_bluesky.fusion.protocols.FeatureFuser`.

    :meth:`fuse_batch` runs the network on whole windows; :meth:`frame_features`
    and :meth:`fuse_features` run its per-frame and per-window parts, for the
    engine's feature cache.

    Parameters
    ----------
    model : EDVR or EDVRSTF
        The network, of ``spec.network``'s class; used as is when already on
        ``device`` in eval mode and no dtype/memory-format change is asked for,
        else a copy is prepared, so the caller's module is never changed.
    spec : MethodSpec
        The method: its name, and whether the network reads HR frames (then the
        HR attention scores are reported).
    weights_id : str
        sha256 of the weights as given (before any dtype cast).
    device : torch.device
        Where inference runs.
    dtype : torch.dtype or None
        None or float32: float32. float64: the model is cast. bfloat16/float16:
        autocast (weights stay float32).
    channels_last : bool
        Convert the weights to channels-last memory format (faster on GPUs).
    """

    size_multiple = SCALE

    def __init__(
        self,
        model: EDVR,
        *,
        spec: MethodSpec,
        weights_id: str,
        device: torch.device,
        dtype: torch.dtype | None,
        channels_last: bool,
    ) -> None:
        self.name = spec.name
        self.model_id: str | None = weights_id
        self.device = device
        self.dtype = dtype
        self.uses_hr = spec.uses_hr
        self.config: dict[str, Any] = {
            "class": type(model).__name__,
            **model.config,
            "source": getattr(model, "source", None),
        }
        self.model = _prepared(model, device, dtype, channels_last)

    def _autocast(self) -> AbstractContextManager[Any]:
        """Return the autocast context for a half-precision dtype, else a no-op."""
        if self.dtype in (torch.bfloat16, torch.float16):
            return torch.autocast(self.device.type, dtype=self.dtype)
        return nullcontext()

    def fuse_batch(self, lr: torch.Tensor, hr: torch.Tensor) -> FusedBatch:
        """Run the network on a batch of windows; see :class:`Fuser`."""
        if self.dtype == torch.float64:
            lr, hr = lr.double(), hr.double()
        with self._autocast():
            out = self.model(lr, hr)  # LR-only EDVR ignores hr
        return self._fused_batch(out)

    def frame_features(
        self, lr: torch.Tensor | None, hr: torch.Tensor | None
    ) -> tuple[Features, Features]:
        """Run the network's per-frame part; see :class:`FeatureFuser`."""
        if self.dtype == torch.float64:
            lr = None if lr is None else lr.double()
            hr = None if hr is None else hr.double()
        with self._autocast():
            return self.model.frame_features(lr, hr if self.uses_hr else None)

    def fuse_features(self, lr: Features, hr: Features) -> FusedBatch:
        """Run the network's per-window part; see :class:`FeatureFuser`."""
        with self._autocast():
            out = self.model.fuse_window_features(lr, hr if self.uses_hr else ())
        return self._fused_batch(out)

    def _fused_batch(self, out: FusionOutput) -> FusedBatch:
        """Return the network's output as float32 frames in [0, 1] and HR scores."""
        fused = out.fused.float().clamp_(0.0, 1.0)
        if self.uses_hr:
            # Attention order [LR t−s, LR t, LR t+s, HR before, HR after]
            # (docs/spec/edvr_stf.md §5).
            scores = out.attention.float()
            n_lr = self.model.num_frame
            return FusedBatch(fused, scores[:, n_lr], scores[:, n_lr + 1])
        nan = torch.full((fused.shape[0],), float("nan"), device=fused.device)
        return FusedBatch(fused, nan, nan.clone())


def _prepared(
    model: EDVR, device: torch.device, dtype: torch.dtype | None, channels_last: bool
) -> EDVR:
    """Return ``model`` ready for inference, copying it if anything must change."""
    params = list(model.parameters())
    on_device = all(_same_device(p.device, device) for p in params)
    cast = dtype == torch.float64 and any(p.dtype != torch.float64 for p in params)
    if on_device and not cast and not channels_last and not model.training:
        return model
    prepared = copy.deepcopy(model).eval()
    prepared.to(device=device)
    if channels_last:
        prepared.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if dtype == torch.float64:
        prepared.double()
    logger.debug("prepared a copy of the model on %s (dtype %s)", device, dtype)
    return prepared


def _same_device(actual: torch.device, wanted: torch.device) -> bool:
    """Tell whether a tensor on ``actual`` is on ``wanted`` (bare "cuda": current)."""
    if actual.type != wanted.type:
        return False
    if actual.type != "cuda":
        return True
    wanted_index: int | None = wanted.index
    if wanted_index is None:
        wanted_index = torch.cuda.current_device()
    return actual.index == wanted_index


def network_fuser(
    spec: MethodSpec,
    model: Any,
    *,
    device: torch.device,
    dtype: torch.dtype | None,
    channels_last: bool,
) -> ModelFuser:
    """Build the fuser of network method ``spec`` from ``fuse(model=...)``.

    ``model`` is resolved by :func:`~xfusion_bluesky.fusion.model.loader.load_network`
    (None: the shipped weights; a path: a cached checkpoint; a module: as is),
    which also refuses a network of the wrong class.
    """
    network, info = load_network(spec.name, model, device=device)
    if network is None:
        raise ValueError(f"method {spec.name!r} has no network to wrap")
    return ModelFuser(
        network,
        spec=spec,
        weights_id=info["sha256"],
        device=device,
        dtype=dtype,
        channels_last=channels_last,
    )
