"""Start-document metadata: rates, exposures, delays, registration.

Pure functions from settings to the JSON-able dictionaries a dual-camera run
carries under ``uhs``, ``hs``, ``timing``, ``registration``, ``fusion`` and, for a
simulated beamline, ``sim`` (stored format v3, ``docs/format.md``); the fusion
worker reads everything it needs from there and from the per-event frame times.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from xfusion_bluesky.devices.base import SCALE, BurstSettings, CameraSpec
from xfusion_bluesky.geometry import Similarity

__all__ = [
    "CameraRecord",
    "RegistrationRecord",
    "camera_metadata",
    "registration_metadata",
    "timing_metadata",
]


@dataclass(frozen=True)
class CameraRecord:
    """What the start document records about one camera for one scan."""

    name: str
    spec: CameraSpec
    settings: BurstSettings
    delay_s: float
    effective_pixel_size_um: float


@dataclass(frozen=True)
class RegistrationRecord:
    """The HS field in the UHS field and the HS latency: a Registration's values.

    The geometry is a :class:`~xfusion_bluesky.geometry.Similarity` (offset on
    the fused grid, ratio, rotation, flips); ``scale`` is the grid's 4. The
    measurement fields are None while the registration is nominal.
    """

    offset_y_hr_px: float = 0.0
    offset_x_hr_px: float = 0.0
    flip_y: bool = False
    flip_x: bool = False
    scale: int = SCALE
    measured_by: str = "nominal"
    scale_ratio: float = float(SCALE)
    rotation_deg: float = 0.0
    #: ``{"scale_ratio", "rotation_deg", "offset_hr_px": [σy, σx], "point_rms_hr_px"}``.
    uncertainty: Mapping[str, Any] | None = None
    measured_at: float | None = None
    #: ``{"uhs": [min_y, min_x, size_y, size_x], "hs": [...]}``.
    measured_rois: Mapping[str, list[int]] | None = None
    hs_latency_s: float = 0.0
    hs_latency_std_s: float | None = None
    latency_measured_by: str = "nominal"

    def similarity(self, hs_shape: tuple[int, int]) -> Similarity:
        """Return the geometry as the shared transform for HS frames ``hs_shape``."""
        return Similarity.from_fields(self, hs_shape)

    @property
    def latency_measured(self) -> bool:
        """True once a latency measurement (not the nominal 0) is stored."""
        return self.latency_measured_by != "nominal"


def camera_metadata(record: CameraRecord) -> dict[str, Any]:
    """Return the ``uhs``/``hs`` block of one camera.

    Keys: ``camera`` (device name), ``manufacturer``, ``model``, ``frame_rate_hz``,
    ``frame_period_s``, ``exposure_s``, ``frames_per_burst``, ``delay_s``, ``roi``
    (``[min_y, min_x, size_y, size_x]``), ``frame_shape``, ``bit_depth``,
    ``pixel_size_um`` (sensor), ``effective_pixel_size_um`` (at the sample),
    ``data_key`` and ``frame_times_key`` (per-event keys of the frames and of
    their times after the trigger).
    """
    settings, spec = record.settings, record.spec
    return {
        "camera": record.name,
        "manufacturer": spec.manufacturer,
        "model": spec.model,
        "frame_rate_hz": float(settings.frame_rate_hz),
        "frame_period_s": 1.0 / float(settings.frame_rate_hz),
        "exposure_s": float(settings.exposure_s),
        "frames_per_burst": int(settings.num_images),
        "delay_s": float(record.delay_s),
        "roi": [int(v) for v in settings.roi],
        "frame_shape": [int(v) for v in settings.frame_shape],
        "bit_depth": int(spec.bit_depth),
        "pixel_size_um": float(spec.pixel_size_um),
        "effective_pixel_size_um": float(record.effective_pixel_size_um),
        "data_key": f"{record.name}_image",
        "frame_times_key": f"{record.name}_frame_times_s",
    }


def timing_metadata(
    uhs: CameraRecord, hs: CameraRecord, *, device: str, num_bursts: int
) -> dict[str, Any]:
    """Return the ``timing`` block: delays, window and the UHS/HS frame relation.

    ``hr_separation`` is the HS frame period in UHS frame periods (the paper's HR
    sampling interval, the name the fusion, training and CLI use too);
    ``hs_offset_uhs_periods`` is where HS frame 0 nominally falls on the UHS
    frame axis (from the channel delays; the HS latency comes on top).
    """
    uhs_rate = float(uhs.settings.frame_rate_hz)
    return {
        "device": device,
        "trigger": "single shot",
        "uhs_channel": "A",
        "hs_channel": "C",
        "uhs_delay_s": float(uhs.delay_s),
        "hs_delay_s": float(hs.delay_s),
        "num_bursts": int(num_bursts),
        "burst_window_s": uhs.settings.num_images / uhs_rate,
        "hr_separation": uhs_rate / float(hs.settings.frame_rate_hz),
        "hs_offset_uhs_periods": (hs.delay_s - uhs.delay_s) * uhs_rate,
    }


def registration_metadata(
    registration: RegistrationRecord, uhs: CameraRecord, hs: CameraRecord
) -> dict[str, Any]:
    """Return the ``registration`` block (v3): the HS field inside the UHS field.

    Keys: ``scale`` (4), ``offset_hr_px`` / ``offset_lr_px`` (``[y, x]`` of HS pixel
    (0, 0) once the flips are undone, on the UHS field's fused grid / in UHS
    pixels), ``flip_y`` (rows reversed), ``flip_x`` (columns reversed),
    ``hs_shape``, ``uhs_shape``, ``pixel_size_ratio`` (effective UHS / HS pixel
    size, nominally ``scale``), ``measured_by``; since v3 ``scale_ratio``,
    ``rotation_deg``, ``matrix_hr`` (the 2×3 HS pixel → grid map, flips
    included), ``uncertainty``, ``measured_at`` and ``measured_rois`` (null while
    nominal), ``hs_latency_s``, ``hs_latency_std_s`` (null while nominal) and
    ``latency_measured_by``.
    """
    offset = [float(registration.offset_y_hr_px), float(registration.offset_x_hr_px)]
    scale = int(registration.scale)
    similarity = registration.similarity(hs.settings.frame_shape)
    return {
        "scale": scale,
        "offset_hr_px": offset,
        "offset_lr_px": [v / scale for v in offset],
        "flip_y": bool(registration.flip_y),
        "flip_x": bool(registration.flip_x),
        "hs_shape": [int(v) for v in hs.settings.frame_shape],
        "uhs_shape": [int(v) for v in uhs.settings.frame_shape],
        "pixel_size_ratio": uhs.effective_pixel_size_um / hs.effective_pixel_size_um,
        "measured_by": registration.measured_by,
        "scale_ratio": float(registration.scale_ratio),
        "rotation_deg": float(registration.rotation_deg),
        "matrix_hr": similarity.metadata()["matrix_hr"],
        "uncertainty": _plain(registration.uncertainty),
        "measured_at": registration.measured_at,
        "measured_rois": _plain(registration.measured_rois),
        "hs_latency_s": float(registration.hs_latency_s),
        "hs_latency_std_s": registration.hs_latency_std_s,
        "latency_measured_by": registration.latency_measured_by,
    }


def _plain(block: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Return a JSON-able copy (lists, floats) of a small nested mapping."""
    if block is None:
        return None
    return {
        key: [float(v) if isinstance(v, float) else v for v in value]
        if isinstance(value, list | tuple)
        else value
        for key, value in block.items()
    }
