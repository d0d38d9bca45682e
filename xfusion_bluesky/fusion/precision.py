"""Mixed precision: the default fusion dtype per device, and the float32 islands.

Under ``torch.autocast(device, dtype=torch.bfloat16)`` (what ``fuse(...,
dtype=torch.bfloat16)`` runs the network in) the convolutions run in bfloat16.
The deformable convolutions of PCD alignment must not: a sampling position of
~100 px keeps only ~0.5 px in bfloat16's 8-bit mantissa, so the sub-pixel part
that bilinear sampling reads is lost (25 dB against float32 once reported; 42–51 dB
with the shipped small model here).
:func:`float32_region` turns autocast off and :func:`to_float32` lifts the
inputs, so the offsets, sampling positions, interpolation weights and the
sampling itself run in float32 inside every
:class:`~xfusion_bluesky.fusion.model.deform_conv.DCNv2Pack`.

:func:`default_dtype` says which precision ``fuse()`` should use when none is
asked for, and why.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import overload

import torch

__all__ = [
    "HALF_DTYPES",
    "cpu_has_native_bf16",
    "default_dtype",
    "float32_region",
    "to_float32",
]

#: The dtypes ``fuse()`` runs under autocast rather than by casting the model.
HALF_DTYPES = (torch.bfloat16, torch.float16)

#: Device types whose autocast state :func:`float32_region` turns off.
_AUTOCAST_DEVICES = ("cpu", "cuda")


def default_dtype(device: str | torch.device) -> torch.dtype | None:
    """Return the precision ``fuse()`` uses on ``device`` when none is asked for.

    bfloat16 where the hardware computes it natively: CUDA GPUs that support it
    (tensor cores), and CPUs with AVX512-BF16 or AMX (oneDNN's bf16
    convolutions). float32 (None: no autocast) elsewhere, where bfloat16 would be
    emulated and slower.

    Why: the convolutions are where the time goes, and with the deformable
    convolutions' sampling kept in float32 (:func:`float32_region`) bfloat16
    changes the fused frames very little. Measured (2026-12-06) with the shipped
    small EDVR-STF + HR detail, PSNR against float32 (the bound is 45 dB): 65.7
    and 66.3 dB on the real radiographs (LR 33×40), 74–77 dB on three synthetic
    scenes (LR 32×48) and 83 dB at LR 100×256; without the float32 region, 42 dB
    and 51 dB (max error 0.18). Speed per fused frame at LR 100×256 on a 2-core
    AMD EPYC with AVX512-BF16 (no AMX), one thread: 1.5× float32's, 2.0× with
    channels-last weights (float32 channels-last: 1.3×).

    Parameters
    ----------
    device : str or torch.device

    Returns
    -------
    torch.dtype or None
        ``torch.bfloat16`` or None (float32).
    """
    kind = torch.device(device).type
    if kind == "cuda":
        native = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    else:
        native = kind == "cpu" and cpu_has_native_bf16()
    return torch.bfloat16 if native else None


def cpu_has_native_bf16() -> bool:
    """Tell whether this CPU has bfloat16 dot products (AVX512-BF16 or AMX)."""
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(torch.cpu, probe, None)
        with contextlib.suppress(Exception):  # private probes: absent in some builds
            if check is not None and check():
                return True
    return False


@contextlib.contextmanager
def float32_region() -> Iterator[None]:
    """Run the block with autocast off on every device where it is on.

    Tensors keep their dtype: pass the block's inputs through :func:`to_float32`
    so that it computes in float32 (a float64 model stays float64).
    """
    with contextlib.ExitStack() as stack:
        for kind in _AUTOCAST_DEVICES:
            if torch.is_autocast_enabled(kind):
                stack.enter_context(torch.autocast(kind, enabled=False))
        yield


@overload
def to_float32(tensor: torch.Tensor) -> torch.Tensor: ...
@overload
def to_float32(tensor: None) -> None: ...


def to_float32(tensor: torch.Tensor | None) -> torch.Tensor | None:
    """Return a bfloat16/float16 ``tensor`` cast to float32; anything else as is."""
    if tensor is not None and tensor.dtype in HALF_DTYPES:
        return tensor.float()
    return tensor
