"""registration_scan(): measures where, how scaled and rotated the HS field lies.

Both cameras image a static textured target (a grid, or any textured object
held still in the beam; on the simulation the timing generator's ``target`` is
set to ``"static"`` for the scan). The frames of each camera are averaged (the
target does not move, so this only beats the noise down), and
:func:`xfusion_bluesky.calibration.measure_geometry` measures the HS image's
similarity transform onto the UHS image's fused grid, with flips and 1-σ
uncertainties. The result goes to the ``Registration`` device, with the time
and the camera ROIs it holds for, and into the run's ``registration`` stream;
every later ``dual_camera_scan`` records it in its start document. A target
that cannot be registered (too little texture, no overlap, a result out of the
accepted range) fails the run with the reason; the device keeps its values.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import numpy as np
from bluesky.utils import MsgGenerator

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.plans.defaults import default_devices
from xfusion_bluesky.plans.stubs import (
    acquire_burst,
    configure_camera,
    read_burst_settings,
    read_event,
    restore_signals,
    save_signals,
    use_target,
)
from xfusion_bluesky.stored_format import FORMAT_KEY, FORMAT_VERSION

if TYPE_CHECKING:  # scipy and scikit-image load only when a plan measures
    from xfusion_bluesky.calibration import MeasuredGeometry

__all__ = ["DEFAULT_REGISTRATION_BURSTS", "registration_scan", "store_geometry"]

logger = logging.getLogger(__name__)

#: Bursts of the static target ``registration_scan`` averages by default.
DEFAULT_REGISTRATION_BURSTS = 4


def registration_scan(
    uhs: Any = None,
    hs: Any = None,
    timing: Any = None,
    registration: Any = None,
    *,
    target: str | None = "static",
    num_bursts: int = DEFAULT_REGISTRATION_BURSTS,
    timeout_s: float = 60.0,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[MeasuredGeometry]:
    """Measure the HS field's geometry in the UHS field from a static target; store it.

    Parameters
    ----------
    uhs, hs, timing, registration : Device, optional
        Default: the beamline's.
    target : str or None
        The calibration target put in the beam where the timing generator can
        (the simulation's ``timing.target``; default ``"static"``); None, or
        a real timing generator: the beam holds what the operator put there.
    num_bursts : int
        Bursts recorded and averaged (≥ 1): the noise, not the target, limits
        the precision (on the small simulated fields, one burst gave up to
        0.12 % scale error, four stay under 0.1 %).
    timeout_s : float
        Longest wait for each burst.
    md : dict, optional
        Extra start-document metadata (the target, ...).

    Yields
    ------
    Msg
        A run of ``num_bursts`` events (stream ``primary``) plus a
        ``registration`` stream with the values stored.

    Returns
    -------
    MeasuredGeometry
        The similarity, its uncertainty and the fit's score.

    Raises
    ------
    RegistrationError
        The target cannot be registered: the run ends with ``exit_status``
        ``"fail"`` and the reason; the Registration device is unchanged.

    Notes
    -----
    Start-document keys: ``plan_name`` (``registration_scan``), ``xfusion_format``,
    ``detectors``, ``target`` (``"static"``), ``registration_id`` (also stored as
    the registration's ``measured_by``, ``registration_scan:<id>``, so later
    scans point back at this run).
    """
    bursts: object = num_bursts
    if isinstance(bursts, bool) or not isinstance(bursts, int) or bursts < 1:
        raise InvalidInputError(f"num_bursts must be an int ≥ 1; got {num_bursts!r}")
    devices = default_devices(uhs, hs, timing, registration)
    uhs, hs, timing = devices.uhs, devices.hs, devices.timing
    registration = devices.registration
    uhs_settings = yield from read_burst_settings(uhs)
    hs_settings = yield from read_burst_settings(hs)
    # Modes and delays are put back afterwards: the next scan finds them as set.
    saved = yield from save_signals(
        uhs.cam.trigger_mode, hs.cam.trigger_mode, timing.a.delay, timing.c.delay
    )
    saved += yield from use_target(timing, target)
    yield from configure_camera(uhs, uhs_settings, trigger_mode="External")
    yield from configure_camera(hs, hs_settings, trigger_mode="External")
    yield from bps.mv(timing.a.delay, 0.0, timing.c.delay, 0.0)
    registration_id = uuid.uuid4().hex
    _md = {
        "plan_name": "registration_scan",
        FORMAT_KEY: FORMAT_VERSION,
        "detectors": [uhs.name, hs.name],
        "num_points": num_bursts,
        "target": target,
        "registration_id": registration_id,
        **(md or {}),
    }
    result: list[MeasuredGeometry] = []

    @bpp.finalize_decorator(lambda: restore_signals(saved))
    @bpp.stage_decorator([uhs, hs, timing])
    @bpp.run_decorator(md=_md)
    def inner() -> MsgGenerator[None]:
        lr: np.ndarray | float = 0.0
        hr: np.ndarray | float = 0.0
        for _ in range(num_bursts):
            yield from bps.checkpoint()
            yield from acquire_burst([uhs, hs], timing, timeout_s=timeout_s)
            yield from read_event([uhs, hs, timing])
            # The target is still: every frame of every burst averages the noise.
            lr = lr + uhs.last_burst().astype(np.float64).mean(axis=0) / num_bursts
            hr = hr + hs.last_burst().astype(np.float64).mean(axis=0) / num_bursts
        # A deferred pause (one Ctrl-C) asked for during a burst takes effect
        # here, once the bursts are stored, instead of being dropped.
        yield from bps.checkpoint()
        from xfusion_bluesky.calibration import measure_geometry

        measured = measure_geometry(lr, hr)
        logger.info("registration measured: %s", measured)
        result.append(measured)
        yield from store_geometry(
            registration,
            measured,
            rois=(uhs_settings.roi, hs_settings.roi),
            measured_by=f"registration_scan:{registration_id}",
        )
        yield from read_event([registration], stream="registration")

    yield from inner()
    return result[0]


def store_geometry(
    registration: Any,
    measured: MeasuredGeometry,
    *,
    rois: tuple[tuple[int, ...], tuple[int, ...]],
    measured_by: str,
) -> MsgGenerator[None]:
    """Put a measured geometry into a Registration device (the latency stays).

    Parameters
    ----------
    registration : Registration
        The device.
    measured : MeasuredGeometry
        What :func:`~xfusion_bluesky.calibration.measure_geometry` returned.
    rois : (uhs_roi, hs_roi)
        The cameras' ROIs ``[min_y, min_x, size_y, size_x]`` during the measurement.
    measured_by : str
        Where it comes from (``registration_scan:<id>``, ...).

    Yields
    ------
    Msg
        One ``bps.mv`` of every geometry signal.
    """
    sim, sigma = measured.similarity, measured.uncertainty
    sigma_y, sigma_x = (float(v) for v in sigma["offset_hr_px"])
    yield from bps.mv(
        registration.scale_ratio, float(sim.scale_ratio),
        registration.rotation_deg, float(sim.rotation_deg),
        registration.offset_y_hr_px, float(sim.offset_hr_px[0]),
        registration.offset_x_hr_px, float(sim.offset_hr_px[1]),
        registration.flip_y, bool(sim.flip_y),
        registration.flip_x, bool(sim.flip_x),
        registration.scale_ratio_std, float(sigma["scale_ratio"]),
        registration.rotation_deg_std, float(sigma["rotation_deg"]),
        registration.offset_y_std_hr_px, sigma_y,
        registration.offset_x_std_hr_px, sigma_x,
        registration.point_rms_std_hr_px, float(sigma["point_rms_hr_px"]),
        registration.measured_at, time.time(),
        registration.measured_uhs_roi, np.asarray(rois[0], dtype=np.int64),
        registration.measured_hs_roi, np.asarray(rois[1], dtype=np.int64),
        registration.measured_by, measured_by,
    )  # fmt: skip
