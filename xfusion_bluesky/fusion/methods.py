"""Method registry: what each fusion method is, needs and builds, said once.

Every other layer (the pipeline, evaluation, training, the CLI, the benchmarks)
asks :data:`METHODS` or :func:`method_spec` whether a method takes HR frames,
honours ``lr_separation``, has weights and which network class they hold, instead
of keeping its own list. A new method is one more :class:`MethodSpec` here and a
:class:`~xfusion_bluesky.fusion.protocols.Fuser` that meets the protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.fusion.baselines.bayesian import BayesianFuser
from xfusion_bluesky.fusion.baselines.bicubic import BicubicFuser
from xfusion_bluesky.fusion.fusers import network_fuser
from xfusion_bluesky.fusion.model.detail import EDVRSTFDetail
from xfusion_bluesky.fusion.model.edvr_stf import EDVR, EDVRSTF
from xfusion_bluesky.fusion.protocols import Fuser, FuserFactory

__all__ = ["DEFAULT_METHOD", "METHODS", "METHOD_NAMES", "MethodSpec", "method_spec"]


@dataclass(frozen=True)
class MethodSpec:
    """One fusion method: its names, what it takes, and how it is built.

    Attributes
    ----------
    name : str
        The name ``fuse(method=...)``, the CLI and the catalog use (``"edvr_stf"``).
    label : str
        The name in tables and figures (``"EDVR-STF"``).
    uses_hr : bool
        The fused frame depends on the HR frames (so the HR separation matters
        and the method reports HR attention scores or uses HR pixels).
    uses_lr_separation : bool
        The method reads the LR neighbours ``t ± s``, so ``lr_separation`` changes
        its result.
    default_weights : str or None
        File name of the shipped weights under ``models/``; None for a method
        without weights.
    create : FuserFactory
        Builds the method's :class:`~xfusion_bluesky.fusion.protocols.Fuser` for
        one ``fuse()`` call.
    network : type or None
        The network class its weights must hold (:class:`EDVRSTF`, :class:`EDVR`);
        None for a method without weights.
    """

    name: str
    label: str
    uses_hr: bool
    uses_lr_separation: bool
    default_weights: str | None
    create: FuserFactory
    network: type[EDVR] | None

    @property
    def trainable(self) -> bool:
        """Tell whether the method has a network to train (and weights to load)."""
        return self.network is not None


def _network_method(
    name: str, label: str, *, uses_hr: bool, weights: str, network: type[EDVR]
) -> MethodSpec:
    """Return the spec of a network method; its factory loads weights by ``name``."""

    def create(
        model: Any,
        *,
        device: torch.device,
        dtype: torch.dtype | None,
        channels_last: bool,
    ) -> Fuser:
        return network_fuser(
            spec, model, device=device, dtype=dtype, channels_last=channels_last
        )

    spec = MethodSpec(
        name=name,
        label=label,
        uses_hr=uses_hr,
        uses_lr_separation=True,
        default_weights=weights,
        create=create,
        network=network,
    )
    return spec


_SPECS = (
    _network_method(
        "edvr_stf",
        "EDVR-STF",
        uses_hr=True,
        weights="edvr_stf_small.pth",
        network=EDVRSTF,
    ),
    _network_method(
        "edvr", "EDVR", uses_hr=False, weights="edvr_small.pth", network=EDVR
    ),
    # Bicubic reads only the reference LR frame t, so neither s nor HR matters.
    MethodSpec(
        name="bicubic",
        label="bicubic",
        uses_hr=False,
        uses_lr_separation=False,
        default_weights=None,
        create=BicubicFuser.create,
        network=None,
    ),
    # Bayesian fusion takes the LR frames at the HR instants, not t ± s.
    MethodSpec(
        name="bayesian",
        label="Bayesian",
        uses_hr=True,
        uses_lr_separation=False,
        default_weights=None,
        create=BayesianFuser.create,
        network=None,
    ),
    # Beyond the paper (listed last, so the paper's methods keep their order):
    # EDVR-STF plus an HR-resolution head that copies the HR frames' detail where
    # they match the reference (fusion/model/detail.py).
    _network_method(
        "edvr_stf_detail",
        "EDVR-STF + HR detail",
        uses_hr=True,
        weights="edvr_stf_detail_small.pth",
        network=EDVRSTFDetail,
    ),
)

#: What ``fuse()`` uses when no method is named, and what scans request
#: (``plans.dual_camera.FUSION_METHOD``): EDVR-STF with its HR-detail head, ahead of
#: the paper's EDVR-STF in 47 of the 48 held-out settings of docs/quality.md (the
#: last: −0.01 dB). ``"edvr_stf"`` stays the faithful network.
DEFAULT_METHOD = "edvr_stf_detail"

#: Fusion methods by name, in the order tables and figures list them.
METHODS: dict[str, MethodSpec] = {spec.name: spec for spec in _SPECS}

#: Method names in registry order.
METHOD_NAMES: tuple[str, ...] = tuple(METHODS)


def method_spec(name: str) -> MethodSpec:
    """Return the registered method called ``name``.

    Parameters
    ----------
    name : str
        A method name: ``"edvr_stf"``, ``"edvr"``, ``"bicubic"``, ``"bayesian"``
        or ``"edvr_stf_detail"``.

    Returns
    -------
    MethodSpec

    Raises
    ------
    TypeError
        ``name`` is not a str.
    InvalidInputError
        No method has that name; the message lists the choices.
    """
    if not isinstance(name, str):
        raise TypeError(f"method must be a str; got {type(name).__name__}")
    try:
        return METHODS[name]
    except KeyError:
        raise InvalidInputError(
            f"unknown method {name!r}; choose one of {', '.join(METHODS)}"
        ) from None
