"""latency_scan(): measures when the HS frames really start on the UHS timeline.

Each camera answers the trigger with its own latency, so the frame times both
record (channel delay + i / rate) are off by the difference. Both cameras image
a moving target (a textured object in motion; on the simulation the timing
generator's ``target`` is set to ``"moving"``) in one burst, and
:func:`xfusion_bluesky.calibration.measure_latency` compares each HS frame,
brought onto the UHS grid with the stored geometry, with the UHS frames
interpolated in time. The HS − UHS latency and its uncertainty go to the
``Registration`` device (``hs_latency_s``, ``hs_latency_std_s``,
``latency_measured_by``) and the run's ``registration`` stream;
``dual_camera_scan`` then records it and compensates it in the HS channel delay.
Run it after ``registration_scan()``: it uses the stored geometry.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.utils import MsgGenerator

from xfusion_bluesky.devices.base import hs_frames_in_window
from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.plans.defaults import default_devices
from xfusion_bluesky.plans.stubs import (
    acquire_burst,
    configure_camera,
    read_burst_settings,
    read_event,
    read_registration,
    restore_signals,
    save_signals,
    use_target,
)
from xfusion_bluesky.stored_format import FORMAT_KEY, FORMAT_VERSION

if TYPE_CHECKING:  # scipy and scikit-image load only when a plan measures
    from xfusion_bluesky.calibration import MeasuredLatency

__all__ = ["latency_scan"]

logger = logging.getLogger(__name__)


def latency_scan(
    uhs: Any = None,
    hs: Any = None,
    timing: Any = None,
    registration: Any = None,
    *,
    max_latency_uhs_periods: float = 4.0,
    target: str | None = "moving",
    timeout_s: float = 60.0,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[MeasuredLatency]:
    """Measure the HS − UHS trigger latency from a moving target; store it.

    The HS channel fires ``max_latency_uhs_periods`` UHS periods after the UHS
    one and records only the frames that then fall inside the UHS burst, so
    every HS frame has UHS frames on both sides for any latency up to that.

    Parameters
    ----------
    uhs, hs, timing, registration : Device, optional
        Default: the beamline's.
    max_latency_uhs_periods : float
        Largest |latency| expected, in UHS frame periods (> 0).
    target : str or None
        The calibration target put in the beam where the timing generator can
        (the simulation's ``timing.target``; default ``"moving"``); None, or
        a real timing generator: the beam holds what the operator put there.
    timeout_s : float
        Longest wait for the burst.
    md : dict, optional
        Extra start-document metadata.

    Yields
    ------
    Msg
        A one-burst run (stream ``primary``) plus a ``registration`` stream
        with the values stored.

    Returns
    -------
    MeasuredLatency
        ``latency_s``, ``std_s``, ``per_frame_s``, ``frames_used``.

    Raises
    ------
    InvalidInputError
        The stored geometry was measured for other camera ROIs (run
        ``registration_scan()`` again), or a bad ``max_latency_uhs_periods``:
        raised before the run opens.
    RegistrationError
        The target does not move enough to time the cameras: the run ends with
        ``exit_status`` ``"fail"`` and the reason; the device is unchanged.

    Notes
    -----
    Start-document keys: ``plan_name`` (``latency_scan``), ``xfusion_format``,
    ``detectors``, ``target`` (``"moving"``), ``latency_id`` (stored as the
    registration's ``latency_measured_by``, ``latency_scan:<id>``), and the
    geometry used (``registration``: ``measured_by``).
    """
    lead: object = max_latency_uhs_periods
    if isinstance(lead, bool) or not isinstance(lead, int | float) or not lead > 0:
        raise InvalidInputError(
            f"max_latency_uhs_periods must be a number > 0; got {lead!r}"
        )
    devices = default_devices(uhs, hs, timing, registration)
    uhs, hs, timing = devices.uhs, devices.hs, devices.timing
    registration = devices.registration
    uhs_settings = yield from read_burst_settings(uhs)
    hs_settings = yield from read_burst_settings(hs)
    record = yield from read_registration(registration)
    rois = {"uhs": list(uhs_settings.roi), "hs": list(hs_settings.roi)}
    if record.measured_rois is not None and dict(record.measured_rois) != rois:
        raise InvalidInputError(
            f"the stored registration ({record.measured_by}) was measured for ROIs "
            f"{dict(record.measured_rois)}, the cameras now have {rois}; run "
            "registration_scan() for these ROIs first"
        )
    similarity = record.similarity(hs_settings.frame_shape)
    period = 1.0 / uhs_settings.frame_rate_hz
    hs_delay = float(lead) * period
    hs_frames = hs_frames_in_window(
        uhs_frames=uhs_settings.num_images,
        uhs_frame_rate_hz=uhs_settings.frame_rate_hz,
        uhs_delay_s=0.0,
        hs_frame_rate_hz=hs_settings.frame_rate_hz,
        hs_delay_s=2 * hs_delay + period,  # room for the latency at the end too
    )
    # Modes, frames and delays are put back afterwards: the next scan finds them.
    saved = yield from save_signals(
        uhs.cam.trigger_mode,
        hs.cam.trigger_mode,
        hs.cam.num_images,
        timing.a.delay,
        timing.c.delay,
    )
    saved += yield from use_target(timing, target)
    yield from configure_camera(uhs, uhs_settings, trigger_mode="External")
    yield from configure_camera(hs, hs_settings, trigger_mode="External")
    yield from bps.mv(
        hs.cam.num_images, hs_frames, timing.a.delay, 0.0, timing.c.delay, hs_delay
    )
    latency_id = uuid.uuid4().hex
    _md = {
        "plan_name": "latency_scan",
        FORMAT_KEY: FORMAT_VERSION,
        "detectors": [uhs.name, hs.name],
        "num_points": 1,
        "target": target,
        "latency_id": latency_id,
        "registration": {"measured_by": record.measured_by, **similarity.metadata()},
        **(md or {}),
    }
    result: list[MeasuredLatency] = []

    @bpp.finalize_decorator(lambda: restore_signals(saved))
    @bpp.stage_decorator([uhs, hs, timing])
    @bpp.run_decorator(md=_md)
    def inner() -> MsgGenerator[None]:
        yield from bps.checkpoint()
        yield from acquire_burst([uhs, hs], timing, timeout_s=timeout_s)
        yield from read_event([uhs, hs, timing])
        yield from bps.checkpoint()
        from xfusion_bluesky.calibration import measure_latency

        measured = measure_latency(
            uhs.last_burst(),
            uhs.frame_times_s.get(),
            hs.last_burst(),
            hs.frame_times_s.get(),
            similarity,
        )
        logger.info(
            "HS latency measured: %.4g s ± %s s (%d frames)",
            measured.latency_s,
            measured.std_s,
            measured.frames_used,
        )
        # One frame timed has no spread: NaN, recorded as null.
        std = float("nan") if measured.std_s is None else float(measured.std_s)
        result.append(measured)
        yield from bps.mv(
            registration.hs_latency_s, float(measured.latency_s),
            registration.hs_latency_std_s, std,
            registration.latency_measured_by, f"latency_scan:{latency_id}",
        )  # fmt: skip
        yield from read_event([registration], stream="registration")

    yield from inner()
    return result[0]
