"""UHSCamera, HSCamera: AD cam + HDF5 plugin over Channel Access.

areaDetector-style devices: ``cam1:`` with ADBase PV names, ``HDF1:`` with
NDFileHDF5's. Neither camera has a public EPICS driver with burst support (no
HPV-X2 driver exists; ADPhantom is in early development), so vendor PVs follow
ADPhantom where it has one (``MaxFrameCount_RBV``) and are ours otherwise. Only the
PVs used are declared, so the devices connect to any IOC serving them: the caproto
simulation (``xfusion-bluesky sim-ioc``) or a real driver.

An IOC that restarts comes back with its own ROI (full frames, unless autosave
restores it), and a scan that keeps the camera's ROI would record that. So each
camera remembers the ROI this session wrote to it and checks the IOC still holds
it before a scan: :meth:`~_EpicsBurstCamera.check_roi` raises naming both ROIs,
and ``restore_roi()`` / ``accept_roi()`` settle which one to use.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from ophyd import ADComponent as ADCpt
from ophyd import EpicsSignalRO
from ophyd.areadetector import ADBase
from ophyd.areadetector import EpicsSignalWithRBV as SignalWithRBV

from xfusion_bluesky.devices.base import (
    HS_SPEC,
    UHS_SPEC,
    WAITING,
    BurstCamera,
    BurstSettings,
    dated_directory,
    new_file_name,
)
from xfusion_bluesky.errors import XFusionError

__all__ = [
    "ROI_KEYS",
    "BurstCamDriver",
    "BurstHDF5Plugin",
    "HSCamera",
    "RoiChangedError",
    "UHSCamera",
]

logger = logging.getLogger(__name__)

#: Longest wait for the IOC to confirm arming / file creation.
_HANDSHAKE_TIMEOUT_S = 10.0
#: The ROI's ``cam`` components, in the order of ``BurstSettings.roi``.
ROI_KEYS = ("min_y", "min_x", "size_y", "size_x")


class RoiChangedError(XFusionError):
    """The IOC's ROI is not the one this session set (an IOC restart resets it)."""


class _RoiSignal(SignalWithRBV):
    """A ROI setpoint that tells its camera what this session wrote to it."""

    def put(self, value: Any, *args: Any, **kwargs: Any) -> None:
        """Write ``value`` and record it as the camera's configured ROI value."""
        super().put(value, *args, **kwargs)
        camera = self.root
        if isinstance(camera, _EpicsBurstCamera):
            camera.configured_roi[self.attr_name] = int(value)


class BurstCamDriver(ADBase):
    """The ``cam1:`` PVs a burst camera needs (ADBase names)."""

    acquire = ADCpt(SignalWithRBV, "Acquire", kind="omitted")
    acquire_time = ADCpt(SignalWithRBV, "AcquireTime", kind="config")
    acquire_period = ADCpt(SignalWithRBV, "AcquirePeriod", kind="config")
    num_images = ADCpt(SignalWithRBV, "NumImages", kind="config")
    image_mode = ADCpt(SignalWithRBV, "ImageMode", string=True, kind="omitted")
    trigger_mode = ADCpt(SignalWithRBV, "TriggerMode", string=True, kind="config")
    min_x = ADCpt(_RoiSignal, "MinX", kind="config")
    min_y = ADCpt(_RoiSignal, "MinY", kind="config")
    size_x = ADCpt(_RoiSignal, "SizeX", kind="config")
    size_y = ADCpt(_RoiSignal, "SizeY", kind="config")
    max_size_x = ADCpt(EpicsSignalRO, "MaxSizeX_RBV", kind="omitted")
    max_size_y = ADCpt(EpicsSignalRO, "MaxSizeY_RBV", kind="omitted")
    manufacturer = ADCpt(EpicsSignalRO, "Manufacturer_RBV", string=True, kind="config")
    model = ADCpt(EpicsSignalRO, "Model_RBV", string=True, kind="config")
    data_type = ADCpt(SignalWithRBV, "DataType", string=True, kind="omitted")
    array_counter = ADCpt(SignalWithRBV, "ArrayCounter", kind="omitted")
    detector_state = ADCpt(
        EpicsSignalRO, "DetectorState_RBV", string=True, kind="omitted"
    )


