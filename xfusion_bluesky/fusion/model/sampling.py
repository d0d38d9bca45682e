"""Bilinear sampling at fractional positions: the deformable convolution's inner loop.

Two implementations, chosen process-wide with :func:`sampling_implementation`:
``"reference"`` (written for clarity: four masked gathers of the whole input)
and ``"fast"`` (the default: a zero-padded input needs no masks, and the four
corners are gathered and weighted in cache-sized chunks). They perform the same
float operations in the same order, so their outputs are equal, bit for bit.
Both follow torchvision's border rule (docs/spec/edvr_stf.md §3.2).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Literal

import torch
from torch.nn import functional as F

__all__ = [
    "SAMPLINGS",
    "Sampling",
    "current_sampling",
    "positions",
    "sample_fast",
    "sample_reference",
    "sampling_implementation",
]

Sampling = Literal["fast", "reference"]
SAMPLINGS: tuple[Sampling, ...] = ("fast", "reference")

#: Output positions per step of the fast sampling: a chunk's gathered corners stay
#: in the L2 cache while they are weighted and summed (cg = 8 channels: 0.5 MB).
_CHUNK = 16_384

#: The sampling in use, process-wide (a fusion may run on a worker thread).
_sampling: list[Sampling] = ["fast"]
_sampling_lock = threading.Lock()


@contextlib.contextmanager
def sampling_implementation(name: Sampling) -> Iterator[None]:
    """Use the ``"fast"`` or ``"reference"`` pure-PyTorch sampling inside the block.

    Process-wide, for tests and benchmarks that time both in one process; the
    previous choice comes back on exit. torchvision's op, where it imports, is
    used either way.

    Parameters
    ----------
    name : {"fast", "reference"}

    Raises
    ------
    ValueError
        ``name`` is neither.
    """
    if name not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}; got {name!r}")
    with _sampling_lock:
        previous, _sampling[0] = _sampling[0], name
    try:
        yield
    finally:
        with _sampling_lock:
            _sampling[0] = previous


def current_sampling() -> Sampling:
    """Return the pure-PyTorch sampling in use (see :func:`sampling_implementation`)."""
    return _sampling[0]


def positions(
    offset: torch.Tensor,
    kernel: tuple[int, int],
    stride: int,
    padding: int,
    dilation: int,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return each sample's (y, x) in input pixels, (b, g, taps·h_out·w_out) each."""
    kh, kw = kernel
    b, _, h_out, w_out = offset.shape
    taps = kh * kw
    groups = offset.shape[1] // (2 * taps)
    dev = offset.device
    # Regular grid of each tap, (taps, h_out, w_out), then add the learned offsets.
    ki = torch.arange(kh, device=dev, dtype=dtype).repeat_interleave(kw)
    kj = torch.arange(kw, device=dev, dtype=dtype).repeat(kh)
    oy = torch.arange(h_out, device=dev, dtype=dtype) * stride - padding
    ox = torch.arange(w_out, device=dev, dtype=dtype) * stride - padding
    base_y = oy.view(1, -1, 1) + dilation * ki.view(-1, 1, 1)
    base_x = ox.view(1, 1, -1) + dilation * kj.view(-1, 1, 1)
    offset = offset.view(b, groups, taps, 2, h_out, w_out)
    pos_y = (base_y + offset[:, :, :, 0]).reshape(b, groups, -1)
    pos_x = (base_x + offset[:, :, :, 1]).reshape(b, groups, -1)
    return pos_y, pos_x


def sample_reference(
    x: torch.Tensor, pos_y: torch.Tensor, pos_x: torch.Tensor
) -> torch.Tensor:
    """Bilinearly sample ``x`` at fractional positions with torchvision's border rule.

    The reference sampling.

    Parameters
    ----------
    x : Tensor, (b, g, cg, h, w)
        Input split into ``g`` deformable groups of ``cg`` channels.
    pos_y, pos_x : Tensor, (b, g, p)
        Sampling positions in pixels, one per (group, tap × output pixel).

    Returns
    -------
    Tensor, (b, g, cg, p)
    """
    b, g, cg, h, w = x.shape
    flat = x.reshape(b, g, cg, h * w)
    y0 = torch.floor(pos_y)
    x0 = torch.floor(pos_x)
    ly, lx = pos_y - y0, pos_x - x0
    hy, hx = 1 - ly, 1 - lx
    y0i, x0i = y0.long(), x0.long()
    # A sample whose position lies on or beyond one pixel outside the image is zero.
    inside = (pos_y > -1) & (pos_y < h) & (pos_x > -1) & (pos_x < w)
    value = torch.zeros((b, g, cg, pos_y.shape[-1]), dtype=x.dtype, device=x.device)
    corners = (
        (y0i, x0i, hy * hx),
        (y0i, x0i + 1, hy * lx),
        (y0i + 1, x0i, ly * hx),
        (y0i + 1, x0i + 1, ly * lx),
    )
    for cy, cx, weight in corners:
        valid = inside & (cy >= 0) & (cy <= h - 1) & (cx >= 0) & (cx <= w - 1)
        index = (cy.clamp(0, h - 1) * w + cx.clamp(0, w - 1)).unsqueeze(2)
        corner = flat.gather(3, index.expand(b, g, cg, index.shape[-1]))
        corner = corner * valid.unsqueeze(2).to(x.dtype)
        value = value + weight.unsqueeze(2) * corner
    return value


