"""Method registry: the model adapter and the factory of every fusion method.

:data:`METHODS` maps a method name to a
:class:`~xfusion_bluesky.fusion.protocols.FuserFactory`; :class:`ModelFuser` is the
engine's view of an EDVR-STF or EDVR network (dtype, memory format, which scores
are backward/forward), and the model factories turn ``fuse(model=...)`` (None, a
checkpoint path or a built module) into one.
"""

from __future__ import annotations

import copy
import logging
import os
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.fusion.baselines.bayesian import BayesianFuser
from xfusion_bluesky.fusion.baselines.bicubic import BicubicFuser
from xfusion_bluesky.fusion.model.checkpoint import (
    default_model_path,
    load_model,
    model_id,
)
from xfusion_bluesky.fusion.model.edvr_stf import EDVR, EDVRSTF, SCALE
from xfusion_bluesky.fusion.protocols import FusedBatch, Fuser, FuserFactory

__all__ = ["METHODS", "ModelFuser"]

logger = logging.getLogger(__name__)


class ModelFuser:
    """EDVR-STF or EDVR as a :class:`~xfusion_bluesky.fusion.protocols.Fuser`.

    Parameters
    ----------
    model : EDVR or EDVRSTF
        The network; used as is when already on ``device`` in eval mode and no
        dtype/memory-format change is asked for, else a copy is prepared, so the
        caller's module is never changed.
    name : str
        Method name (``"edvr_stf"`` or ``"edvr"``).
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
        name: str,
        weights_id: str,
        device: torch.device,
        dtype: torch.dtype | None,
        channels_last: bool,
    ) -> None:
        self.name = name
        self.model_id: str | None = weights_id
        self.device = device
        self.dtype = dtype
        self.uses_hr = isinstance(model, EDVRSTF)
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
            out = self.model(lr, hr) if self.uses_hr else self.model(lr)
        fused = out.fused.float().clamp_(0.0, 1.0)
        if self.uses_hr:
            # Attention order [LR t−s, LR t, LR t+s, HR before, HR after] (spec §5).
            scores = out.attention.float()
            n_lr = self.model.num_frame
            return FusedBatch(fused, scores[:, n_lr], scores[:, n_lr + 1])
        nan = torch.full((lr.shape[0],), float("nan"), device=fused.device)
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


def _model_factory(method: str, cls: type[EDVR]) -> FuserFactory:
    """Return the factory of the model-backed method ``method`` (class ``cls``)."""

    def create(
        model: Any,
        *,
        device: torch.device,
        dtype: torch.dtype | None,
        channels_last: bool,
    ) -> Fuser:
        network, weights_id = _resolve_model(model, method, cls, device)
        return ModelFuser(
            network,
            name=method,
            weights_id=weights_id,
            device=device,
            dtype=dtype,
            channels_last=channels_last,
        )

    return create


def _resolve_model(
    model: Any, method: str, cls: type[EDVR], device: torch.device
) -> tuple[EDVR, str]:
    """Turn ``fuse(model=...)`` into a network of class ``cls`` and its weights id."""
    if model is None:
        path = default_model_path(method)
        if not path.is_file():
            raise FileNotFoundError(
                f"no model given for method {method!r} and its default weights "
                f"{path} do not exist: make them with `xfusion-bluesky train`, pass "
                "model=<path to a .pth checkpoint>, or use method='bicubic'"
            )
        model = path
    if isinstance(model, str | os.PathLike):
        network = load_model(model, device=device)
        if not _is_class(network, cls):
            raise InvalidInputError(
                f"model file {os.fspath(model)!r} holds a {type(network).__name__}, "
                f"but method {method!r} needs a {cls.__name__}: pass matching weights "
                f"or method={_method_of(network)!r}"
            )
        return network, getattr(network, "model_id", None) or model_id(network)
    if not isinstance(model, EDVR):
        raise TypeError(
            f"model must be a checkpoint path, an EDVR/EDVRSTF module or None; "
            f"got {type(model).__name__}"
        )
    if not _is_class(model, cls):
        raise TypeError(
            f"method {method!r} needs a {cls.__name__} model; got "
            f"{type(model).__name__}: use method={_method_of(model)!r}"
        )
    if model.num_frame != 3:
        raise InvalidInputError(
            f"model fuses {model.num_frame} LR frames; windows hold 3 "
            "(t − s, t, t + s): pass a model built with num_frame=3"
        )
    return model, model_id(model)


def _is_class(model: EDVR, cls: type[EDVR]) -> bool:
    """Tell whether ``model`` is exactly an EDVRSTF / exactly an LR-only EDVR."""
    return isinstance(model, EDVRSTF) == issubclass(cls, EDVRSTF)


def _method_of(model: EDVR) -> str:
    """Return the method name that fits ``model``."""
    return "edvr_stf" if isinstance(model, EDVRSTF) else "edvr"


#: Fusion methods by name. A new method adds a factory here (see ``protocols``).
METHODS: dict[str, FuserFactory] = {
    "edvr_stf": _model_factory("edvr_stf", EDVRSTF),
    "edvr": _model_factory("edvr", EDVR),
    "bicubic": BicubicFuser.create,
    "bayesian": BayesianFuser.create,
}
