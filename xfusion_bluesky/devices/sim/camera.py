"""SimUHSCamera, SimHSCamera: render the scene, write a burst to HDF5.

Shaped like their EPICS flavours (an areaDetector ``cam`` and ``hdf1`` with the same
component names, soft signals instead of PVs), so plans cannot tell them apart. A
burst is rendered from the simulated event of the timing generator's pulse
(External) or of its ``scene_seed`` (Internal), in a worker thread, and written in
the NDFileHDF5 layout; the trigger status finishes when the frames are flushed.

Each camera has a trigger latency (``latency_s``, the truth; plans never read it):
a burst images the event at its frame times plus the latency, while the frame
times it records stay the nominal ones, as a real camera's do.
:func:`~xfusion_bluesky.devices.sim.mount.misalign` gives a pair a random
geometry and latencies, as real optics and electronics would.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from ophyd import Component as Cpt
from ophyd import Signal

from xfusion_bluesky.devices.base import (
    ACQUIRE,
    DEFAULT_HS_RATE_HZ,
    DEFAULT_UHS_FRAMES,
    DEFAULT_UHS_RATE_HZ,
    HS_SPEC,
    IDLE,
    SCALE,
    UHS_SPEC,
    WAITING,
    BurstCamera,
    BurstSettings,
    dated_directory,
    new_file_name,
)
from xfusion_bluesky.devices.hdf5 import NDFileHDF5Writer
from xfusion_bluesky.devices.sim.event import SimEvent
from xfusion_bluesky.devices.sim.mount import HSMount
from xfusion_bluesky.devices.sim.timing import Pulse, SimTimingGenerator
from xfusion_bluesky.devices.soft import SoftCam, SoftHDF5Plugin
from xfusion_bluesky.errors import InvalidInputError

__all__ = ["SimCam", "SimHDF5Plugin", "SimHSCamera", "SimUHSCamera"]

logger = logging.getLogger(__name__)


class SimCam(SoftCam):
    """The simulated cameras' ``cam1:``: Internal trigger until a plan sets it."""


class SimHDF5Plugin(SoftHDF5Plugin):
    """The simulated cameras' ``HDF1:``."""