def _corners(
    py: torch.Tensor,
    px: torch.Tensor,
    size: tuple[int, int],
    wp: int,
    whole: bool,
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Return the four corners' bilinear weights and flat indices in the padded image.

    ``py``, ``px`` (n_groups, p); ``size`` the image's (h, w), ``wp`` the padded
    row length; int64 indices where ``whole`` (gather), else int32 (index_select).
    """
    h, w = size
    inside = (py > -1) & (py < h) & (px > -1) & (px < w)
    py, px = py.where(inside, -1.0), px.where(inside, -1.0)
    y0, x0 = py.floor(), px.floor()
    ly, lx = py - y0, px - x0
    hy, hx = 1 - ly, 1 - lx
    weights = (hy * hx, hy * lx, ly * hx, ly * lx)
    # Flat index of the top-left corner, exact in float while the padded image has
    # fewer than 2**24 pixels (float64: 2**53); index_select is faster with int32.
    if (h + 3) * wp < 2**24 or py.dtype == torch.float64:
        first = torch.add(x0, y0, alpha=wp).to(torch.int64 if whole else torch.int32)
    else:
        first = y0.long() * wp + x0.long()
    steps = (wp + 1, wp + 2, 2 * wp + 1, 2 * wp + 2)  # the pad shifts by one row, col
    return weights, tuple(first + step for step in steps)


def sample_fast(
    x: torch.Tensor,
    pos_y: torch.Tensor,
    pos_x: torch.Tensor,
    mask: torch.Tensor | None,
) -> torch.Tensor:
    """Return ``sample_reference(x, pos_y, pos_x) · mask``, computed faster.

    Same arguments as :func:`sample_reference`, plus ``mask`` (b, g, 1, p) or None;
    returns (b, g, cg, p).
    """
    b, g, cg, h, w = x.shape
    n = pos_y.shape[-1]
    wp = w + 3
    # One op per corner over all groups where autograd needs it or kernel launches
    # cost more than memory traffic (GPUs); else cache-sized chunks, in place.
    whole = x.device.type != "cpu" or (
        torch.is_grad_enabled()
        and any(t is not None and t.requires_grad for t in (x, pos_y, pos_x, mask))
    )
    # One zero row and column before the image and two after: a position in
    # (-1, size) has all four corners in the padded image, and those outside the
    # image read zero (torchvision's rule) without any mask. A position outside
    # (or NaN) moves to (-1, -1), whose corners read zero or weigh zero, and no
    # gradient reaches it; inside, the arithmetic is the reference's.
    padded = F.pad(x.reshape(b * g, cg, h, w), (1, 2, 1, 2))
    padded = padded.reshape(b * g, cg, (h + 3) * wp)
    weights, index = _corners(
        pos_y.reshape(b * g, n), pos_x.reshape(b * g, n), (h, w), wp, whole
    )
    scale = None if mask is None else mask.reshape(b * g, 1, n)
    if whole:
        terms = (
            weight.unsqueeze(1) * padded.gather(2, idx.unsqueeze(1).expand(-1, cg, -1))
            for weight, idx in zip(weights, index, strict=True)
        )
        value = next(terms)
        for term in terms:
            value = value + term
        return (value if scale is None else value * scale).view(b, g, cg, n)
    cols = x.new_empty(b * g, cg, n)
    acc = x.new_empty(cg, min(n, _CHUNK))
    term = torch.empty_like(acc)
    for i in range(b * g):
        for lo in range(0, n, _CHUNK):
            hi = min(lo + _CHUNK, n)
            a, t = acc[:, : hi - lo], term[:, : hi - lo]
            torch.index_select(padded[i], 1, index[0][i, lo:hi], out=a)
            a.mul_(weights[0][i, lo:hi])
            for weight, idx in zip(weights[1:], index[1:], strict=True):
                torch.index_select(padded[i], 1, idx[i, lo:hi], out=t)
                a.add_(t.mul_(weight[i, lo:hi]))
            out = cols[i, :, lo:hi]
            if scale is None:
                out.copy_(a)
            else:
                torch.mul(a, scale[i, :, lo:hi], out=out)
    return cols.view(b, g, cg, n)
