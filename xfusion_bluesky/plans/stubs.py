"""Arm, trigger, wait for the bursts; never opens a run.

Every stub works on either flavour of devices through the component names of
:mod:`xfusion_bluesky.devices.base` (``camera.cam.acquire_period``, ``timing.a.delay``
...), so the same plan runs against the simulation and the IOC.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import bluesky.plan_stubs as bps
import numpy as np
from bluesky.utils import FailedStatus, MsgGenerator

from xfusion_bluesky.devices.base import BurstSettings
from xfusion_bluesky.plans.metadata import RegistrationRecord

__all__ = [
    "acquire_burst",
    "arm_cameras",
    "configure_camera",
    "fire",
    "read_burst_settings",
    "read_event",
    "read_registration",
    "restore_signals",
    "save_signals",
    "use_target",
    "wait_for_bursts",
]

logger = logging.getLogger(__name__)


def read_burst_settings(camera: Any) -> MsgGenerator[BurstSettings]:
    """Read a camera's rate, exposure, frames and ROI.

    Yields
    ------
    Msg
        One ``read`` per ``cam`` signal.

    Returns
    -------
    BurstSettings

    Raises
    ------
    RoiChangedError
        An EPICS camera's IOC no longer holds the ROI this session set (it
        restarted): raised before anything is read, so no scan runs on it.
    """
    check_roi = getattr(camera, "check_roi", None)
    if check_roi is not None:  # EPICS cameras: an IOC restart resets the ROI
        check_roi()
    cam = camera.cam
    period = yield from bps.rd(cam.acquire_period)
    exposure = yield from bps.rd(cam.acquire_time)
    num_images = yield from bps.rd(cam.num_images)
    roi = []
    for signal in (cam.min_y, cam.min_x, cam.size_y, cam.size_x):
        roi.append(int((yield from bps.rd(signal))))
    return BurstSettings(
        frame_rate_hz=1.0 / float(period),
        exposure_s=float(exposure),
        num_images=int(num_images),
        roi=(roi[0], roi[1], roi[2], roi[3]),
    )


def read_registration(registration: Any) -> MsgGenerator[RegistrationRecord]:
    """Read a :class:`~xfusion_bluesky.devices.base.Registration` device.

    Yields
    ------
    Msg
        One ``read`` per signal.

    Returns
    -------
    RegistrationRecord
        Uncertainty, ``measured_at`` and ``measured_rois`` are None while the
        geometry is nominal; ``hs_latency_std_s`` while the latency is.
    """
    values: dict[str, Any] = {}
    for key in _REGISTRATION_SIGNALS:
        values[key] = yield from bps.rd(getattr(registration, key))
    measured = str(values["measured_by"]) != "nominal"
    latency_measured = str(values["latency_measured_by"]) != "nominal"
    uncertainty = {
        "scale_ratio": float(values["scale_ratio_std"]),
        "rotation_deg": float(values["rotation_deg_std"]),
        "offset_hr_px": [
            float(values["offset_y_std_hr_px"]),
            float(values["offset_x_std_hr_px"]),
        ],
        "point_rms_hr_px": float(values["point_rms_std_hr_px"]),
    }
    rois = {
        "uhs": [int(v) for v in np.asarray(values["measured_uhs_roi"])],
        "hs": [int(v) for v in np.asarray(values["measured_hs_roi"])],
    }
    return RegistrationRecord(
        offset_y_hr_px=float(values["offset_y_hr_px"]),
        offset_x_hr_px=float(values["offset_x_hr_px"]),
        flip_y=bool(values["flip_y"]),
        flip_x=bool(values["flip_x"]),
        scale=int(values["scale"]),
        measured_by=str(values["measured_by"]),
        scale_ratio=float(values["scale_ratio"]),
        rotation_deg=float(values["rotation_deg"]),
        uncertainty=uncertainty if measured else None,
        measured_at=float(values["measured_at"]) if measured else None,
        measured_rois=rois if measured else None,
        hs_latency_s=float(values["hs_latency_s"]),
        hs_latency_std_s=(
            float(values["hs_latency_std_s"])
            if latency_measured and np.isfinite(values["hs_latency_std_s"])
            else None
        ),
        latency_measured_by=str(values["latency_measured_by"]),
    )


#: Every signal of the Registration device the start document records.
_REGISTRATION_SIGNALS = (
    "offset_y_hr_px",
    "offset_x_hr_px",
    "flip_y",
    "flip_x",
    "scale",
    "measured_by",
    "scale_ratio",
    "rotation_deg",
    "scale_ratio_std",
    "rotation_deg_std",
    "offset_y_std_hr_px",
    "offset_x_std_hr_px",
    "point_rms_std_hr_px",
    "measured_at",
    "measured_uhs_roi",
    "measured_hs_roi",
    "hs_latency_s",
    "hs_latency_std_s",
    "latency_measured_by",
)


def configure_camera(
    camera: Any, settings: BurstSettings, *, trigger_mode: str | None = None
) -> MsgGenerator[None]:
    """Set a camera's period, exposure, frames per burst and (optionally) trigger mode.

    Yields
    ------
    Msg
        ``set`` messages and one ``wait`` (a ``bps.mv``).
    """
    cam = camera.cam
    args: list[Any] = [
        cam.acquire_period,
        1.0 / settings.frame_rate_hz,
        cam.acquire_time,
        settings.exposure_s,
        cam.num_images,
        settings.num_images,
    ]
    if trigger_mode is not None:
        args += [cam.trigger_mode, trigger_mode]
    yield from bps.mv(*args)


def arm_cameras(cameras: Sequence[Any], *, group: str) -> MsgGenerator[list[Any]]:
    """Arm every camera for one burst (``trigger`` without waiting).

    Yields
    ------
    Msg
        One ``trigger`` per camera, in ``group``.

    Returns
    -------
    list of Status
        Each camera's burst status, in order.
    """
    statuses = []
    for camera in cameras:
        statuses.append((yield from bps.trigger(camera, group=group)))
    return statuses


def fire(timing: Any) -> MsgGenerator[None]:
    """Fire the timing generator's single-shot trigger and wait until it is sent.

    Yields
    ------
    Msg
        ``trigger`` and ``wait``.
    """
    yield from bps.trigger(timing, wait=True)


def wait_for_bursts(
    cameras: Sequence[Any],
    statuses: Sequence[Any],
    *,
    group: str,
    timeout_s: float,
) -> MsgGenerator[None]:
    """Wait for every armed camera to store its burst.

    Yields
    ------
    Msg
        One ``wait``.

    Raises
    ------
    TimeoutError
        A camera did not finish within ``timeout_s`` of the trigger.
    RuntimeError
        A camera reported a failed burst.
    """
    try:
        yield from bps.wait(group=group, timeout=timeout_s)
    except TimeoutError as err:
        late = [c.name for c, s in zip(cameras, statuses, strict=True) if not s.done]
        raise TimeoutError(
            f"camera(s) {', '.join(late) or '?'} did not store their burst within "
            f"{timeout_s:g} s of the trigger; check the trigger cabling and delays, "
            "or raise timeout_s for large bursts"
        ) from err
    except FailedStatus as err:
        failed = [
            c.name
            for c, s in zip(cameras, statuses, strict=True)
            if s.done and not s.success
        ]
        raise RuntimeError(
            f"camera(s) {', '.join(failed) or '?'} failed to record the burst: {err}"
        ) from err


def acquire_burst(
    cameras: Sequence[Any], timing: Any, *, timeout_s: float, group: str = "burst"
) -> MsgGenerator[None]:
    """Arm the cameras, fire one trigger, wait for every burst to be stored.

    Yields
    ------
    Msg
        See :func:`arm_cameras`, :func:`fire`, :func:`wait_for_bursts`.
    """
    statuses = yield from arm_cameras(cameras, group=group)
    yield from fire(timing)
    yield from wait_for_bursts(cameras, statuses, group=group, timeout_s=timeout_s)


def read_event(
    devices: Sequence[Any], *, stream: str = "primary"
) -> MsgGenerator[None]:
    """Bundle one reading of every device into one event of ``stream``.

    Yields
    ------
    Msg
        ``create``, one ``read`` per device, ``save``.
    """
    yield from bps.create(stream)
    for device in devices:
        yield from bps.read(device)
    yield from bps.save()


def use_target(timing: Any, target: str | None) -> MsgGenerator[list[tuple[Any, Any]]]:
    """Put a calibration target in the beam, where the timing generator can.

    The simulated timing generator has a ``target`` signal (``"event"``,
    ``"static"``, ``"moving"``); a real beamline has none, and the operator
    puts the grid or the moving target in the beam before the scan.

    Yields
    ------
    Msg
        A ``read`` and a ``bps.mv`` where there is a ``target`` signal.

    Returns
    -------
    list of (signal, value)
        What to put back afterwards (:func:`restore_signals`); empty without
        one, or with ``target`` None (the beam is left as it is).
    """
    signal = getattr(timing, "target", None)
    if signal is None or target is None:
        logger.info("imaging whatever is in the beam: it must be a %s target", target)
        return []
    old = yield from bps.rd(signal)
    yield from bps.mv(signal, target)
    return [(signal, old)]


def save_signals(*signals: Any) -> MsgGenerator[list[tuple[Any, Any]]]:
    """Read ``signals`` now, for :func:`restore_signals` to put them back later.

    Yields
    ------
    Msg
        One ``read`` per signal.

    Returns
    -------
    list of (signal, value)
    """
    saved = []
    for signal in signals:
        saved.append((signal, (yield from bps.rd(signal))))
    return saved


def restore_signals(saved: Sequence[tuple[Any, Any]]) -> MsgGenerator[None]:
    """Put signals back to the values a plan saved (``(signal, value)`` pairs).

    Yields
    ------
    Msg
        One ``bps.mv`` (nothing when ``saved`` is empty).
    """
    args: list[Any] = []
    for signal, value in saved:
        args += [signal, value]
    if args:
        yield from bps.mv(*args)
