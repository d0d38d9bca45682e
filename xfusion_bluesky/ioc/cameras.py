"""caproto PVGroups mimicking the AD cam and HDF5 plugin records.

Each camera is ``<P>UHS:`` / ``<P>HS:`` with ``cam1:`` (ADBase PV names) and
``HDF1:`` (NDFileHDF5's, Stream mode). ``Acquire`` = 1 arms the camera: in
External trigger mode it waits (``DetectorState_RBV`` = Waiting) for the timing
generator's pulse, in Internal mode it starts at once. A burst is rendered from
the simulated event (the same code as the sim devices), appended to the open HDF5
file in the NDFileHDF5 layout, and only then ``Acquire_RBV`` returns to 0.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from caproto import ChannelType
from caproto.server import PVGroup, SubGroup, pvproperty

from xfusion_bluesky.devices.base import (
    DEFAULT_HS_RATE_HZ,
    DEFAULT_UHS_FRAMES,
    DEFAULT_UHS_RATE_HZ,
    HS_SPEC,
    UHS_SPEC,
    CameraSpec,
    frame_times,
)
from xfusion_bluesky.devices.hdf5 import NDFileHDF5Writer
from xfusion_bluesky.devices.sim.event import HSMount, SimEvent
from xfusion_bluesky.ioc.records import (
    ACQUIRE,
    DETECTOR_STATES,
    readback,
    setting,
    text,
)

__all__ = ["CameraGroup", "HSCameraGroup", "UHSCameraGroup"]

logger = logging.getLogger(__name__)

_ENUM = ChannelType.ENUM


class CamGroup(PVGroup):
    """``cam1:``: the ADBase records a burst camera uses."""

    acquire = pvproperty(
        name="Acquire", value="Done", dtype=_ENUM, enum_strings=ACQUIRE,
        doc="Arm (External) or start (Internal) one burst; 0 disarms",
    )  # fmt: skip
    acquire_rbv = readback("Acquire", "Done", dtype=_ENUM, enum_strings=ACQUIRE)
    acquire_time = setting("AcquireTime", 2.5e-7, doc="Exposure per frame (s)")
    acquire_time_rbv = readback("AcquireTime", 2.5e-7)
    acquire_period = setting("AcquirePeriod", 5e-7, doc="Frame period (s)")
    acquire_period_rbv = readback("AcquirePeriod", 5e-7)
    num_images = setting("NumImages", 128, doc="Frames per burst")
    num_images_rbv = readback("NumImages", 128)
    image_mode = setting(
        "ImageMode", "Multiple", dtype=_ENUM,
        enum_strings=["Single", "Multiple", "Continuous"],
    )  # fmt: skip
    image_mode_rbv = readback(
        "ImageMode", "Multiple", dtype=_ENUM,
        enum_strings=["Single", "Multiple", "Continuous"],
    )  # fmt: skip
    trigger_mode = setting(
        "TriggerMode", "Internal", dtype=_ENUM, enum_strings=["Internal", "External"],
        doc="External: the burst starts on the timing generator's pulse",
    )  # fmt: skip
    trigger_mode_rbv = readback(
        "TriggerMode", "Internal", dtype=_ENUM, enum_strings=["Internal", "External"]
    )
    min_x = setting("MinX", 0, doc="ROI origin, columns")
    min_x_rbv = readback("MinX", 0)
    min_y = setting("MinY", 0, doc="ROI origin, rows")
    min_y_rbv = readback("MinY", 0)
    size_x = setting("SizeX", 1, doc="ROI width")
    size_x_rbv = readback("SizeX", 1)
    size_y = setting("SizeY", 1, doc="ROI height")
    size_y_rbv = readback("SizeY", 1)
    max_size_x = readback("MaxSizeX", 1, doc="Sensor width")
    max_size_y = readback("MaxSizeY", 1, doc="Sensor height")
    manufacturer = readback("Manufacturer", "", dtype=ChannelType.STRING)
    model = readback("Model", "", dtype=ChannelType.STRING)
    data_type = setting(
        "DataType", "UInt16", dtype=_ENUM, enum_strings=["UInt8", "UInt16"]
    )
    data_type_rbv = readback(
        "DataType", "UInt16", dtype=_ENUM, enum_strings=["UInt8", "UInt16"]
    )
    array_counter = setting("ArrayCounter", 0, doc="Frames acquired")
    array_counter_rbv = readback("ArrayCounter", 0)
    detector_state = readback(
        "DetectorState", "Idle", dtype=_ENUM, enum_strings=DETECTOR_STATES
    )

    @acquire.putter  # type: ignore[no-redef]
    async def acquire(self, instance: Any, value: Any) -> Any:
        """Arm (1) or disarm (0) the camera; ``Acquire_RBV`` follows."""
        start = value in (1, "Acquire")
        await self.acquire_rbv.write("Acquire" if start else "Done")
        if start:
            await self.parent.arm()
        else:
            await self.parent.disarm()
        return value


class PhantomCamGroup(CamGroup):
    """Phantom ``cam1:``: adds ADPhantom's ``MaxFrameCount_RBV`` for the ROI."""

    memory_bytes: ClassVar[int] = HS_SPEC.memory_bytes or 0
    max_frame_count = readback("MaxFrameCount", 0, doc="Frames the memory holds")

    async def setting_changed(self, name: str, value: Any) -> None:
        """Recompute the memory size in frames when the ROI changes."""
        # The PV still holds its old value: caproto stores it after the putter.
        if name == "SizeX":
            await self.update_max_frames(size_x=int(value))
        elif name == "SizeY":
            await self.update_max_frames(size_y=int(value))

    async def update_max_frames(
        self, *, size_x: int | None = None, size_y: int | None = None
    ) -> None:
        """Write ``MaxFrameCount_RBV`` for the ROI at 12 bit per pixel."""
        width = int(self.size_x.value) if size_x is None else size_x
        height = int(self.size_y.value) if size_y is None else size_y
        frame_bytes = math.ceil(width * height * HS_SPEC.bit_depth / 8)
        await self.max_frame_count.write(self.memory_bytes // max(frame_bytes, 1))


class HDF5Group(PVGroup):
    """``HDF1:``: an NDFileHDF5 plugin in Stream mode (one file per capture)."""

    enable = setting(
        "EnableCallbacks", "Enable", dtype=_ENUM, enum_strings=["Disable", "Enable"]
    )
    enable_rbv = readback(
        "EnableCallbacks", "Enable", dtype=_ENUM, enum_strings=["Disable", "Enable"]
    )
    file_path = setting("FilePath", **text("/tmp/"))
    file_path_rbv = readback("FilePath", **text("/tmp/"))
    file_name = setting("FileName", **text("image"))
    file_name_rbv = readback("FileName", **text("image"))
    file_template = setting("FileTemplate", **text("%s%s.h5"))
    file_template_rbv = readback("FileTemplate", **text("%s%s.h5"))
    file_write_mode = setting(
        "FileWriteMode", "Stream", dtype=_ENUM,
        enum_strings=["Single", "Capture", "Stream"],
    )  # fmt: skip
    file_write_mode_rbv = readback(
        "FileWriteMode", "Stream", dtype=_ENUM,
        enum_strings=["Single", "Capture", "Stream"],
    )  # fmt: skip
    num_capture = setting("NumCapture", 0, doc="0: unlimited")
    num_capture_rbv = readback("NumCapture", 0)
    num_captured = readback("NumCaptured", 0)
    capture = pvproperty(
        name="Capture", value="Done", dtype=_ENUM, enum_strings=["Done", "Capture"],
        doc="1 opens FileTemplate % (FilePath, FileName); 0 closes it",
    )  # fmt: skip
    capture_rbv = readback(
        "Capture", "Done", dtype=_ENUM, enum_strings=["Done", "Capture"]
    )
    full_file_name = readback("FullFileName", **text(""))

    writer: NDFileHDF5Writer | None = None

    @capture.putter  # type: ignore[no-redef]
    async def capture(self, instance: Any, value: Any) -> Any:
        """Open (1) or close (0) the capture file; ``Capture_RBV`` follows."""
        if value in (1, "Capture"):
            path = Path(
                self.file_template.value % (self.file_path.value, self.file_name.value)
            )
            cam = self.parent.cam
            shape = (int(cam.size_y.value), int(cam.size_x.value))
            self.close_writer()
            self.writer = NDFileHDF5Writer(path, shape)
            await self.full_file_name.write(str(path))
            await self.num_captured.write(0)
            await self.capture_rbv.write("Capture")
        else:
            self.close_writer()
            await self.capture_rbv.write("Done")
        return value

    def close_writer(self) -> None:
        """Close the open file, if any."""
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.close()


class CameraGroup(PVGroup):
    """One camera: ``cam1:`` + ``HDF1:`` and the burst engine between them."""

    spec: ClassVar[CameraSpec]
    cam = SubGroup(CamGroup, prefix="cam1:")
    hdf1 = SubGroup(HDF5Group, prefix="HDF1:")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.armed = False
        self.burst: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        """Publish the sensor description and a full-sensor ROI."""
        for pv, value in (
            (self.cam.max_size_x, self.spec.sensor_width),
            (self.cam.max_size_y, self.spec.sensor_height),
            (self.cam.manufacturer, self.spec.manufacturer),
            (self.cam.model, self.spec.model),
        ):
            await pv.write(value)
        rate = DEFAULT_UHS_RATE_HZ if self.spec.role == "uhs" else DEFAULT_HS_RATE_HZ
        frames = round(DEFAULT_UHS_FRAMES * rate / DEFAULT_UHS_RATE_HZ)
        settings: tuple[tuple[Any, float], ...] = (
            (self.cam.size_x, self.spec.sensor_width),
            (self.cam.size_y, self.spec.sensor_height),
            (self.cam.acquire_period, 1.0 / rate),
            (self.cam.acquire_time, 0.5 / rate),
            (self.cam.num_images, frames),
        )
        for setpoint, number in settings:
            await setpoint.write(number)  # the putter mirrors it to the _RBV

    async def arm(self) -> None:
        """Wait for the pulse (External) or start the burst now (Internal)."""
        if self.cam.trigger_mode.value == "External":
            self.armed = True
            await self.cam.detector_state.write("Waiting")
        else:
            self.start_burst(delay_s=0.0, trigger_time=time.time(), pulse_id=None)

    async def disarm(self) -> None:
        """Drop an armed or running burst; return to Idle."""
        self.armed = False
        if self.burst is not None and not self.burst.done():
            self.burst.cancel()
        await self.cam.detector_state.write("Idle")

    def on_pulse(self, *, delay_s: float, trigger_time: float, pulse_id: int) -> None:
        """Start the burst of an armed camera: the timing generator fired."""
        if self.armed:
            self.armed = False
            self.start_burst(
                delay_s=delay_s, trigger_time=trigger_time, pulse_id=pulse_id
            )

    def start_burst(
        self, *, delay_s: float, trigger_time: float, pulse_id: int | None
    ) -> None:
        """Run one burst as a task (rendering happens in a worker thread)."""
        self.burst = asyncio.get_running_loop().create_task(
            self._burst(delay_s, trigger_time, pulse_id)
        )

    async def _burst(
        self, delay_s: float, trigger_time: float, pulse_id: int | None
    ) -> None:
        cam = self.cam
        try:
            await cam.detector_state.write("Acquire")
            num_images = int(cam.num_images.value)
            times = frame_times(
                delay_s, 1.0 / float(cam.acquire_period.value), num_images
            )
            event, seed = self.parent.event_for(pulse_id)
            shape = (int(cam.size_y.value), int(cam.size_x.value))
            frames = await asyncio.get_running_loop().run_in_executor(
                None, self.render, event, times, shape, seed
            )
            writer = self.hdf1.writer
            if writer is not None:
                await cam.detector_state.write("Saving")
                start = int(self.hdf1.num_captured.value)
                writer.write(
                    start, frames, trigger_time=trigger_time, frame_times_s=times
                )
                await self.hdf1.num_captured.write(writer.num_frames)
            await cam.array_counter_rbv.write(
                int(cam.array_counter_rbv.value) + num_images
            )
            await cam.detector_state.write("Idle")
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("%s burst failed", self.prefix)
            await cam.detector_state.write("Error")
        finally:
            await cam.acquire.write("Done")
            await cam.acquire_rbv.write("Done")

    def render(
        self, event: SimEvent, times: np.ndarray, shape: tuple[int, int], seed: int
    ) -> np.ndarray:
        """Render one burst of ``shape`` frames at ``times`` (worker thread)."""
        raise NotImplementedError


class UHSCameraGroup(CameraGroup):
    """The HPV-X2's records; it sees the simulated event binned 4×."""

    spec = UHS_SPEC

    def render(
        self, event: SimEvent, times: np.ndarray, shape: tuple[int, int], seed: int
    ) -> np.ndarray:
        """Render a UHS burst."""
        return event.uhs_burst(self.spec, times, shape, seed=seed)


class HSCameraGroup(CameraGroup):
    """The Phantom's records; it sees a mounted window of the event."""

    spec = HS_SPEC
    cam = SubGroup(PhantomCamGroup, prefix="cam1:")

    async def startup(self) -> None:
        """Publish the sensor and the memory size in frames."""
        await super().startup()
        await self.cam.update_max_frames()

    def render(
        self, event: SimEvent, times: np.ndarray, shape: tuple[int, int], seed: int
    ) -> np.ndarray:
        """Render an HS burst inside the UHS field, as mounted."""
        mount: HSMount = self.parent.hs_mount()
        return event.hs_burst(
            self.spec,
            times,
            shape,
            field_shape_hr=self.parent.field_shape_hr(),
            mount=mount,
            seed=seed,
        )
