"""registration_scan(): measures cross-camera registration.

Both cameras image the same target at the same instants (equal delays); the HS
frames, with each candidate flip undone and binned 4× at each of the 16 sub-LR-
pixel phases, are located in the simultaneous UHS frames by normalised cross-
correlation computed with FFTs. The best match gives the offset of the HS field
in the UHS field (HR pixels) and its flips; they go to the ``Registration`` device,
which every later ``dual_camera_scan`` records in its start document.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import numpy as np
from bluesky.utils import MsgGenerator

from xfusion_bluesky.devices.base import SCALE
from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.plans.defaults import default_devices
from xfusion_bluesky.plans.stubs import (
    acquire_burst,
    configure_camera,
    read_burst_settings,
    read_event,
)
from xfusion_bluesky.stored_format import FORMAT_KEY, FORMAT_VERSION

__all__ = ["MeasuredRegistration", "measure_registration", "registration_scan"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MeasuredRegistration:
    """Where the HS field lies in the UHS field, as measured.

    Attributes
    ----------
    offset_y_hr_px, offset_x_hr_px : int
        HS pixel (0, 0), flips undone, in the UHS field's HR pixels.
    flip_y, flip_x : bool
        The HS image is mirrored top-bottom / left-right relative to the UHS.
    score : float
        Normalised cross-correlation of the best match (1: perfect).
    """

    offset_y_hr_px: int
    offset_x_hr_px: int
    flip_y: bool
    flip_x: bool
    score: float


def _bin(frame: np.ndarray, scale: int) -> np.ndarray:
    height, width = frame.shape[0] // scale, frame.shape[1] // scale
    blocks = frame[: height * scale, : width * scale].reshape(
        height, scale, width, scale
    )
    return blocks.mean(axis=(1, 3))


def _match(frame: np.ndarray, patch: np.ndarray) -> tuple[int, int, float]:
    """Return the (row, col) where ``patch`` best matches ``frame``, and the NCC."""
    ph, pw = patch.shape
    fh, fw = frame.shape
    if ph > fh or pw > fw or ph * pw < 4:
        return 0, 0, -np.inf
    p = patch - patch.mean()
    p_norm = np.sqrt((p**2).sum())
    shape = (fh + ph - 1, fw + pw - 1)
    # Correlation = convolution with the flipped patch; keep the 'valid' part.
    spectrum = np.fft.rfft2(frame, shape) * np.fft.rfft2(p[::-1, ::-1], shape)
    corr = np.fft.irfft2(spectrum, shape)[ph - 1 : fh, pw - 1 : fw]
    # Local sums of the frame over every patch position (integral images).
    integral = np.pad(frame, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    integral2 = np.pad(frame**2, ((1, 0), (1, 0))).cumsum(0).cumsum(1)

    def window_sum(table: np.ndarray) -> np.ndarray:
        return table[ph:, pw:] - table[:-ph, pw:] - table[ph:, :-pw] + table[:-ph, :-pw]

    n = ph * pw
    local_var = window_sum(integral2) - window_sum(integral) ** 2 / n
    ncc = corr / (np.sqrt(np.maximum(local_var, 1e-12)) * max(p_norm, 1e-12))
    row, col = np.unravel_index(int(np.argmax(ncc)), ncc.shape)
    return int(row), int(col), float(ncc[row, col])


def measure_registration(
    lr_frame: np.ndarray, hr_frame: np.ndarray, *, scale: int = SCALE
) -> MeasuredRegistration:
    """Locate an HS frame inside the simultaneous UHS frame.

    Parameters
    ----------
    lr_frame : ndarray, (h, w)
        UHS frame (any dtype; used as float).
    hr_frame : ndarray, (H, W)
        HS frame of the same instant, its field inside the UHS field.
    scale : int
        HR pixels per LR pixel.

    Returns
    -------
    MeasuredRegistration

    Raises
    ------
    InvalidInputError
        The HS field is larger than the UHS field (at ``scale``).
    """
    lr = np.asarray(lr_frame, dtype=np.float64)
    hr = np.asarray(hr_frame, dtype=np.float64)
    if hr.shape[0] > lr.shape[0] * scale or hr.shape[1] > lr.shape[1] * scale:
        raise InvalidInputError(
            f"the HS frame {hr.shape} is larger than the UHS field "
            f"{lr.shape} × {scale}; the HS field must lie inside the UHS field"
        )
    best: MeasuredRegistration | None = None
    for flip_y in (False, True):
        for flip_x in (False, True):
            unflipped = hr[:: -1 if flip_y else 1, :: -1 if flip_x else 1]
            for phase_y in range(scale):
                for phase_x in range(scale):
                    patch = _bin(unflipped[phase_y:, phase_x:], scale)
                    row, col, score = _match(lr, patch)
                    if best is None or score > best.score:
                        best = MeasuredRegistration(
                            offset_y_hr_px=row * scale - phase_y,
                            offset_x_hr_px=col * scale - phase_x,
                            flip_y=flip_y,
                            flip_x=flip_x,
                            score=score,
                        )
    if best is None:  # unreachable: the loops always run
        raise InvalidInputError("no registration candidate")
    return best


def _simultaneous(
    uhs_times: np.ndarray, hs_times: np.ndarray, uhs_period: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return index pairs (uhs, hs) of frames that start at the same instant."""
    nearest = np.rint((hs_times - uhs_times[0]) / uhs_period).astype(int)
    ok = (nearest >= 0) & (nearest < len(uhs_times))
    ok &= np.abs(uhs_times[np.clip(nearest, 0, len(uhs_times) - 1)] - hs_times) < (
        0.01 * uhs_period
    )
    return nearest[ok], np.flatnonzero(ok)


