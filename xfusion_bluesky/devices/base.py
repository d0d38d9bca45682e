"""Shared by both flavours: hardware limits, component layout, Kinds, file naming.

A camera device (sim or EPICS) is a :class:`BurstCamera`: an areaDetector-shaped
``cam`` (``acquire``, ``acquire_time``, ``acquire_period``, ``num_images``,
``trigger_mode``, ROI) and ``hdf1`` (NDFileHDF5-shaped file writer) plus the frame
times of its last burst. One ``trigger()`` arms the camera; the burst starts on the
timing generator's pulse (``trigger_mode="External"``) or at once (``"Internal"``)
and its status finishes once the frames are in the HDF5 file. The frames reach the
documents as StreamResource/StreamDatum (``<name>_image``, external), never inline.

Plans reach devices only through this module: they use the component names and
the checks of :mod:`~xfusion_bluesky.devices.limits` re-exported here, so the same
plan drives the simulation and the IOC.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import DeviceStatus

from xfusion_bluesky.devices.hdf5 import BurstAssets, read_burst
from xfusion_bluesky.devices.limits import (
    DEFAULT_HS_RATE_HZ,
    DEFAULT_UHS_FRAMES,
    DEFAULT_UHS_RATE_HZ,
    HS_SPEC,
    UHS_SPEC,
    BurstSettings,
    CameraSpec,
    check_burst_settings,
    check_delays,
    frame_times,
    hs_frames_in_window,
)
from xfusion_bluesky.errors import InvalidInputError

__all__ = [
    "DEFAULT_HS_RATE_HZ",
    "DEFAULT_UHS_FRAMES",
    "DEFAULT_UHS_RATE_HZ",
    "HS_SPEC",
    "SCALE",
    "UHS_SPEC",
    "ArraySignal",
    "BurstCamera",
    "BurstSettings",
    "CameraSpec",
    "Registration",
    "check_burst_settings",
    "check_delays",
    "dated_directory",
    "frame_times",
    "hs_frames_in_window",
    "new_file_name",
]

logger = logging.getLogger(__name__)

#: Linear scale between the HS (HR) and UHS (LR) pixel grids: the paper's 4×.
SCALE = 4
#: Trigger modes of the ``cam.trigger_mode`` signal, as areaDetector spells them.
TRIGGER_MODES = ("Internal", "External")
#: ``cam.detector_state`` values used here (ADDriver's DetectorState_RBV strings).
IDLE, ACQUIRE, WAITING = "Idle", "Acquire", "Waiting"


def new_file_name(name: str) -> str:
    """Return a unique HDF5 file stem for one staging of camera ``name``."""
    return f"{name}_{uuid.uuid4().hex[:12]}"


def dated_directory(root: str | Path) -> Path:
    """Return ``root/YYYY/MM/DD`` (UTC), the areaDetector ``%Y/%m/%d`` template."""
    return Path(root) / datetime.now(UTC).strftime("%Y/%m/%d")


class ArraySignal(Signal):
    """A soft signal holding an ndarray whose ``describe()`` gives its true dtype.

    ophyd's plain :class:`~ophyd.Signal` reports no ``dtype_numpy`` for arrays, so
    TiledWriter would guess; this reports ``dtype_numpy`` and ``shape`` exactly.
    """

    def describe(self) -> dict[str, dict[str, Any]]:
        """Describe the value with its numpy dtype and shape."""
        value = np.asarray(self._readback)
        desc = super().describe()
        desc[self.name].update(
            dtype="array", dtype_numpy=value.dtype.str, shape=list(value.shape)
        )
        return desc


class Registration(Device):
    """Where the HS field lies in the UHS field, and when its frames really start.

    Read into each scan's start document (the ``registration`` block). The
    geometry is a :class:`~xfusion_bluesky.geometry.Similarity`:
    ``offset_y_hr_px`` / ``offset_x_hr_px`` place HS pixel (0, 0) (after undoing
    the flips) on the UHS field's fused grid (UHS pixel ``i`` spans HR
    ``4i … 4i+3``), ``scale_ratio`` is UHS over HS pixel size, ``rotation_deg``
    the HS image's rotation; ``scale`` stays the fused grid's 4. ``hs_latency_s``
    is the HS camera's trigger latency minus the UHS camera's.

    ``registration_scan()`` measures the geometry (with its 1-σ uncertainties,
    ``measured_at``, and the ROIs it was measured for), ``latency_scan()`` the
    latency. While ``measured_by`` / ``latency_measured_by`` say ``"nominal"``,
    the uncertainties, ``measured_at`` and the measured ROIs mean nothing (0)
    and are recorded as null.
    """

    scale = Cpt(Signal, value=SCALE, kind="normal")
    offset_y_hr_px = Cpt(Signal, value=0, kind="normal")
    offset_x_hr_px = Cpt(Signal, value=0, kind="normal")
    flip_y = Cpt(Signal, value=False, kind="normal")
    flip_x = Cpt(Signal, value=False, kind="normal")
    measured_by = Cpt(Signal, value="nominal", kind="normal")
    scale_ratio = Cpt(Signal, value=float(SCALE), kind="normal")
    rotation_deg = Cpt(Signal, value=0.0, kind="normal")
    scale_ratio_std = Cpt(Signal, value=0.0, kind="normal")
    rotation_deg_std = Cpt(Signal, value=0.0, kind="normal")
    offset_y_std_hr_px = Cpt(Signal, value=0.0, kind="normal")
    offset_x_std_hr_px = Cpt(Signal, value=0.0, kind="normal")
    point_rms_std_hr_px = Cpt(Signal, value=0.0, kind="normal")
    #: POSIX time of the measurement (0 while nominal).
    measured_at = Cpt(Signal, value=0.0, kind="normal")
    #: Camera ROIs ``[min_y, min_x, size_y, size_x]`` the geometry was measured for.
    measured_uhs_roi = Cpt(
        ArraySignal, value=np.zeros(4, dtype=np.int64), kind="normal"
    )
    measured_hs_roi = Cpt(ArraySignal, value=np.zeros(4, dtype=np.int64), kind="normal")
    hs_latency_s = Cpt(Signal, value=0.0, kind="normal")
    hs_latency_std_s = Cpt(Signal, value=0.0, kind="normal")
    latency_measured_by = Cpt(Signal, value="nominal", kind="normal")

    def reset(self, offset_hr_px: tuple[float, float] = (0, 0)) -> None:
        """Put back the nominal registration: ratio 4, no rotation, this offset.

        Every signal returns to its default (flips off, zero latency, no
        uncertainty nor measured ROIs, both ``measured_by`` ``"nominal"``).
        """
        for name in self.component_names:
            default = getattr(type(self), name).kwargs["value"]
            getattr(self, name).put(
                np.copy(default) if name.endswith("roi") else default
            )
        self.offset_y_hr_px.put(offset_hr_px[0])
        self.offset_x_hr_px.put(offset_hr_px[1])


class BurstCamera(Device):
    """A burst camera whose trigger arms it and whose frames go to an HDF5 file.

    Subclasses give ``cam`` and ``hdf1`` components and implement
    :meth:`_open_file`, :meth:`_close_file`, :meth:`_arm` and :meth:`_disarm`; this
    class does validation, frame times, asset documents and the trigger status.

    Parameters
    ----------
    *args, **kwargs
        Passed to :class:`ophyd.Device`.
    timing_channel : Device, optional
        The delay-generator output cabled to this camera (``timing.a`` or
        ``timing.c``); its ``delay`` starts the burst after T0 in External mode.
    """

    spec: ClassVar[CameraSpec]

    frame_times_s = Cpt(ArraySignal, value=np.zeros(0), kind="normal")
    trigger_delay_s = Cpt(Signal, value=0.0, kind="normal")
    #: Pixel size at the sample (sensor pitch / optical magnification); not a PV.
    effective_pixel_size_um = Cpt(Signal, value=1.0, kind="config")

    def __init__(self, *args: Any, timing_channel: Device | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.timing_channel = timing_channel
        self._assets: BurstAssets | None = None
        self._resource_sent = False
        self._datums_sent = 0
        self._burst_ready = False
        self._status: DeviceStatus | None = None
        self._lock = threading.RLock()

    # -- settings ------------------------------------------------------------------

    def settings(self) -> BurstSettings:
        """Return the current acquisition settings read from ``cam``."""
        cam = self.cam
        return BurstSettings(
            frame_rate_hz=1.0 / float(cam.acquire_period.get()),
            exposure_s=float(cam.acquire_time.get()),
            num_images=int(cam.num_images.get()),
            roi=(
                int(cam.min_y.get()),
                int(cam.min_x.get()),
                int(cam.size_y.get()),
                int(cam.size_x.get()),
            ),
        )

    def memory_bytes(self) -> int | None:
        """Return the internal memory available to a burst (None: no limit)."""
        return self.spec.memory_bytes

    def validate(self) -> BurstSettings:
        """Check the current settings against the hardware; return them.

        Raises
        ------
        InvalidInputError
            See :func:`check_burst_settings`; also an unknown trigger mode.
        """
        mode = self.cam.trigger_mode.get()
        if mode not in TRIGGER_MODES:
            raise InvalidInputError(
                f"{self.name} trigger_mode must be one of {TRIGGER_MODES}; got {mode!r}"
            )
        settings = self.settings()
        check_burst_settings(
            self.spec, settings, name=self.name, memory_bytes=self.memory_bytes()
        )
        return settings

    # -- bluesky interface ---------------------------------------------------------

    def stage(self) -> list[object]:
        """Validate the settings, then open this staging's HDF5 file.

        Validation comes first, so a setting the hardware cannot do raises
        before anything is armed or opened.
        """
        settings = self.validate()
        staged = super().stage()
        try:
            path = self._open_file(settings)
        except Exception:
            self.unstage()
            raise
        self._assets = BurstAssets(
            path=path,
            data_key=f"{self.name}_image",
            frames_per_burst=settings.num_images,
            frame_shape=settings.frame_shape,
        )
        self._resource_sent = False
        self._datums_sent = 0
        self._burst_ready = False
        return staged

    def unstage(self) -> list[object]:
        """Disarm, drop any pending burst, and close the HDF5 file."""
        self._abandon("unstaged before the burst finished")
        try:
            if self._assets is not None:
                self._close_file(self._datums_sent)
        finally:
            self._assets = None
        return super().unstage()

    def describe(self) -> dict[str, dict[str, Any]]:
        """Describe the reading, with ``<name>_image`` as an external (STREAM:) key."""
        desc = super().describe()
        settings = self.settings()
        desc[f"{self.name}_image"] = {
            "source": f"{self.flavour}:{self.name}",
            "dtype": "array",
            "dtype_numpy": "<u2",
            "shape": [settings.num_images, *settings.frame_shape],
            "external": "STREAM:",
        }
        desc[self.frame_times_s.name]["shape"] = [settings.num_images]
        desc[self.frame_times_s.name]["dtype_numpy"] = "<f8"
        return desc

    def trigger(self) -> DeviceStatus:
        """Arm for one burst; the status finishes once its frames are in the file.

        In External mode the burst starts on the timing generator's pulse, after
        this camera's channel delay; in Internal mode it starts at once.
        """
        if self._assets is None:
            raise RuntimeError(f"{self.name} must be staged before it is triggered")
        self._abandon("re-armed before the previous burst finished", always=False)
        settings = self.settings()
        external = self.cam.trigger_mode.get() == "External"
        delay = self._channel_delay() if external else 0.0
        times = frame_times(delay, settings.frame_rate_hz, settings.num_images)
        status = DeviceStatus(self)
        finish, fail = status.set_finished, status.set_exception
        with self._lock:
            self._status = status
            self._burst_ready = False

        def done(error: BaseException | None = None) -> None:
            with self._lock:
                if self._status is not status:
                    return  # abandoned: a newer arming or unstage owns the camera
                self._status = None
                if error is None:
                    self.trigger_delay_s.put(delay)
                    self.frame_times_s.put(times)
                    self._burst_ready = True
            if error is None:
                finish()
            else:
                fail(error)

        self._arm(settings, times, slot=self._datums_sent, done=done)
        return status

    def collect_asset_docs(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield the StreamResource once per staging, then one StreamDatum per burst."""
        if self._assets is None or not self._burst_ready:
            return
        if not self._resource_sent:
            self._resource_sent = True
            yield "stream_resource", self._assets.stream_resource_doc
        yield "stream_datum", self._assets.stream_datum(self._datums_sent)
        self._datums_sent += 1
        self._burst_ready = False

    def pause(self) -> None:
        """Disarm on a RunEngine pause; the replayed trigger re-arms the same slot."""
        self._abandon("paused before the burst finished")

    def stop(self, *, success: bool = False) -> None:
        """Disarm and drop a pending burst."""
        self._abandon("stopped before the burst finished")
        super().stop(success=success)

    # -- helpers -------------------------------------------------------------------

    def _abandon(self, reason: str, *, always: bool = True) -> None:
        """Disarm the camera and drop the pending burst, if any.

        The dropped burst's status is left unfinished rather than failed: the
        RunEngine turns any status failing during a plan into the plan's error,
        which would hide the reason the plan itself gave (a timeout, an abort).
        With ``always=False`` an idle camera is left alone (no disarm command).
        """
        with self._lock:
            status, self._status = self._status, None
        if status is not None:
            logger.info("%s: burst dropped (%s)", self.name, reason)
        if always or status is not None:
            self._disarm()

    def _channel_delay(self) -> float:
        """Return the delay of the cabled timing channel (0 without one)."""
        if self.timing_channel is None:
            return 0.0
        return float(self.timing_channel.delay.get())

    @property
    def flavour(self) -> str:
        """``"sim"`` or ``"epics"``: the data key's ``source`` prefix."""
        return "sim"

    def last_burst(self) -> np.ndarray:
        """Return the last burst read into an event, uint16 (n, h, w), from its file.

        Raises
        ------
        RuntimeError
            Not staged, or no burst was read yet in this staging.
        """
        if self._assets is None or self._datums_sent == 0:
            raise RuntimeError(f"{self.name} has recorded no burst in this staging")
        return read_burst(
            self._assets.path, self._datums_sent - 1, self._assets.frames_per_burst
        )

    def last_burst_path(self) -> str | None:
        """Return the HDF5 file of the current staging (None when not staged)."""
        return None if self._assets is None else self._assets.path

    # Hooks for the flavours.
    def _open_file(self, settings: BurstSettings) -> str:
        raise NotImplementedError

    def _close_file(self, num_bursts: int) -> None:
        raise NotImplementedError

    def _arm(
        self,
        settings: BurstSettings,
        times: np.ndarray,
        *,
        slot: int,
        done: Callable[[BaseException | None], None],
    ) -> None:
        raise NotImplementedError

    def _disarm(self) -> None:
        raise NotImplementedError
