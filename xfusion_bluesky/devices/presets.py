"""ROI presets: both cameras' ROIs and rates, and the nominal registration between them.

:func:`apply_roi_preset` centres each ROI on its sensor, sets the frame rates and
frames per burst, and puts the HS field in the middle of the UHS field (where a
simulated HS is mounted); ``setup(roi=...)`` and the tests use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xfusion_bluesky.devices.base import SCALE

__all__ = ["ROI_PRESETS", "RoiPreset", "apply_roi_preset"]


@dataclass(frozen=True)
class RoiPreset:
    """ROIs and rates of a beamline preset (both cameras centred on their sensors).

    Attributes
    ----------
    uhs_shape, hs_shape : tuple of int
        ``(height, width)`` of the UHS (LR) and HS (HR) ROIs.
    uhs_frame_rate_hz, hs_frame_rate_hz : float
        Frame rates; their ratio is the HR interval in LR frames.
    uhs_frames : int
        Frames per UHS burst.
    """

    uhs_shape: tuple[int, int]
    hs_shape: tuple[int, int]
    uhs_frame_rate_hz: float
    hs_frame_rate_hz: float
    uhs_frames: int = 128


#: ``small`` (default): 128 frames fused by the small EDVR-STF in ~1.5–2.5 min on 2
#: CPU cores, HR separation 16; ``full``: both full sensors, HR separation 16 (the
#: HS at 75 kHz of 76 kHz);
#: ``demo`` (``make demo``): a 128×192 HS field inside a 40×56 UHS ROI (so the
#: registration crops), HR separation 10, fused in ~20–40 s on one CPU core.
ROI_PRESETS: dict[str, RoiPreset] = {
    "small": RoiPreset((64, 96), (256, 384), 2e6, 125e3),
    "full": RoiPreset((250, 400), (800, 1280), 1.2e6, 75e3),
    "demo": RoiPreset((40, 56), (128, 192), 2e6, 200e3),
}


def apply_roi_preset(uhs: Any, hs: Any, registration: Any, preset: RoiPreset) -> None:
    """Centre both ROIs on their sensors, set rates, and the nominal registration.

    The HS field is centred in the UHS field; a simulated HS is mounted there.
    """
    for camera, shape, rate in (
        (uhs, preset.uhs_shape, preset.uhs_frame_rate_hz),
        (hs, preset.hs_shape, preset.hs_frame_rate_hz),
    ):
        spec, cam = camera.spec, camera.cam
        _set_all(
            (cam.size_y, shape[0]),
            (cam.size_x, shape[1]),
            (cam.min_y, (spec.sensor_height - shape[0]) // 2),
            (cam.min_x, (spec.sensor_width - shape[1]) // 2),
            (cam.acquire_period, 1.0 / rate),
            (cam.acquire_time, 0.5 / rate),
        )
    hs_frames = round(
        preset.uhs_frames * preset.hs_frame_rate_hz / preset.uhs_frame_rate_hz
    )
    _set_all((uhs.cam.num_images, preset.uhs_frames), (hs.cam.num_images, hs_frames))
    offset = (
        (preset.uhs_shape[0] * SCALE - preset.hs_shape[0]) // 2,
        (preset.uhs_shape[1] * SCALE - preset.hs_shape[1]) // 2,
    )
    # Every measured value (ratio, rotation, latency, ROIs) belongs to the old ROIs.
    registration.reset(offset)
    if hasattr(hs, "mount_offset_y_hr_px"):
        hs.mount_offset_y_hr_px.put(offset[0])
        hs.mount_offset_x_hr_px.put(offset[1])


def _set_all(*pairs: tuple[Any, Any]) -> None:
    """Set signals and wait for each (an EPICS setpoint until its readback agrees)."""
    for signal, value in pairs:
        signal.set(value).wait(10)