def registration_scan(
    uhs: Any = None,
    hs: Any = None,
    timing: Any = None,
    registration: Any = None,
    *,
    timeout_s: float = 60.0,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[MeasuredRegistration]:
    """Measure where the HS field lies in the UHS field and store it.

    Both timing channels are set to the same delay so the cameras start together;
    every HS frame is paired with the UHS frame of the same instant, the pairs
    averaged, and :func:`measure_registration` applied.

    Parameters
    ----------
    uhs, hs, timing, registration : Device, optional
        Default: the beamline's.
    timeout_s : float
        Longest wait for the burst.
    md : dict, optional
        Extra start-document metadata (the target, ...).

    Yields
    ------
    Msg
        A one-burst run (stream ``primary``) plus a ``registration`` stream with
        the measured values.

    Returns
    -------
    MeasuredRegistration

    Notes
    -----
    Start-document keys: ``plan_name`` (``registration_scan``), ``xfusion_format``,
    ``detectors``, ``registration_id`` (also stored as the registration's
    ``measured_by``, so later scans point back at this run).
    """
    devices = default_devices(uhs, hs, timing, registration)
    uhs, hs, timing = devices.uhs, devices.hs, devices.timing
    registration = devices.registration
    uhs_settings = yield from read_burst_settings(uhs)
    hs_settings = yield from read_burst_settings(hs)
    old_modes = []
    for camera in (uhs, hs):
        old_modes.append((yield from bps.rd(camera.cam.trigger_mode)))
    yield from configure_camera(uhs, uhs_settings, trigger_mode="External")
    yield from configure_camera(hs, hs_settings, trigger_mode="External")
    yield from bps.mv(timing.a.delay, 0.0, timing.c.delay, 0.0)
    registration_id = uuid.uuid4().hex
    _md = {
        "plan_name": "registration_scan",
        FORMAT_KEY: FORMAT_VERSION,
        "detectors": [uhs.name, hs.name],
        "num_points": 1,
        "registration_id": registration_id,
        **(md or {}),
    }
    result: list[MeasuredRegistration] = []

    def restore() -> MsgGenerator[None]:
        yield from bps.mv(
            uhs.cam.trigger_mode, old_modes[0], hs.cam.trigger_mode, old_modes[1]
        )

    @bpp.finalize_decorator(restore)
    @bpp.stage_decorator([uhs, hs, timing])
    @bpp.run_decorator(md=_md)
    def inner() -> MsgGenerator[None]:
        yield from bps.checkpoint()
        yield from acquire_burst([uhs, hs], timing, timeout_s=timeout_s)
        yield from read_event([uhs, hs, timing])
        # A deferred pause (one Ctrl-C) asked for during the burst takes effect
        # here, once the burst is stored, instead of being dropped.
        yield from bps.checkpoint()
        lr_idx, hr_idx = _simultaneous(
            uhs.frame_times_s.get(),
            hs.frame_times_s.get(),
            1.0 / uhs_settings.frame_rate_hz,
        )
        if len(hr_idx) == 0:
            raise InvalidInputError(
                "no HS frame starts with a UHS frame; make the HS frame period a "
                "multiple of the UHS one"
            )
        lr = uhs.last_burst()[lr_idx].astype(np.float64).mean(axis=0)
        hr = hs.last_burst()[hr_idx].astype(np.float64).mean(axis=0)
        measured = measure_registration(lr, hr)
        logger.info("registration measured: %s", measured)
        result.append(measured)
        yield from bps.mv(
            registration.offset_y_hr_px,
            measured.offset_y_hr_px,
            registration.offset_x_hr_px,
            measured.offset_x_hr_px,
            registration.flip_y,
            measured.flip_y,
            registration.flip_x,
            measured.flip_x,
            registration.measured_by,
            f"registration_scan:{registration_id}",
        )
        yield from read_event([registration], stream="registration")

    yield from inner()
    return result[0]
