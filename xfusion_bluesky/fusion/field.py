"""The field both cameras see, on the fused grid: a crop if aligned, else one warp.

The fused frames lie on the **fused grid** of the UHS frame (UHS pixel ``a``
covers grid pixels ``4a … 4a+3``; :mod:`xfusion_bluesky.geometry`). The shared
field is a rectangle of whole UHS pixels, so the LR frames are only ever
cropped. The HS frames reach that grid in one of two ways:

- the registration is whole-pixel (scale ratio 4, no rotation, a whole-pixel
  offset): the HS pixels *are* grid pixels, and they are cropped and their flips
  undone; nothing is interpolated (every run stored before format 3);
- otherwise each HS frame, as stored, is resampled onto the shared field's grid
  pixels in **one** quintic-spline step through the inverse of the registration's
  :class:`~xfusion_bluesky.geometry.Similarity` (flips included).

:func:`register_fields` chooses, and :class:`FieldRegistration` applies it.
Pure numpy and scipy: the worker calls these between reading a raw run
and fusing it, and the readers of a derived run rebuild them from its record.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xfusion_bluesky.errors import RunNotFusableError
from xfusion_bluesky.geometry import (
    GRID,
    MAX_ROTATION_DEG,
    SCALE_RATIO_RANGE,
    Similarity,
    resample,
)

__all__ = [
    "INTERPOLATION_CROP",
    "INTERPOLATION_WARP",
    "SUPPORT_MARGIN_HS_PX",
    "FieldRegistration",
    "check_registration_rois",
    "check_similarity",
    "register_fields",
]

#: What the derived run records as ``interpolation`` for each way.
INTERPOLATION_CROP = "none: whole-pixel crop, HS flips undone"
INTERPOLATION_WARP = (
    "quintic B-spline (order 5, scipy.ndimage: 6×6 HS pixels around each point), "
    "one step from each HS frame as stored onto the fused grid"
)
#: How far (HS px) every sampled point stays inside the HS frame: the quintic
#: kernel reads the pixels ``floor(u) − 2 … floor(u) + 3``, so with 3 px no fused
#: pixel reads the edge extension beyond the frame (the spline's prefilter still
#: feels the edge, with a weight that falls ~0.43× per pixel).
SUPPORT_MARGIN_HS_PX = 3.0
_TOLERANCE = 1e-6  # px: a point on the margin counts as inside despite rounding


@dataclass(frozen=True)
class FieldRegistration:
    """The common field of both cameras, and how each camera's frames reach it.

    Attributes
    ----------
    lr_window : (int, int, int, int)
        ``(y0, x0, height, width)`` of the LR crop, LR pixels.
    hr_window : (int, int, int, int)
        Crop: ``(y0, x0, height, width)`` of the HR crop, HS pixels, after the
        flips are undone, ``height = 4 × LR height``. Warp: the HS pixels (flips
        undone) the field is sampled between, for the record only.
    flip_y, flip_x : bool
        Flips of the HS image (undone by the crop, part of the warp's matrix).
    similarity : Similarity or None
        The registration the field came from; None for a record of format 2 or
        earlier read back without it (a crop).
    resampled : bool
        True: the HS frames are warped onto the grid; False: cropped.
    """

    lr_window: tuple[int, int, int, int]
    hr_window: tuple[int, int, int, int]
    flip_y: bool
    flip_x: bool
    similarity: Similarity | None = None
    resampled: bool = False

    def __post_init__(self) -> None:
        if self.resampled and self.similarity is None:
            raise ValueError("a resampled field needs its similarity transform")

    @property
    def grid_window(self) -> tuple[int, int, int, int]:
        """``(y0, x0, height, width)`` of the fused frames on the UHS fused grid."""
        y0, x0, height, width = self.lr_window
        return GRID * y0, GRID * x0, GRID * height, GRID * width

    @property
    def interpolation(self) -> str:
        """How the HS frames reach the grid, in words (recorded in the derived run)."""
        return INTERPOLATION_WARP if self.resampled else INTERPOLATION_CROP

    def grid_to_hs(self) -> NDArray[np.float64]:
        """Return the 3×3 map from fused-frame ``(row, col)`` to HS ``(r, c)``."""
        if self.similarity is None:
            raise ValueError("this field registration has no similarity transform")
        y0, x0, _, _ = self.grid_window
        shift = np.array([[1.0, 0.0, y0], [0.0, 1.0, x0], [0.0, 0.0, 1.0]])
        return np.asarray(np.linalg.inv(self.similarity.matrix()) @ shift)

    def metadata(self) -> dict[str, Any]:
        """Return the JSON-able record the derived run carries."""
        record: dict[str, Any] = (
            self.similarity.metadata() if self.similarity is not None else {}
        )
        record.update(
            lr_window=list(self.lr_window),
            hr_window=list(self.hr_window),
            grid_window=list(self.grid_window),
            flip_y=bool(self.flip_y),
            flip_x=bool(self.flip_x),
            resampled=bool(self.resampled),
            interpolation=self.interpolation,
        )
        return record

    @classmethod
    def from_metadata(
        cls, record: Mapping[str, Any], hs_shape: tuple[int, int]
    ) -> FieldRegistration:
        """Rebuild the registration a derived run records (any format version).

        Parameters
        ----------
        record : mapping
            The derived run's ``fusion.registration`` with v1 names (see
            :func:`~xfusion_bluesky.stored_format.registration_v1`); one without
            ``resampled`` (format 2 or earlier) is a crop.
        hs_shape : (int, int)
            The raw HS frame shape.
        """
        similarity = Similarity.from_metadata(record, hs_shape=hs_shape)
        return cls(
            lr_window=_window(record["lr_window"]),
            hr_window=_window(record["hr_window"]),
            flip_y=bool(record.get("flip_y", False)),
            flip_x=bool(record.get("flip_x", False)),
            similarity=similarity,
            resampled=bool(record.get("resampled", False)),
        )

    def apply(
        self, lr: NDArray[Any], hr: NDArray[Any]
    ) -> tuple[NDArray[Any], NDArray[Any]]:
        """Return ``lr`` (T, h, w) and ``hr`` (K, H, W) on the common field.

        The LR frames are a view (a crop). The HR frames are a view too when the
        field is cropped, and new float32 frames, resampled one by one, when it
        is warped: pass only the HS frames the fusion uses.
        """
        ly, lx, lh, lw = self.lr_window
        lr = lr[:, ly : ly + lh, lx : lx + lw]
        if self.resampled:
            return lr, self.warp(hr)
        if self.flip_y:
            hr = hr[:, ::-1, :]
        if self.flip_x:
            hr = hr[:, :, ::-1]
        hy, hx, hh, hw = self.hr_window
        return lr, hr[:, hy : hy + hh, hx : hx + hw]

    def warp(self, hr: NDArray[Any]) -> NDArray[np.float32]:
        """Resample HS frames (K, H, W), as stored, onto the fused grid of the field."""
        out_to_in = self.grid_to_hs()
        shape = self.grid_window[2:]
        out = np.empty((hr.shape[0], *shape), dtype=np.float32)
        for k, frame in enumerate(hr):
            out[k] = resample(frame, out_to_in, shape)
        return out


def check_similarity(similarity: Similarity) -> None:
    """Refuse a transform outside what the registration measures and fusion accepts.

    Raises
    ------
    RunNotFusableError
        The scale ratio is outside :data:`~xfusion_bluesky.geometry.SCALE_RATIO_RANGE`
        or the rotation beyond ±:data:`~xfusion_bluesky.geometry.MAX_ROTATION_DEG`.
    """
    low, high = SCALE_RATIO_RANGE
    ratio, rotation = float(similarity.scale_ratio), float(similarity.rotation_deg)
    if not low <= ratio <= high:
        raise RunNotFusableError(
            f"the registration's scale ratio {ratio:.6g} (UHS / HS pixel size) is "
            f"outside {low:g} … {high:g}: check the HS optics and run "
            "registration_scan again"
        )
    if abs(rotation) > MAX_ROTATION_DEG:
        raise RunNotFusableError(
            f"the registration's rotation {rotation:.4g}° is beyond "
            f"±{MAX_ROTATION_DEG:g}°: align the HS camera and run registration_scan "
            "again"
        )


def check_registration_rois(
    measured_rois: Mapping[str, Any] | None, run_rois: Mapping[str, Any]
) -> None:
    """Refuse a registration measured with other camera ROIs than the run's.

    Parameters
    ----------
    measured_rois : mapping or None
        The registration block's ``measured_rois`` (``{"uhs": [...], "hs": [...]}``);
        None or absent (a nominal registration, format 2 or earlier): no check.
    run_rois : mapping
        The run's ``{"uhs": roi, "hs": roi}`` (``[min_y, min_x, size_y, size_x]``);
        a camera without one is not checked.

    Raises
    ------
    RunNotFusableError
        A camera's ROI changed since the registration was measured.
    """
    if not measured_rois:
        return
    names = {"uhs": "UHS", "hs": "HS"}
    for camera, name in names.items():
        measured, used = measured_rois.get(camera), run_rois.get(camera)
        if measured is None or used is None:
            continue
        measured_list = [int(v) for v in measured]
        used_list = [int(v) for v in used]
        if measured_list != used_list:
            raise RunNotFusableError(
                f"the registration is older than the camera configuration: it was "
                f"measured with the {name} ROI {measured_list}, the run used "
                f"{used_list}; run registration_scan again"
            )


def register_fields(
    lr_shape: tuple[int, int],
    hr_shape: tuple[int, int],
    *,
    offset_hr_px: tuple[float, float] = (0.0, 0.0),
    flip_y: bool = False,
    flip_x: bool = False,
    scale: int = GRID,
    similarity: Similarity | None = None,
) -> FieldRegistration:
    """Find the common field of the LR and HR frames, and how the HR frames reach it.

    Parameters
    ----------
    lr_shape, hr_shape : (int, int)
        UHS and HS frame shapes.
    offset_hr_px, flip_y, flip_x, scale
        A version-1 registration (whole-pixel offset of HS pixel (0, 0), flips
        undone, on the fused grid; scale 4): used when ``similarity`` is None.
    similarity : Similarity, optional
        The full registration (overrides the version-1 arguments).

    Returns
    -------
    FieldRegistration
        A crop for a whole-pixel registration, a one-step warp otherwise.

    Raises
    ------
    RunNotFusableError
        The transform is outside the accepted range (:func:`check_similarity`);
        a whole-pixel HS field does not lie inside the UHS field; a warped one
        covers no whole UHS pixel of it.

    Notes
    -----
    Crop: an offset that is not a multiple of 4 is met by trimming the HR crop up
    to the next LR pixel boundary (at most 3 HR pixels per side). Warp: the field
    is the largest rectangle of whole UHS pixels all of whose grid pixels map at
    least :data:`SUPPORT_MARGIN_HS_PX` inside the HS frame, so the spline kernel
    reads only recorded pixels.
    """
    if similarity is None:
        oy, ox = (float(v) for v in offset_hr_px)
        similarity = Similarity(
            (int(hr_shape[0]), int(hr_shape[1])),
            scale_ratio=float(scale),
            offset_hr_px=(oy, ox),
            flip_y=bool(flip_y),
            flip_x=bool(flip_x),
        )
    check_similarity(similarity)
    if similarity.is_whole_pixel:
        return _crop(lr_shape, hr_shape, similarity)
    return _warp(lr_shape, similarity)


def _crop(
    lr_shape: tuple[int, int], hr_shape: tuple[int, int], similarity: Similarity
) -> FieldRegistration:
    """Crop whole HS pixels to whole UHS pixels (the version-1 registration)."""
    oy_i, ox_i = (round(float(v)) for v in similarity.offset_hr_px)
    field_h, field_w = lr_shape[0] * GRID, lr_shape[1] * GRID
    if (
        oy_i < 0
        or ox_i < 0
        or oy_i + hr_shape[0] > field_h
        or ox_i + hr_shape[1] > field_w
    ):
        raise RunNotFusableError(
            f"the HS field ({hr_shape[0]}×{hr_shape[1]} px at HR offset "
            f"({oy_i}, {ox_i})) does not fit inside the UHS field "
            f"({field_h}×{field_w} HR px = {lr_shape[0]}×{lr_shape[1]} UHS px × "
            f"{GRID}): check the ROIs and the registration"
        )
    windows = []
    for offset, size in ((oy_i, hr_shape[0]), (ox_i, hr_shape[1])):
        lr_start = -(-offset // GRID)  # first LR pixel wholly inside the HS field
        lr_stop = (offset + size) // GRID
        if lr_stop <= lr_start:
            raise RunNotFusableError(
                f"the HS field ({hr_shape[0]}×{hr_shape[1]} px) covers less than one "
                f"whole UHS pixel along an axis at offset {offset} HR px"
            )
        windows.append((lr_start, lr_stop - lr_start, lr_start * GRID - offset))
    (ly, lh, hy), (lx, lw, hx) = windows
    return FieldRegistration(
        lr_window=(ly, lx, lh, lw),
        hr_window=(hy, hx, lh * GRID, lw * GRID),
        flip_y=bool(similarity.flip_y),
        flip_x=bool(similarity.flip_x),
        similarity=similarity,
        resampled=False,
    )


def _warp(lr_shape: tuple[int, int], similarity: Similarity) -> FieldRegistration:
    """Warp onto the largest rectangle of whole UHS pixels the HS frame covers."""
    inside = _blocks_inside(lr_shape, similarity)
    window = _largest_rectangle(inside)
    if window is None:
        oy, ox = similarity.offset_hr_px
        raise RunNotFusableError(
            f"the HS field ({similarity.hs_shape[0]}×{similarity.hs_shape[1]} px at "
            f"scale ratio {similarity.scale_ratio:.6g}, rotation "
            f"{similarity.rotation_deg:.4g}°, offset ({oy:.6g}, {ox:.6g}) HR px) "
            f"covers no whole pixel of the {lr_shape[0]}×{lr_shape[1]} UHS field: "
            "check the ROIs and run registration_scan again"
        )
    registration = FieldRegistration(
        lr_window=window,
        hr_window=(0, 0, 0, 0),
        flip_y=bool(similarity.flip_y),
        flip_x=bool(similarity.flip_x),
        similarity=similarity,
        resampled=True,
    )
    return replace(registration, hr_window=_hs_extent(registration))


def _blocks_inside(lr_shape: tuple[int, int], similarity: Similarity) -> NDArray[Any]:
    """(h, w) bool: every grid pixel of that UHS pixel maps well inside the HS frame."""
    inverse = np.linalg.inv(similarity.matrix())
    height, width = (int(v) for v in similarity.hs_shape)
    # The map is affine and the allowed region convex: a block's 4 corner grid
    # pixels inside means all 16 are.
    ys = GRID * np.arange(lr_shape[0])[:, None] + np.array([0, GRID - 1])
    xs = GRID * np.arange(lr_shape[1])[:, None] + np.array([0, GRID - 1])
    y = ys[:, None, :, None]  # (h, 1, 2, 1)
    x = xs[None, :, None, :]  # (1, w, 1, 2)
    rows = inverse[0, 0] * y + inverse[0, 1] * x + inverse[0, 2]
    cols = inverse[1, 0] * y + inverse[1, 1] * x + inverse[1, 2]
    low = SUPPORT_MARGIN_HS_PX - _TOLERANCE
    ok = (
        (rows >= low)
        & (rows <= height - 1 - low)
        & (cols >= low)
        & (cols <= width - 1 - low)
    )
    return np.asarray(ok.all(axis=(2, 3)))


def _largest_rectangle(mask: NDArray[Any]) -> tuple[int, int, int, int] | None:
    """Return ``(y0, x0, h, w)`` of the largest all-True rectangle (first on ties)."""
    rows, cols = mask.shape
    heights = np.zeros(cols, dtype=np.int64)
    best_area, best = 0, None
    for row in range(rows):
        heights = np.where(mask[row], heights + 1, 0)
        stack: list[tuple[int, int]] = []  # (first column, height), heights rising
        for col in range(cols + 1):
            current = int(heights[col]) if col < cols else 0
            start = col
            while stack and stack[-1][1] >= current:
                first, height = stack.pop()
                area = height * (col - first)
                if area > best_area:
                    best_area = area
                    best = (row - height + 1, first, height, col - first)
                start = first
            stack.append((start, current))
    return best


def _hs_extent(registration: FieldRegistration) -> tuple[int, int, int, int]:
    """Return the HS pixels (flips undone) the warp samples: ``(y, x, h, w)``."""
    similarity = registration.similarity
    if similarity is None:  # unreachable: a warp always has one
        raise ValueError("no similarity")
    _, _, gh, gw = registration.grid_window
    corners = np.array(
        [[0, 0, 1], [0, gw - 1, 1], [gh - 1, 0, 1], [gh - 1, gw - 1, 1]], float
    )
    points = (corners @ registration.grid_to_hs().T)[:, :2]
    height, width = (int(v) for v in similarity.hs_shape)
    if similarity.flip_y:
        points[:, 0] = height - 1 - points[:, 0]
    if similarity.flip_x:
        points[:, 1] = width - 1 - points[:, 1]
    y0, x0 = (math.floor(float(v)) for v in points.min(axis=0))
    y1, x1 = (math.ceil(float(v)) + 1 for v in points.max(axis=0))
    y0, x0 = max(y0, 0), max(x0, 0)
    y1, x1 = min(y1, height), min(x1, width)
    return y0, x0, y1 - y0, x1 - x0


def _window(values: Any) -> tuple[int, int, int, int]:
    """Return a stored ``(y0, x0, height, width)`` window as ints."""
    y0, x0, height, width = (int(v) for v in values)
    return y0, x0, height, width
