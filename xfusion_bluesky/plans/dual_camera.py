"""dual_camera_scan(): one run, both cameras, one shared trigger.

Each burst: arm the UHS and the HS for an external trigger, fire the timing
generator once, wait for both bursts to be in their HDF5 files, then record one
event holding both image stacks (external) and both frame-time arrays.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.utils import MsgGenerator

from xfusion_bluesky.devices.base import (
    BurstSettings,
    check_burst_settings,
    check_delays,
    hs_frames_in_window,
)
from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.plans.defaults import default_devices
from xfusion_bluesky.plans.metadata import (
    CameraRecord,
    camera_metadata,
    registration_metadata,
    timing_metadata,
)
from xfusion_bluesky.plans.stubs import (
    acquire_burst,
    configure_camera,
    read_burst_settings,
    read_event,
    read_registration,
)
from xfusion_bluesky.stored_format import FORMAT_KEY, FORMAT_VERSION

__all__ = [
    "FUSION_METHOD",
    "MAX_USEFUL_HR_SEPARATION",
    "compensate_latency",
    "dual_camera_scan",
]

logger = logging.getLogger(__name__)

#: The fusion the start document requests: EDVR-STF with its HR-detail head (the
#: registry's DEFAULT_METHOD; docs/quality.md compares it with the paper's EDVR-STF).
FUSION_METHOD = "edvr_stf_detail"
#: An HR separation up to this many LR frames still gives a useful fusion (the paper's).
MAX_USEFUL_HR_SEPARATION = 20


def _check_plan_args(num_bursts: int, lr_separation: int, timeout_s: float) -> None:
    # Typed as object: plans are called from IPython with whatever was typed.
    bursts: object = num_bursts
    if isinstance(bursts, bool) or not isinstance(bursts, int) or bursts < 1:
        raise InvalidInputError(f"num_bursts must be an int ≥ 1; got {num_bursts!r}")
    if lr_separation not in (1, 2, 3):
        raise InvalidInputError(
            f"lr_separation must be 1, 2 or 3 LR frame periods; got {lr_separation!r}"
        )
    timeout: object = timeout_s
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise InvalidInputError(f"timeout_s must be a number > 0; got {timeout_s!r}")


def _merge(
    current: BurstSettings,
    *,
    frame_rate_hz: float | None,
    exposure_s: float | None,
    num_images: int | None,
) -> BurstSettings:
    """Apply the requested values; an unrequested exposure shrinks to fit the period."""
    rate = current.frame_rate_hz if frame_rate_hz is None else float(frame_rate_hz)
    if exposure_s is None:
        fits = rate > 0 and current.exposure_s <= 1.0 / rate
        exposure = current.exposure_s if fits or rate <= 0 else 0.5 / rate
    else:
        exposure = float(exposure_s)
    frames = current.num_images if num_images is None else num_images
    return replace(current, frame_rate_hz=rate, exposure_s=exposure, num_images=frames)


def dual_camera_scan(
    uhs: Any = None,
    hs: Any = None,
    timing: Any = None,
    *,
    num_bursts: int = 1,
    uhs_frames: int | None = None,
    uhs_frame_rate_hz: float | None = None,
    hs_frame_rate_hz: float | None = None,
    uhs_exposure_s: float | None = None,
    hs_exposure_s: float | None = None,
    uhs_delay_s: float | None = None,
    hs_delay_s: float | None = None,
    registration: Any = None,
    timeout_s: float = 60.0,
    lr_separation: int = 1,
    md: dict[str, Any] | None = None,
) -> MsgGenerator[str]:
    """Record ``num_bursts`` bursts of the UHS and HS cameras on one shared trigger.

    Parameters
    ----------
    uhs, hs, timing : Device, optional
        The cameras and the timing generator; None uses the beamline's (see
        :func:`~xfusion_bluesky.plans.defaults.set_default_devices`).
    num_bursts : int
        Bursts (= events) in the run.
    uhs_frames : int, optional
        UHS frames per burst (128 or 256); None keeps the camera's setting.
    uhs_frame_rate_hz, hs_frame_rate_hz : float, optional
        Frame rates; None keeps the cameras' settings. The HS records every frame
        that starts within the UHS burst window.
    uhs_exposure_s, hs_exposure_s : float, optional
        Exposures, at most one frame period; None keeps the setting, shortened to
        half a period if it no longer fits.
    uhs_delay_s, hs_delay_s : float, optional
        When each camera's frames should start after the trigger, ≥ 0. Once a
        latency is measured (``latency_scan``), the channel delays compensate it
        (:func:`compensate_latency`), so the HS frames start at these instants
        of the UHS timeline; the start document records the delays applied
        (``timing.uhs_delay_s`` / ``hs_delay_s``) and the ones asked for.
    registration : Device, optional
        The :class:`~xfusion_bluesky.devices.base.Registration` recorded in the
        start document; None uses the beamline's.
    timeout_s : float
        Longest wait for both bursts to be stored after each trigger.
    lr_separation : int
        1, 2 or 3: the LR separation the fusion should use.
    md : dict, optional
        Extra start-document metadata (sample, operator, ...); overrides defaults.

    Yields
    ------
    Msg
        Configuration, stage, open_run, per burst checkpoint/arm/fire/wait/event,
        a last checkpoint, close_run, unstage. A deferred pause (one Ctrl-C)
        takes effect at the next burst boundary.

    Returns
    -------
    str
        The run uid.

    Raises
    ------
    InvalidInputError
        A setting the hardware cannot do (raised before anything is armed).
    TimeoutError
        A burst was not stored within ``timeout_s``: the run closes with
        ``exit_status="fail"`` and both cameras are disarmed.

    Notes
    -----
    Start-document keys besides ``plan_name``, ``plan_args``, ``detectors``,
    ``num_points``, ``hints``: ``xfusion_format`` (1), ``uhs`` and ``hs`` (per
    camera: model, rate, period, exposure, frames per burst, delay, ROI, pixel
    sizes, data keys), ``timing`` (delays, window, ``hr_separation``,
    ``hs_offset_uhs_periods``, ``requested_*_delay_s``,
    ``hs_latency_compensation_s``),
    ``registration`` (v3: the similarity, its uncertainty, the measured ROIs,
    the HS latency; :func:`~xfusion_bluesky.plans.metadata.registration_metadata`),
    ``fusion``
    (``requested``, ``method``, ``lr_separation``) and for a simulation ``sim``
    (scene family, seed, frame period, field shape; event ``k`` images seed
    ``timing_burst_seed``). Each event holds ``uhs_image``, ``hs_image`` (external
    HDF5), ``uhs_frame_times_s``, ``hs_frame_times_s`` (s after the trigger) and
    the channel delays.
    """
    _check_plan_args(num_bursts, lr_separation, timeout_s)
    devices = default_devices(uhs, hs, timing, registration)
    uhs, hs, timing = devices.uhs, devices.hs, devices.timing

    # 1. Everything is checked before any device is touched.
    uhs_now = yield from read_burst_settings(uhs)
    hs_now = yield from read_burst_settings(hs)
    registration_record = yield from read_registration(devices.registration)
    requested_uhs = yield from _delay(timing.a, uhs_delay_s)
    requested_hs = yield from _delay(timing.c, hs_delay_s)
    check_delays(uhs_delay_s=requested_uhs, hs_delay_s=requested_hs)
    compensation = (
        registration_record.hs_latency_s
        if registration_record.latency_measured
        else 0.0
    )
    uhs_delay, hs_delay = compensate_latency(requested_uhs, requested_hs, compensation)
    uhs_settings = _merge(
        uhs_now,
        frame_rate_hz=uhs_frame_rate_hz,
        exposure_s=uhs_exposure_s,
        num_images=uhs_frames,
    )
    check_burst_settings(uhs.spec, uhs_settings, name=uhs.name)
    hs_rate = hs_now.frame_rate_hz if hs_frame_rate_hz is None else hs_frame_rate_hz
    hs_frames = hs_frames_in_window(  # where the HS frames really fall
        uhs_frames=uhs_settings.num_images,
        uhs_frame_rate_hz=uhs_settings.frame_rate_hz,
        uhs_delay_s=uhs_delay,
        hs_frame_rate_hz=float(hs_rate),
        hs_delay_s=hs_delay + compensation,
    )
    hs_settings = _merge(
        hs_now, frame_rate_hz=hs_rate, exposure_s=hs_exposure_s, num_images=hs_frames
    )
    check_burst_settings(
        hs.spec, hs_settings, name=hs.name, memory_bytes=hs.memory_bytes()
    )
    hr_separation = uhs_settings.frame_rate_hz / hs_settings.frame_rate_hz
    if hr_separation > MAX_USEFUL_HR_SEPARATION:
        logger.warning(
            "HR separation %.1f LR frames (> %d): fusion quality will suffer; raise "
            "hs_frame_rate_hz (smaller HS ROI) or lower uhs_frame_rate_hz",
            hr_separation,
            MAX_USEFUL_HR_SEPARATION,
        )

    # 2. Apply; trigger modes are restored when the scan ends, however it ends.
    old_modes = []
    for camera in (uhs, hs):
        old_modes.append((yield from bps.rd(camera.cam.trigger_mode)))
    yield from configure_camera(uhs, uhs_settings, trigger_mode="External")
    yield from configure_camera(hs, hs_settings, trigger_mode="External")
    yield from bps.mv(timing.a.delay, uhs_delay, timing.c.delay, hs_delay)

    uhs_record = CameraRecord(
        uhs.name,
        uhs.spec,
        uhs_settings,
        uhs_delay,
        float((yield from bps.rd(uhs.effective_pixel_size_um))),
    )
    hs_record = CameraRecord(
        hs.name,
        hs.spec,
        hs_settings,
        hs_delay,
        float((yield from bps.rd(hs.effective_pixel_size_um))),
    )
    timing_block = timing_metadata(
        uhs_record, hs_record, device=timing.name, num_bursts=num_bursts
    )
    timing_block.update(
        requested_uhs_delay_s=float(requested_uhs),
        requested_hs_delay_s=float(requested_hs),
        hs_latency_compensation_s=float(compensation),
    )
    _md: dict[str, Any] = {
        "plan_name": "dual_camera_scan",
        "plan_args": {
            "uhs": repr(uhs),
            "hs": repr(hs),
            "timing": repr(timing),
            "num_bursts": num_bursts,
            "timeout_s": timeout_s,
            "lr_separation": lr_separation,
        },
        "detectors": [uhs.name, hs.name],
        "num_points": num_bursts,
        "num_intervals": num_bursts - 1,
        "hints": {"dimensions": [(["time"], "primary")]},
        FORMAT_KEY: FORMAT_VERSION,
        "uhs": camera_metadata(uhs_record),
        "hs": camera_metadata(hs_record),
        "timing": timing_block,
        "registration": registration_metadata(
            registration_record, uhs_record, hs_record
        ),
        "fusion": {
            "requested": True,
            "method": FUSION_METHOD,
            "lr_separation": lr_separation,
        },
    }
    sim = _sim_metadata(uhs, hs, timing)
    if sim is not None:
        _md["sim"] = sim
    _md.update(md or {})

    @bpp.finalize_decorator(lambda: _restore_modes((uhs, hs), old_modes))
    @bpp.stage_decorator([uhs, hs, timing])
    @bpp.run_decorator(md=_md)
    def inner() -> MsgGenerator[None]:
        # A checkpoint at every burst boundary, the last one included: a deferred
        # pause (one Ctrl-C) asked for during a burst takes effect when that burst
        # is stored. Without the last one, a pause asked for during the last burst
        # (every burst of a one-burst scan) was acknowledged and then dropped.
        for _ in range(num_bursts):
            yield from bps.checkpoint()
            yield from acquire_burst([uhs, hs], timing, timeout_s=timeout_s)
            yield from read_event([uhs, hs, timing])
        yield from bps.checkpoint()

    return (yield from inner())


def compensate_latency(
    uhs_delay_s: float, hs_delay_s: float, hs_latency_s: float
) -> tuple[float, float]:
    """Return the channel delays that make the HS frames start where asked.

    The delays asked for are on the UHS camera's timeline; the HS camera starts
    ``hs_latency_s`` later than its channel says, so its channel fires that much
    earlier. When that would be before T0, both channels move later instead.

    Returns
    -------
    (float, float)
        Channel A (UHS) and C (HS) delays, both ≥ 0.
    """
    hs_channel = float(hs_delay_s) - float(hs_latency_s)
    uhs_channel = float(uhs_delay_s)
    if hs_channel < 0:
        uhs_channel, hs_channel = uhs_channel - hs_channel, 0.0
    return uhs_channel, hs_channel


def _delay(channel: Any, requested: float | None) -> MsgGenerator[float]:
    if requested is not None:
        return float(requested)
    return float((yield from bps.rd(channel.delay)))


def _restore_modes(cameras: tuple[Any, ...], modes: list[Any]) -> MsgGenerator[None]:
    args: list[Any] = []
    for camera, mode in zip(cameras, modes, strict=True):
        args += [camera.cam.trigger_mode, mode]
    yield from bps.mv(*args)


def _sim_metadata(uhs: Any, hs: Any, timing: Any) -> dict[str, Any] | None:
    """Return what regenerates a simulated event's ground truth (None: not a sim)."""
    if not (hasattr(timing, "event") and hasattr(uhs, "field_shape_hr")):
        return None
    sim: dict[str, Any] = timing.event().metadata(uhs.field_shape_hr())
    sim["burst_seed_key"] = f"{timing.name}_burst_seed"
    if hasattr(hs, "mount"):
        sim["hs_mount"] = hs.mount().metadata()
    for name, camera in (("uhs", uhs), ("hs", hs)):
        latency = getattr(camera, "latency_s", None)
        sim[f"{name}_latency_s"] = 0.0 if latency is None else float(latency.get())
    return sim
