"""Start-document metadata: rates, exposures, delays, registration.

Pure functions from settings to the JSON-able dictionaries a dual-camera run
carries under ``lr`` (UHS), ``hr`` (HS), ``timing``, ``registration``, ``fusion``
and, for a simulated beamline, ``sim``; the fusion worker reads everything it
needs from there and from the per-event frame times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xfusion_bluesky.devices.base import SCALE, BurstSettings, CameraSpec

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
    """The HS field in the UHS field: offset in HR pixels, flips, scale."""

    offset_y_hr_px: float = 0.0
    offset_x_hr_px: float = 0.0
    flip_ud: bool = False
    flip_lr: bool = False
    scale: int = SCALE
    measured_by: str = "nominal"


def camera_metadata(record: CameraRecord) -> dict[str, Any]:
    """Return the ``lr``/``hr`` block of one camera.

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
    lr: CameraRecord, hr: CameraRecord, *, device: str, num_bursts: int
) -> dict[str, Any]:
    """Return the ``timing`` block: delays, window and the LR/HR frame relation.

    ``lr_frames_per_hr_frame`` is the HR frame period in LR periods (the paper's
    HR sampling interval); ``hr_offset_lr_frames`` is where HR frame 0 falls on the
    LR frame axis.
    """
    lr_rate = float(lr.settings.frame_rate_hz)
    return {
        "device": device,
        "trigger": "single shot",
        "uhs_channel": "A",
        "hs_channel": "C",
        "uhs_delay_s": float(lr.delay_s),
        "hs_delay_s": float(hr.delay_s),
        "num_bursts": int(num_bursts),
        "burst_window_s": lr.settings.num_images / lr_rate,
        "lr_frames_per_hr_frame": lr_rate / float(hr.settings.frame_rate_hz),
        "hr_offset_lr_frames": (hr.delay_s - lr.delay_s) * lr_rate,
    }


def registration_metadata(
    registration: RegistrationRecord, lr: CameraRecord, hr: CameraRecord
) -> dict[str, Any]:
    """Return the ``registration`` block: the HS field inside the UHS field.

    Keys: ``scale`` (4), ``offset_hr_px`` / ``offset_lr_px`` (``[y, x]`` of HS pixel
    (0, 0) once the flips are undone, in the UHS field's HR / LR pixels),
    ``flip_ud``, ``flip_lr``, ``hr_shape``, ``lr_shape``, ``pixel_size_ratio``
    (effective UHS / HS pixel size, should equal ``scale``) and ``measured_by``.
    """
    offset = [float(registration.offset_y_hr_px), float(registration.offset_x_hr_px)]
    scale = int(registration.scale)
    return {
        "scale": scale,
        "offset_hr_px": offset,
        "offset_lr_px": [v / scale for v in offset],
        "flip_ud": bool(registration.flip_ud),
        "flip_lr": bool(registration.flip_lr),
        "hr_shape": [int(v) for v in hr.settings.frame_shape],
        "lr_shape": [int(v) for v in lr.settings.frame_shape],
        "pixel_size_ratio": lr.effective_pixel_size_um / hr.effective_pixel_size_um,
        "measured_by": registration.measured_by,
    }
