"""The HS camera's mount in the simulation, and misaligning a sim camera pair.

A real HS sees the scintillator through its own optics: :class:`HSMount` is the
simulation's truth of it, the parameters of a
:class:`~xfusion_bluesky.geometry.Similarity` (HS pixel → fused grid of the UHS
field). The aligned mount (ratio 4, no rotation, whole-pixel offset) is a crop
with flips, exactly as the simulation always rendered; any other resamples the
field through the similarity in one cubic step. :func:`random_mount` draws a
misaligned one, :func:`misalign` mounts it on a sim pair with trigger latencies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from xfusion_bluesky.devices.base import SCALE
from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.geometry import (
    MAX_ROTATION_DEG,
    SCALE_RATIO_RANGE,
    Similarity,
    resample,
)

if TYPE_CHECKING:
    from xfusion_bluesky.devices.sim.camera import SimHSCamera, SimUHSCamera

__all__ = ["MAX_SIM_LATENCY_UHS_PERIODS", "HSMount", "misalign", "random_mount"]

#: Largest trigger latency :func:`misalign` draws, in UHS frame periods.
MAX_SIM_LATENCY_UHS_PERIODS = 3.0
#: How far inside the accepted range :func:`random_mount` draws (scale ratio,
#: degrees): a true value on the edge would be measured outside it half the time
#: and refused, as the worker refuses it.
_RANGE_MARGIN = (0.01, 0.1)


@dataclass(frozen=True)
class HSMount:
    """How the HS field lies in the UHS field (the truth the registration measures).

    The parameters of a :class:`~xfusion_bluesky.geometry.Similarity` (same
    convention: HS pixel → fused grid of the UHS field).

    Attributes
    ----------
    offset_y_hr_px, offset_x_hr_px : float
        HS pixel (0, 0), flips undone, on the UHS field's HR (fused) grid.
    flip_y, flip_x : bool
        The HS image is mirrored top-bottom / left-right.
    scale_ratio : float
        UHS pixel size over HS pixel size at the sample (4: aligned optics).
    rotation_deg : float
        Rotation of the HS image, flips undone.
    """

    offset_y_hr_px: float = 0
    offset_x_hr_px: float = 0
    flip_y: bool = False
    flip_x: bool = False
    scale_ratio: float = float(SCALE)
    rotation_deg: float = 0.0

    def similarity(self, hs_shape: tuple[int, int]) -> Similarity:
        """Return the mount as the shared transform, for an HS frame of ``hs_shape``."""
        return Similarity.from_fields(self, hs_shape)

    @property
    def is_whole_pixel(self) -> bool:
        """True for the aligned mount: ratio 4, no rotation, whole-pixel offset."""
        return self.similarity((1, 1)).is_whole_pixel

    def check_fits(
        self, hs_shape: tuple[int, int], field_shape_hr: tuple[int, int]
    ) -> None:
        """Raise unless every HS pixel sees a point inside the simulated field.

        Raises
        ------
        InvalidInputError
            The HS view leaves the field (with the grid extent it needs).
        """
        low, high = self.extent(hs_shape)
        if np.all(low >= -1e-9) and np.all(
            high <= np.subtract(field_shape_hr, 1) + 1e-9
        ):
            return
        height, width = (int(v) for v in hs_shape)
        raise InvalidInputError(
            f"the HS view of {height}×{width} px through mount {self} spans HR rows "
            f"{low[0]:.2f} … {high[0]:.2f} and columns {low[1]:.2f} … "
            f"{high[1]:.2f}: it does not fit the simulated field of "
            f"{field_shape_hr[0]}×{field_shape_hr[1]} HR px (0 … size − 1); shrink "
            "the HS ROI, enlarge the UHS ROI or move the HS mount"
        )

    def extent(self, hs_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Return the lowest and highest grid ``(y, x)`` the HS pixel centres see."""
        height, width = (int(v) for v in hs_shape)
        corners = [(0, 0), (0, width - 1), (height - 1, 0), (height - 1, width - 1)]
        points = self.similarity((height, width)).map_points(corners)
        return points.min(axis=0), points.max(axis=0)

    def metadata(self) -> dict[str, Any]:
        """Return the start document's ``sim.hs_mount`` block."""
        return {
            "offset_hr_px": [self.offset_y_hr_px, self.offset_x_hr_px],
            "flip_y": bool(self.flip_y),
            "flip_x": bool(self.flip_x),
            "scale_ratio": float(self.scale_ratio),
            "rotation_deg": float(self.rotation_deg),
        }

    @classmethod
    def from_metadata(cls, block: Mapping[str, Any] | None) -> HSMount:
        """Read a ``sim.hs_mount`` block (an old one has no ratio nor rotation)."""
        block = block or {}
        oy, ox = block.get("offset_hr_px", (0, 0))
        return cls(
            offset_y_hr_px=oy,
            offset_x_hr_px=ox,
            flip_y=bool(block.get("flip_y", False)),
            flip_x=bool(block.get("flip_x", False)),
            scale_ratio=float(block.get("scale_ratio", SCALE)),
            rotation_deg=float(block.get("rotation_deg", 0.0)),
        )

    def view(self, field: np.ndarray, hs_shape: tuple[int, int]) -> np.ndarray:
        """Return what the HS pixels see of ``field`` frames ``(t, H, W)``, float32.

        The aligned mount crops and flips (exactly, no interpolation); any other
        resamples each frame through the similarity in one cubic step.
        """
        height, width = (int(v) for v in hs_shape)
        if self.is_whole_pixel:
            y0, x0 = round(self.offset_y_hr_px), round(self.offset_x_hr_px)
            window = field[:, y0 : y0 + height, x0 : x0 + width]
            if self.flip_y:
                window = window[:, ::-1, :]
            if self.flip_x:
                window = window[:, :, ::-1]
            return window
        matrix = self.similarity((height, width)).matrix()
        return np.stack([resample(frame, matrix, (height, width)) for frame in field])