class PhantomCamDriver(BurstCamDriver):
    """Phantom ``cam1:``: adds ADPhantom's memory size in frames for this ROI."""

    max_frame_count = ADCpt(EpicsSignalRO, "MaxFrameCount_RBV", kind="omitted")


class BurstHDF5Plugin(ADBase):
    """The ``HDF1:`` PVs of an NDFileHDF5 plugin in Stream mode."""

    enable = ADCpt(SignalWithRBV, "EnableCallbacks", string=True, kind="omitted")
    file_path = ADCpt(SignalWithRBV, "FilePath", string=True, kind="omitted")
    file_name = ADCpt(SignalWithRBV, "FileName", string=True, kind="omitted")
    file_template = ADCpt(SignalWithRBV, "FileTemplate", string=True, kind="omitted")
    file_write_mode = ADCpt(SignalWithRBV, "FileWriteMode", string=True, kind="omitted")
    num_capture = ADCpt(SignalWithRBV, "NumCapture", kind="omitted")
    num_captured = ADCpt(EpicsSignalRO, "NumCaptured_RBV", kind="omitted")
    capture = ADCpt(SignalWithRBV, "Capture", kind="omitted")
    full_file_name = ADCpt(
        EpicsSignalRO, "FullFileName_RBV", string=True, kind="omitted"
    )