class _SimBurstCamera(BurstCamera):
    """Shared body of the sim cameras: file, arming and the render thread.

    Parameters
    ----------
    *args, **kwargs
        Passed to :class:`BurstCamera`.
    timing : SimTimingGenerator, optional
        The generator whose pulse starts External bursts; also defines the event
        (an Internal-only camera without one images a default event).
    write_dir : str or Path, optional
        Root of the HDF5 files (``write_dir/YYYY/MM/DD/<name>_<id>.h5``);
        default the current directory.
    """

    cam = Cpt(SimCam, kind="config")
    hdf1 = Cpt(SimHDF5Plugin, kind="omitted")
    #: Seconds from the trigger reaching the camera to its first frame, beyond
    #: the channel delay: the truth a latency measurement finds (plans do not read it).
    latency_s = Cpt(Signal, value=0.0, kind="config")

    def __init__(
        self,
        *args: Any,
        timing: SimTimingGenerator | None = None,
        write_dir: str | Path | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.timing = timing
        self.write_dir = Path(write_dir) if write_dir is not None else Path.cwd()
        self._writer: NDFileHDF5Writer | None = None
        self._token: object | None = None
        self._listener: Callable[[Pulse], None] | None = None
        #: The last burst written, uint16 (n, h, w): what the file must hold.
        self.last_frames: np.ndarray | None = None
        self.cam.manufacturer.put(self.spec.manufacturer)
        self.cam.model.put(self.spec.model)
        self.cam.max_size_x.put(self.spec.sensor_width)
        self.cam.max_size_y.put(self.spec.sensor_height)
        self.cam.size_x.put(self.spec.sensor_width)
        self.cam.size_y.put(self.spec.sensor_height)
        self.stage_sigs["cam.image_mode"] = "Multiple"

    def validate(self) -> BurstSettings:
        """Check settings; External mode also needs a cabled timing generator."""
        settings = super().validate()
        if self.cam.trigger_mode.get() == "External" and self.timing is None:
            raise InvalidInputError(
                f"{self.name} is in External trigger mode but has no timing "
                "generator; pass timing= or set cam.trigger_mode to 'Internal'"
            )
        return settings

    def _event(self) -> SimEvent:
        return self.timing.event() if self.timing is not None else SimEvent()

    def _open_file(self, settings: BurstSettings) -> str:
        directory = dated_directory(self.write_dir)
        stem = new_file_name(self.name)
        path = directory / f"{stem}.h5"
        self.hdf1.file_path.put(f"{directory}/")
        self.hdf1.file_name.put(stem)
        self.hdf1.full_file_name.put(str(path))
        self._writer = NDFileHDF5Writer(path, settings.frame_shape)
        self.hdf1.capture.put(1)
        self.hdf1.num_captured.put(0)
        return str(path)

    def _close_file(self, num_bursts: int) -> None:
        with self._lock:
            writer, self._writer = self._writer, None
            if writer is not None:
                writer.close(num_bursts * int(self.cam.num_images.get()))
        self.hdf1.capture.put(0)

    def _arm(
        self,
        settings: BurstSettings,
        times: np.ndarray,
        *,
        slot: int,
        done: Callable[[BaseException | None], None],
    ) -> None:
        token = object()
        with self._lock:
            self._token = token
        self.cam.acquire.put(1)

        def start(pulse: Pulse) -> None:
            threading.Thread(
                target=self._acquire,
                args=(token, pulse, settings, times, slot, done),
                name=f"{self.name}-burst",
                daemon=True,
            ).start()

        if self.cam.trigger_mode.get() == "External":
            if self.timing is None:  # validate() refuses this at stage
                raise InvalidInputError(f"{self.name} has no timing generator")
            self._listener = start
            self.cam.detector_state.put(WAITING)
            self.timing.connect_camera(start)
        else:
            event = self._event()
            self.cam.detector_state.put(ACQUIRE)
            start(Pulse(time.time(), 0, event, int(event.seed)))

    def _acquire(
        self,
        token: object,
        pulse: Pulse,
        settings: BurstSettings,
        times: np.ndarray,
        slot: int,
        done: Callable[[BaseException | None], None],
    ) -> None:
        """Render and write one burst (worker thread); report through ``done``."""
        try:
            self.cam.detector_state.put(ACQUIRE)
            # The event is seen late by the latency; the recorded times stay nominal.
            seen_at = np.asarray(times, dtype=np.float64) + float(self.latency_s.get())
            frames = self._render(pulse, settings, seen_at)
            with self._lock:
                if self._token is not token or self._writer is None:
                    return  # disarmed meanwhile: the burst is dropped
                start = slot * settings.num_images
                self._writer.write(
                    start, frames, trigger_time=pulse.trigger_time, frame_times_s=times
                )
                self.last_frames = frames
                self._token = None
                self.hdf1.num_captured.put(self._writer.num_frames)
                self.cam.array_counter.put(
                    self.cam.array_counter.get() + settings.num_images
                )
                self.cam.detector_state.put(IDLE)
                self.cam.acquire.put(0)
        except Exception as err:  # reported through the trigger status
            logger.exception("%s burst failed", self.name)
            done(err)
            return
        done(None)

    def _render(
        self, pulse: Pulse, settings: BurstSettings, times: np.ndarray
    ) -> np.ndarray:
        raise NotImplementedError

    def _disarm(self) -> None:
        with self._lock:
            self._token = None
            listener, self._listener = self._listener, None
        if listener is not None and self.timing is not None:
            self.timing.disconnect_camera(listener)
        self.cam.acquire.put(0)
        self.cam.detector_state.put(IDLE)


class SimUHSCamera(_SimBurstCamera):
    """Simulated Shimadzu HPV-X2: sees the event binned 4×, 10-bit.

    The simulated field is ``4 × ROI`` HR pixels: the UHS ROI sets the size of the
    simulated event (and the HS must fit inside it).
    """

    spec = UHS_SPEC

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.effective_pixel_size_um.put(8.0)
        self.cam.num_images.put(DEFAULT_UHS_FRAMES)
        self.cam.acquire_period.put(1 / DEFAULT_UHS_RATE_HZ)
        self.cam.acquire_time.put(0.5 / DEFAULT_UHS_RATE_HZ)

    def field_shape_hr(self) -> tuple[int, int]:
        """Return the simulated field in HR pixels: 4 × the ROI."""
        settings = self.settings()
        return (settings.roi[2] * SCALE, settings.roi[3] * SCALE)

    def _render(
        self, pulse: Pulse, settings: BurstSettings, times: np.ndarray
    ) -> np.ndarray:
        return pulse.event.uhs_burst(
            self.spec, times, settings.frame_shape, seed=pulse.burst_seed
        )


class SimHSCamera(_SimBurstCamera):
    """Simulated Phantom TMX 7510: a mounted window of the event at full resolution.

    Parameters
    ----------
    *args, **kwargs
        Passed to the sim camera base (``timing``, ``write_dir``, ...).
    uhs : SimUHSCamera, optional
        The UHS whose field the HS looks into; without one the field is the HS
        window itself (mount offset 0).

    Notes
    -----
    ``mount_*`` say where the HS really looks (what ``registration_scan`` should
    find: the :class:`~xfusion_bluesky.geometry.Similarity` parameters, offsets
    in fused-grid pixels, any float); ``partition_bytes`` is the camera memory
    partition a burst must fit.
    """

    spec = HS_SPEC
    mount_offset_y_hr_px = Cpt(Signal, value=0, kind="config")
    mount_offset_x_hr_px = Cpt(Signal, value=0, kind="config")
    mount_flip_y = Cpt(Signal, value=False, kind="config")
    mount_flip_x = Cpt(Signal, value=False, kind="config")
    mount_scale_ratio = Cpt(Signal, value=float(SCALE), kind="config")
    mount_rotation_deg = Cpt(Signal, value=0.0, kind="config")
    partition_bytes = Cpt(Signal, value=HS_SPEC.memory_bytes, kind="config")

    def __init__(self, *args: Any, uhs: SimUHSCamera | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.uhs = uhs
        self.effective_pixel_size_um.put(2.0)
        self.cam.num_images.put(
            round(DEFAULT_UHS_FRAMES * DEFAULT_HS_RATE_HZ / DEFAULT_UHS_RATE_HZ)
        )
        self.cam.acquire_period.put(1 / DEFAULT_HS_RATE_HZ)
        self.cam.acquire_time.put(0.5 / DEFAULT_HS_RATE_HZ)

    def memory_bytes(self) -> int | None:
        """Return the memory partition from the ``partition_bytes`` signal."""
        return int(self.partition_bytes.get())

    def mount(self) -> HSMount:
        """Return the true mounting from the ``mount_*`` signals."""
        return HSMount(
            offset_y_hr_px=_number(self.mount_offset_y_hr_px.get()),
            offset_x_hr_px=_number(self.mount_offset_x_hr_px.get()),
            flip_y=bool(self.mount_flip_y.get()),
            flip_x=bool(self.mount_flip_x.get()),
            scale_ratio=float(self.mount_scale_ratio.get()),
            rotation_deg=float(self.mount_rotation_deg.get()),
        )

    def set_mount(self, mount: HSMount) -> None:
        """Mount the HS as ``mount`` says (sets every ``mount_*`` signal)."""
        self.mount_offset_y_hr_px.put(mount.offset_y_hr_px)
        self.mount_offset_x_hr_px.put(mount.offset_x_hr_px)
        self.mount_flip_y.put(bool(mount.flip_y))
        self.mount_flip_x.put(bool(mount.flip_x))
        self.mount_scale_ratio.put(float(mount.scale_ratio))
        self.mount_rotation_deg.put(float(mount.rotation_deg))

    def field_shape_hr(self) -> tuple[int, int]:
        """Return the simulated field the HS looks into, in HR pixels."""
        if self.uhs is not None:
            return self.uhs.field_shape_hr()
        mount, shape = self.mount(), self.settings().frame_shape
        if mount.is_whole_pixel:
            return (
                shape[0] + int(mount.offset_y_hr_px),
                shape[1] + int(mount.offset_x_hr_px),
            )
        high = mount.extent(shape)[1]
        return (int(np.ceil(high[0] - 1e-9)) + 1, int(np.ceil(high[1] - 1e-9)) + 1)

    def validate(self) -> BurstSettings:
        """Check settings; the mounted HS view must also lie in the UHS field."""
        settings = super().validate()
        try:
            self.mount().check_fits(settings.frame_shape, self.field_shape_hr())
        except InvalidInputError as err:
            raise InvalidInputError(f"{self.name}: {err}") from None
        return settings

    def _render(
        self, pulse: Pulse, settings: BurstSettings, times: np.ndarray
    ) -> np.ndarray:
        return pulse.event.hs_burst(
            self.spec,
            times,
            settings.frame_shape,
            field_shape_hr=self.field_shape_hr(),
            mount=self.mount(),
            seed=pulse.burst_seed,
        )


def _number(value: Any) -> float:
    """Return an offset as stored: an int stays an int (the aligned mount's)."""
    return value if isinstance(value, int) else float(value)
