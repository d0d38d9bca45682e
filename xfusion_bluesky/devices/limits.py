"""What the hardware can do: camera models, burst settings and their checks.

Pure (no ophyd): the limits of the Shimadzu HPV-X2 and the Phantom TMX 7510, the
settings of one burst, the frame times a burst has, and the checks that refuse a
setting before anything is armed. Re-exported by :mod:`xfusion_bluesky.devices.base`,
through which plans reach them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from xfusion_bluesky.errors import InvalidInputError

__all__ = [
    "DEFAULT_HS_RATE_HZ",
    "DEFAULT_UHS_FRAMES",
    "DEFAULT_UHS_RATE_HZ",
    "HS_SPEC",
    "UHS_SPEC",
    "BurstSettings",
    "CameraSpec",
    "check_burst_settings",
    "check_delays",
    "frame_times",
    "hs_frames_in_window",
]


#: Power-on settings of both flavours: full sensors, HR separation 16 (the HS
#: at 75 of its 76 kHz); the beamline's ``small`` preset runs 2 MHz / 125 kHz.
DEFAULT_UHS_RATE_HZ = 1.2e6
DEFAULT_HS_RATE_HZ = 75e3
DEFAULT_UHS_FRAMES = 128


@dataclass(frozen=True)
class CameraSpec:
    """What a camera model can do; the checks of :func:`check_burst_settings`.

    Attributes
    ----------
    role : str
        ``"uhs"`` or ``"hs"``.
    manufacturer, model : str
        As the areaDetector ``Manufacturer_RBV`` / ``Model_RBV`` PVs report them.
    sensor_height, sensor_width : int
        Full sensor in pixels.
    max_frame_rate_hz : float
        Fastest frame rate at full sensor height.
    max_frame_rate_cap_hz : float
        Fastest frame rate at any ROI (the HS speeds up as the ROI gets shorter).
    roi_speeds_up : bool
        The frame-rate limit scales with ``sensor_height / roi_height`` (row readout).
    bit_depth : int
        ADC bits; frames are stored as uint16.
    pixel_size_um : float
        Physical sensor pixel pitch.
    burst_frames : tuple of int or None
        Allowed frames per burst (in-pixel storage modes), None for any count.
    memory_bytes : int or None
        Internal memory holding one burst, None when frames live in the pixels.
    """

    role: str
    manufacturer: str
    model: str
    sensor_height: int
    sensor_width: int
    max_frame_rate_hz: float
    max_frame_rate_cap_hz: float
    roi_speeds_up: bool
    bit_depth: int
    pixel_size_um: float
    burst_frames: tuple[int, ...] | None = None
    memory_bytes: int | None = None

    def max_frame_rate_for(self, roi_height: int) -> float:
        """Return the fastest frame rate, Hz, for an ROI ``roi_height`` rows tall."""
        if not self.roi_speeds_up:
            return self.max_frame_rate_hz
        rate = self.max_frame_rate_hz * self.sensor_height / max(int(roi_height), 1)
        return min(rate, self.max_frame_rate_cap_hz)

    def max_frame_count(self, roi_height: int, roi_width: int) -> int | None:
        """Return how many frames of this ROI fit the memory (None: no limit)."""
        if self.memory_bytes is None:
            return None
        frame_bytes = math.ceil(roi_height * roi_width * self.bit_depth / 8)
        return self.memory_bytes // max(frame_bytes, 1)


#: Shimadzu HPV-X2: 400×250 px burst CCD, up to 5 MHz, 128 or 256 frames per burst.
UHS_SPEC = CameraSpec(
    role="uhs",
    manufacturer="Shimadzu",
    model="HPV-X2",
    sensor_height=250,
    sensor_width=400,
    max_frame_rate_hz=5e6,
    max_frame_rate_cap_hz=5e6,
    roi_speeds_up=False,
    bit_depth=10,
    pixel_size_um=32.0,
    burst_frames=(128, 256),
)

#: Phantom TMX 7510: 1280×800 px at 76 kHz, faster with fewer rows (1.75 MHz cap).
HS_SPEC = CameraSpec(
    role="hs",
    manufacturer="Vision Research",
    model="Phantom TMX 7510",
    sensor_height=800,
    sensor_width=1280,
    max_frame_rate_hz=76e3,
    max_frame_rate_cap_hz=1.75e6,
    roi_speeds_up=True,
    bit_depth=12,
    pixel_size_um=18.0,
    memory_bytes=128 * 2**30,
)


@dataclass(frozen=True)
class BurstSettings:
    """One camera's acquisition settings, in the units plans use.

    Attributes
    ----------
    frame_rate_hz : float
        1 / ``cam.acquire_period``.
    exposure_s : float
        ``cam.acquire_time``.
    num_images : int
        Frames per burst (``cam.num_images``).
    roi : tuple of int
        ``(min_y, min_x, size_y, size_x)`` in sensor pixels.
    """

    frame_rate_hz: float
    exposure_s: float
    num_images: int
    roi: tuple[int, int, int, int]

    @property
    def frame_shape(self) -> tuple[int, int]:
        """(height, width) of one frame."""
        return (self.roi[2], self.roi[3])


def check_burst_settings(
    spec: CameraSpec,
    settings: BurstSettings,
    *,
    name: str | None = None,
    memory_bytes: int | None = None,
) -> None:
    """Raise if ``spec``'s hardware cannot record a burst with ``settings``.

    Parameters
    ----------
    spec : CameraSpec
        The camera model.
    settings : BurstSettings
        Requested rate, exposure, frame count and ROI.
    name : str, optional
        Device name for the messages (default ``spec.role``).
    memory_bytes : int, optional
        Internal memory, overriding ``spec.memory_bytes`` (a smaller partition).

    Raises
    ------
    InvalidInputError
        Rate above the model's limit for this ROI, frame count not allowed,
        exposure longer than the frame period, ROI outside the sensor, or a burst
        that does not fit the internal memory.
    """
    who = name or spec.role
    rate, exposure = float(settings.frame_rate_hz), float(settings.exposure_s)
    min_y, min_x, size_y, size_x = (int(v) for v in settings.roi)
    if not (math.isfinite(rate) and rate > 0):
        raise InvalidInputError(f"{who} frame_rate_hz must be > 0; got {rate!r}")
    if size_y < 1 or size_x < 1 or min_y < 0 or min_x < 0:
        raise InvalidInputError(
            f"{who} ROI (min_y, min_x, size_y, size_x) must have origin ≥ 0 and "
            f"size ≥ 1; got {settings.roi}"
        )
    if min_y + size_y > spec.sensor_height or min_x + size_x > spec.sensor_width:
        raise InvalidInputError(
            f"{who} ROI {settings.roi} (min_y, min_x, size_y, size_x) does not fit the "
            f"{spec.model} sensor of {spec.sensor_height}×{spec.sensor_width} px; "
            "shrink the ROI or move its origin"
        )
    max_rate = spec.max_frame_rate_for(size_y)
    if rate > max_rate * (1 + 1e-9):
        raise InvalidInputError(
            f"{who} frame_rate_hz={rate:g} exceeds the {spec.model} maximum of "
            f"{max_rate:g} Hz for a {size_y}-row ROI; lower the rate"
            + (" or use fewer rows" if spec.roi_speeds_up else "")
        )
    if spec.burst_frames is not None and settings.num_images not in spec.burst_frames:
        raise InvalidInputError(
            f"{who} frames per burst must be one of {spec.burst_frames} "
            f"({spec.model} recording modes); got {settings.num_images}"
        )
    if settings.num_images < 1:
        raise InvalidInputError(
            f"{who} frames per burst must be ≥ 1; got {settings.num_images}"
        )
    period = 1.0 / rate
    if not (math.isfinite(exposure) and exposure > 0):
        raise InvalidInputError(f"{who} exposure_s must be > 0; got {exposure!r}")
    if exposure > period * (1 + 1e-9):
        raise InvalidInputError(
            f"{who} exposure_s={exposure:g} is longer than the frame period "
            f"{period:g} s at {rate:g} Hz; shorten the exposure or lower the rate"
        )
    memory = memory_bytes if memory_bytes is not None else spec.memory_bytes
    if memory is not None:
        frame_bytes = math.ceil(size_y * size_x * spec.bit_depth / 8)
        fits = memory // max(frame_bytes, 1)
        if settings.num_images > fits:
            raise InvalidInputError(
                f"{who} burst of {settings.num_images} frames of {size_y}×{size_x} px "
                f"does not fit the {memory} B camera memory (at most {fits} frames); "
                "record fewer frames, a smaller ROI, or a shorter window"
            )


def check_delays(**delays_s: float) -> None:
    """Raise unless every trigger delay is a finite number ≥ 0 s.

    Parameters
    ----------
    **delays_s : float
        Delay per name, seconds after the trigger (T0).

    Raises
    ------
    InvalidInputError
        A delay is negative, NaN or infinite.
    """
    for key, value in delays_s.items():
        delay = float(value)
        if not math.isfinite(delay) or delay < 0:
            raise InvalidInputError(
                f"{key} must be a finite delay ≥ 0 s after the trigger; got {value!r}. "
                "A delay generator cannot fire before its trigger: delay the other "
                "channel instead"
            )


def frame_times(delay_s: float, frame_rate_hz: float, num_images: int) -> np.ndarray:
    """Return the start time of each frame of a burst, float64 s after the trigger.

    Parameters
    ----------
    delay_s : float
        Delay of the camera's trigger channel after T0.
    frame_rate_hz : float
        Frame rate.
    num_images : int
        Frames in the burst.

    Returns
    -------
    ndarray, (num_images,) float64
        ``delay_s + k / frame_rate_hz``.
    """
    return float(delay_s) + np.arange(int(num_images), dtype=np.float64) / float(
        frame_rate_hz
    )


def hs_frames_in_window(
    *,
    uhs_frames: int,
    uhs_frame_rate_hz: float,
    uhs_delay_s: float,
    hs_frame_rate_hz: float,
    hs_delay_s: float,
) -> int:
    """Return how many HS frames start within the UHS burst window.

    The window runs from the first UHS frame to the end of the last one,
    ``[uhs_delay_s, uhs_delay_s + uhs_frames / uhs_frame_rate_hz)``; the HS starts
    at ``hs_delay_s`` and records one frame per ``1 / hs_frame_rate_hz``.

    Raises
    ------
    InvalidInputError
        The HS would record no frame inside the window.
    """
    end = uhs_delay_s + uhs_frames / uhs_frame_rate_hz
    span = (end - hs_delay_s) * hs_frame_rate_hz
    # A relative tolerance keeps exact ratios (2 MHz / 125 kHz) from gaining a frame.
    count = math.ceil(span - 1e-6) if span > 0 else 0
    if count < 1:
        raise InvalidInputError(
            f"hs_delay_s={hs_delay_s:g} starts the HS after the UHS burst ends "
            f"({end:g} s): no HR frame would overlap the LR frames; lower hs_delay_s"
        )
    return count
