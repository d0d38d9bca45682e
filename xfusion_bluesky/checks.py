"""Input checks shared by every layer: finite real frame stacks and scalars.

Public functions check their arrays where they enter, with errors that name the
argument, the bad value and the fix. This module sits at the bottom of the
layers so that the scene generator and the fusion engine share one check.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from xfusion_bluesky.errors import InvalidInputError

__all__ = ["finite_scalar", "real_frames"]


def real_frames(
    frames: npt.ArrayLike, name: str, ndims: tuple[int, ...] = (2, 3)
) -> np.ndarray:
    """Return ``frames`` as an ndarray after checking dtype, ndim, size, finiteness.

    Parameters
    ----------
    frames : array_like
        An image ``(h, w)`` or a stack ``(t, h, w)`` of real numbers.
    name : str
        The argument's name, for the error message.
    ndims : tuple of int
        Accepted numbers of dimensions.

    Raises
    ------
    TypeError
        Not real numbers (complex, strings, objects).
    InvalidInputError
        Wrong number of dimensions, empty, or NaN/inf values.
    """
    array = np.asarray(frames)
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold real numbers; got dtype {array.dtype}. "
            "Pass a real (integer or float) array."
        )
    if array.ndim not in ndims:
        expected = " or ".join(f"{n}-D" for n in ndims)
        raise InvalidInputError(
            f"{name} must be {expected} ((h, w) or (t, h, w)); got shape {array.shape}"
        )
    if array.size == 0:
        raise InvalidInputError(f"{name} is empty (shape {array.shape}); pass frames")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InvalidInputError(
            f"{name} contains NaN or inf ({np.count_nonzero(~np.isfinite(array))} "
            "values); replace or drop those frames first"
        )
    return array


def finite_scalar(value: float, name: str) -> float:
    """Return ``value`` as a float, or raise if it is not a finite real number.

    Raises
    ------
    TypeError
        Not a real number.
    InvalidInputError
        NaN or inf.
    """
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a real number; got {value!r}") from err
    if not math.isfinite(number):
        raise InvalidInputError(f"{name} must be finite; got {value!r}")
    return number