def random_mount(
    rng: np.random.Generator,
    hs_shape: tuple[int, int],
    field_shape_hr: tuple[int, int],
) -> HSMount:
    """Draw a misaligned mount: the kind a real camera pair has.

    Scale ratio uniform in :data:`~xfusion_bluesky.geometry.SCALE_RATIO_RANGE`,
    rotation uniform within ±:data:`~xfusion_bluesky.geometry.MAX_ROTATION_DEG`
    (each 0.01 and 0.1° inside the edges: the accepted range must hold the
    measurement too), each flip with probability 1/2, and a sub-pixel offset
    uniform over the positions that keep the whole HS view inside the field.

    Parameters
    ----------
    rng : numpy.random.Generator
        The draw's random stream (seed it for a reproducible geometry).
    hs_shape : (int, int)
        HS frame ``(height, width)``.
    field_shape_hr : (int, int)
        Simulated UHS field on the fused grid (4 × the UHS ROI).

    Raises
    ------
    InvalidInputError
        The HS view cannot fit the field at the drawn scale and rotation
        (use an HS ROI about 3/4 of the field or smaller).
    """
    low, high = SCALE_RATIO_RANGE
    ratio = float(rng.uniform(low + _RANGE_MARGIN[0], high - _RANGE_MARGIN[0]))
    max_rotation = MAX_ROTATION_DEG - _RANGE_MARGIN[1]
    rotation = float(rng.uniform(-max_rotation, max_rotation))
    flip_y, flip_x = (bool(v) for v in rng.integers(0, 2, size=2))
    at_zero = HSMount(0.0, 0.0, flip_y, flip_x, ratio, rotation)
    first, last = at_zero.extent(hs_shape)
    room = np.subtract(field_shape_hr, 1) - (last - first)
    if np.any(room < 0):
        raise InvalidInputError(
            f"an HS view of {hs_shape[0]}×{hs_shape[1]} px at scale ratio "
            f"{ratio:.3f} and rotation {rotation:.2f}° spans "
            f"{last[0] - first[0]:.1f}×{last[1] - first[1]:.1f} HR px, more than the "
            f"UHS field of {field_shape_hr[0]}×{field_shape_hr[1]}; use an HS ROI "
            "of at most about 3/4 of the field"
        )
    offset = -first + rng.uniform(0.0, 1.0, size=2) * room
    return HSMount(float(offset[0]), float(offset[1]), flip_y, flip_x, ratio, rotation)


def misalign(
    uhs: SimUHSCamera,
    hs: SimHSCamera,
    *,
    seed: int,
    max_latency_uhs_periods: float = MAX_SIM_LATENCY_UHS_PERIODS,
    fit_hs_roi: bool = False,
) -> dict[str, Any]:
    """Give a sim camera pair a random geometry and trigger latencies.

    The HS gets :func:`random_mount` for its
    current ROI in the UHS field; each camera a latency uniform in
    ``[0, max_latency_uhs_periods)`` UHS frame periods (at the UHS's current
    rate), so their difference is any fraction of a period. Nothing else
    changes: the plans still see the nominal registration until they measure.

    Parameters
    ----------
    uhs, hs : SimUHSCamera, SimHSCamera
        The pair (the HS ROI must be at most about 3/4 of the UHS field).
    seed : int
        Seed of the draw: one seed, one geometry.
    max_latency_uhs_periods : float
        Largest latency of either camera, in UHS frame periods.
    fit_hs_roi : bool
        First shrink the HS ROI to 3/4 of the UHS field (a multiple of 8 pixels,
        centred on the sensor), so any misalignment fits; its frame rate stays.

    Returns
    -------
    dict
        The truth: ``hs_mount`` (:class:`HSMount`), ``uhs_latency_s``,
        ``hs_latency_s`` (each camera's) and ``relative_latency_s`` (HS − UHS,
        what a latency measurement finds).

    Raises
    ------
    InvalidInputError
        The HS view cannot fit the UHS field.
    """
    if fit_hs_roi:
        field = uhs.field_shape_hr()
        size = [max(8, (3 * side // 4) // 8 * 8) for side in field]
        for signal, value in (
            (hs.cam.size_y, size[0]),
            (hs.cam.size_x, size[1]),
            (hs.cam.min_y, (hs.spec.sensor_height - size[0]) // 2),
            (hs.cam.min_x, (hs.spec.sensor_width - size[1]) // 2),
        ):
            signal.put(value)
    rng = np.random.default_rng([int(seed), 0x5EED])
    mount = random_mount(rng, hs.settings().frame_shape, uhs.field_shape_hr())
    period = 1.0 / uhs.settings().frame_rate_hz
    latencies = rng.uniform(0.0, float(max_latency_uhs_periods), size=2) * period
    hs.set_mount(mount)
    uhs.latency_s.put(float(latencies[0]))
    hs.latency_s.put(float(latencies[1]))
    return {
        "hs_mount": mount,
        "uhs_latency_s": float(latencies[0]),
        "hs_latency_s": float(latencies[1]),
        "relative_latency_s": float(latencies[1] - latencies[0]),
    }