class _EpicsBurstCamera(BurstCamera):
    """Shared body of the EPICS cameras: capture handshake and arming.

    Parameters
    ----------
    prefix : str
        PV prefix of the camera (``cam1:`` and ``HDF1:`` follow it).
    *args, **kwargs
        Passed to :class:`BurstCamera` (``name``, ``timing_channel``).
    write_dir : str or Path
        Root of the HDF5 files as the IOC sees it (same path on this host).
    """

    hdf1 = ADCpt(BurstHDF5Plugin, "HDF1:", kind="omitted")

    def __init__(
        self, prefix: str, *args: Any, write_dir: str | Path = ".", **kwargs: Any
    ):
        super().__init__(prefix, *args, **kwargs)
        self.write_dir = Path(write_dir)
        self._subscription: int | None = None
        #: ROI values this session wrote (``ROI_KEYS`` → value): what a scan expects.
        self.configured_roi: dict[str, int] = {}
        self.stage_sigs.update(
            [("cam.image_mode", "Multiple"), ("cam.data_type", "UInt16")]
        )
        self.hdf1.stage_sigs.update(
            [
                ("enable", "Enable"),
                ("file_template", "%s%s.h5"),
                ("file_write_mode", "Stream"),
                ("num_capture", 0),
            ]
        )

    @property
    def flavour(self) -> str:
        """Return ``"epics"``."""
        return "epics"

    def roi_changes(self) -> dict[str, tuple[int, int]]:
        """Return the ROI values the IOC no longer holds: key → (set, now)."""
        changed = {}
        for key, wanted in self.configured_roi.items():
            now = int(getattr(self.cam, key).get())
            if now != wanted:
                changed[key] = (wanted, now)
        return changed

    def check_roi(self) -> None:
        """Raise when the IOC's ROI is not the one this session set.

        Raises
        ------
        RoiChangedError
            Names both ROIs and the two ways on: :meth:`restore_roi` or
            :meth:`accept_roi`.
        """
        changed = self.roi_changes()
        if not changed:
            return
        now = self.settings().roi
        wanted = tuple(
            self.configured_roi.get(key, now[i]) for i, key in enumerate(ROI_KEYS)
        )
        raise RoiChangedError(
            f"{self.name}: the IOC's ROI (min_y, min_x, size_y, size_x) is {now}, "
            f"not the {wanted} this session set; an IOC restart resets it (to full "
            f"frames). Set it again with {self.name}.restore_roi(), or keep the "
            f"IOC's with {self.name}.accept_roi()"
        )

    def restore_roi(self) -> None:
        """Write the ROI this session set back to the IOC (after an IOC restart)."""
        for key in ROI_KEYS:
            if key in self.configured_roi:
                signal = getattr(self.cam, key)
                signal.set(self.configured_roi[key]).wait(_HANDSHAKE_TIMEOUT_S)
        logger.info("%s: ROI %s set again", self.name, self.settings().roi)

    def accept_roi(self) -> None:
        """Take the IOC's current ROI as the one scans expect from now on."""
        for key in ROI_KEYS:
            self.configured_roi[key] = int(getattr(self.cam, key).get())

    def validate(self) -> BurstSettings:
        """Check the ROI is the one this session set, then the settings."""
        self.check_roi()
        return super().validate()

    def _open_file(self, settings: BurstSettings) -> str:
        directory = dated_directory(self.write_dir)
        self.hdf1.file_path.set(f"{directory}/").wait(_HANDSHAKE_TIMEOUT_S)
        self.hdf1.file_name.set(new_file_name(self.name)).wait(_HANDSHAKE_TIMEOUT_S)
        self.hdf1.capture.put(1, wait=False)  # Stream-mode Capture completes at stop
        _wait_until(lambda: self.hdf1.capture.get() == 1, "capture to start", self)
        return str(self.hdf1.full_file_name.get())

    def _close_file(self, num_bursts: int) -> None:
        self.hdf1.capture.put(0, wait=False)
        _wait_until(lambda: self.hdf1.capture.get() == 0, "capture to stop", self)

    def _arm(
        self,
        settings: BurstSettings,
        times: np.ndarray,
        *,
        slot: int,
        done: Callable[[BaseException | None], None],
    ) -> None:
        armed = {"seen": False}

        def watch(value: Any = None, **kwargs: Any) -> None:
            if int(value) == 1:
                armed["seen"] = True
            elif armed["seen"]:  # Acquire_RBV 1 -> 0: the burst is in the file
                self._unsubscribe()
                done(None)

        self._unsubscribe()
        self._subscription = self.cam.acquire.subscribe(watch, run=False)
        self.cam.acquire.put(1, wait=False)
        if self.cam.trigger_mode.get() == "External":
            # The plan fires right after trigger(): be armed before returning.
            _wait_until(
                lambda: self.cam.detector_state.get() == WAITING, "arming", self
            )

    def _unsubscribe(self) -> None:
        token, self._subscription = self._subscription, None
        if token is not None:
            self.cam.acquire.unsubscribe(token)

    def _disarm(self) -> None:
        self._unsubscribe()
        if self.connected and self.cam.acquire.get() != 0:
            self.cam.acquire.put(0, wait=False)


def _wait_until(predicate: Callable[[], bool], what: str, device: Any) -> None:
    deadline = time.monotonic() + _HANDSHAKE_TIMEOUT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{device.name}: the IOC did not confirm {what} within "
                f"{_HANDSHAKE_TIMEOUT_S:g} s; is the IOC running and the PV "
                f"prefix {device.prefix!r} right?"
            )
        time.sleep(0.005)


class UHSCamera(_EpicsBurstCamera):
    """Shimadzu HPV-X2 through an areaDetector-style IOC (``cam1:`` + ``HDF1:``)."""

    spec = UHS_SPEC
    cam = ADCpt(BurstCamDriver, "cam1:", kind="config")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.effective_pixel_size_um.put(8.0)


class HSCamera(_EpicsBurstCamera):
    """Phantom TMX 7510 through an areaDetector-style IOC (``cam1:`` + ``HDF1:``)."""

    spec = HS_SPEC
    cam = ADCpt(PhantomCamDriver, "cam1:", kind="config")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.effective_pixel_size_um.put(2.0)

    def memory_bytes(self) -> int | None:
        """Return the memory the IOC reports, from ``MaxFrameCount_RBV`` and the ROI."""
        settings = self.settings()
        frame_bytes = math.ceil(
            settings.roi[2] * settings.roi[3] * self.spec.bit_depth / 8
        )
        return int(self.cam.max_frame_count.get()) * frame_bytes
