"""Input checks of ``fuse()``: frame stacks, options, intensity range.

Every check raises where the input enters, naming the parameter, the value, what
was expected and the fix (STYLE §5); the engine calls these before it loads a
model or fuses a frame.
"""

from __future__ import annotations

import logging
import numbers
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.fusion.methods import method_spec
from xfusion_bluesky.fusion.model.edvr_stf import SCALE
from xfusion_bluesky.fusion.normalization import PERCENTILES, percentile_range

__all__ = [
    "DTYPES",
    "check_frame_pair",
    "check_frames",
    "check_options",
    "sequence_range",
]

logger = logging.getLogger(__name__)

#: Compute dtypes ``fuse(dtype=...)`` accepts (None means float32).
DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
#: Largest intensity span fusion takes: normalisation and the network work in
#: float32, where a wider span overflows to inf (1e300 gave all-inf frames).
MAX_SPAN = float(np.finfo(np.float32).max) / 2


def check_frames(frames: ArrayLike, name: str) -> NDArray[Any]:
    """Return ``frames`` as an ndarray after checking dtype, ndim, size, finiteness."""
    array = np.asarray(frames)
    if array.dtype.kind not in "iuf":
        raise TypeError(
            f"{name} must hold real numbers (integer or float); got dtype {array.dtype}"
        )
    if array.ndim != 3:
        raise InvalidInputError(
            f"{name} must be a (t, h, w) frame stack; got shape {array.shape}"
        )
    if array.size == 0:
        raise InvalidInputError(
            f"{name} is empty (shape {array.shape}): fusion needs frames"
        )
    # min/max find NaN and ±inf without a full-size boolean temporary.
    low, high = float(array.min()), float(array.max())
    if array.dtype.kind == "f" and not (np.isfinite(low) and np.isfinite(high)):
        raise InvalidInputError(
            f"{name} contains NaN or inf: replace or drop those frames first"
        )
    if max(abs(low), abs(high), high - low) > MAX_SPAN:
        raise InvalidInputError(
            f"{name} holds values in [{low:.3g}, {high:.3g}], beyond what fusion "
            f"computes in float32 (span and magnitude ≤ {MAX_SPAN:.3g}): scale "
            "the frames to camera counts first"
        )
    return array


def check_options(
    method: Any, device: Any, dtype: Any, batch_size: Any
) -> tuple[str, torch.device, int | None]:
    """Check the method name, device, dtype and batch size."""
    method = method_spec(method).name
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise InvalidInputError(f"device {device!r} is not a torch device") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(
            f"device {device!r} asked for, but CUDA is not available here: "
            "use device='cpu'"
        )
    if dtype is not None and not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype or None; got {dtype!r}")
    if dtype is not None and dtype not in DTYPES:
        raise InvalidInputError(f"dtype must be one of {DTYPES} or None; got {dtype}")
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
            raise TypeError(f"batch_size must be an int or None; got {batch_size!r}")
        if batch_size < 1:
            raise InvalidInputError(f"batch_size must be ≥ 1; got {batch_size}")
        batch_size = int(batch_size)
    return method, dev, batch_size


def sequence_range(
    frames: NDArray[Any], name: str, normalize: bool
) -> tuple[float, float] | None:
    """Return the percentile range of ``frames``, or check they are in [0, 1]."""
    if normalize:
        lo, hi = percentile_range(frames, *PERCENTILES)
        if hi <= lo:
            logger.warning(
                "%s is flat between its %.2f and %.2f percentiles (%g): it "
                "normalises to all zeros",
                name,
                *PERCENTILES,
                lo,
            )
        return lo, hi
    low, high = float(frames.min()), float(frames.max())
    if low < 0.0 or high > 1.0:
        raise InvalidInputError(
            f"with normalize=False, {name} must lie in [0, 1]; got values in "
            f"[{low:g}, {high:g}]: pass normalize=True or normalise it first"
        )
    return None


def check_frame_pair(lr: ArrayLike, hr: ArrayLike) -> tuple[NDArray[Any], NDArray[Any]]:
    """Return ``lr`` and ``hr`` as checked stacks, HR exactly 4× LR in size."""
    lr_arr = check_frames(lr, "lr")
    hr_arr = check_frames(hr, "hr")
    h, w = lr_arr.shape[1:]
    if hr_arr.shape[1:] != (SCALE * h, SCALE * w):
        raise InvalidInputError(
            f"hr frames must be exactly {SCALE}× the lr frames, ({SCALE * h}, "
            f"{SCALE * w}) for lr {lr_arr.shape}; got hr {hr_arr.shape}: register "
            "and crop them to the same field of view first"
        )
    return lr_arr, hr_arr
