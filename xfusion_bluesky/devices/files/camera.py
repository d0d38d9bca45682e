"""FileUHSCamera, FileHSCamera: cameras whose vendor software writes one file per burst.

No EPICS driver runs such a camera (the HPV-X2 has none): its vendor software arms
it, the timing generator triggers it, and the software saves the burst into a
directory. These devices have the same ``cam``/``hdf1`` components as the other
flavours (soft signals the plans set and read), so ``dual_camera_scan`` drives
them unchanged. ``trigger()`` notes the directory and waits, in a worker thread,
for a new file that has stopped growing; it opens it
(:func:`~xfusion_bluesky.devices.files.formats.open_recording`), checks its frame
count, shape and rate against ``cam``, takes its frame times (from the file, else
nominal), and registers it as external data: one StreamResource per burst file
(the file itself if HDF5, else its one-time HDF5 conversion) and one StreamDatum.
No frame is copied into a document. A file that never comes, or stays cut short,
fails the trigger status with the reason when ``timeout_s`` has passed.

Frame times in a file count from the camera's own trigger input; the device adds
its timing channel's delay, so ``<name>_frame_times_s`` count from the shared T0
like every other camera's.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from event_model import (
    ComposeStreamResourceBundle,
    StreamRange,
    compose_stream_resource,
)
from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import DeviceStatus

from xfusion_bluesky.devices.base import (
    ACQUIRE,
    DEFAULT_HS_RATE_HZ,
    DEFAULT_UHS_FRAMES,
    DEFAULT_UHS_RATE_HZ,
    HS_SPEC,
    IDLE,
    UHS_SPEC,
    WAITING,
    BurstCamera,
    BurstSettings,
    frame_times,
)
from xfusion_bluesky.devices.files.formats import Recording, open_recording
from xfusion_bluesky.devices.files.watcher import (
    Snapshot,
    WatchCancelledError,
    file_stamp,
    snapshot,
    wait_for_change,
    wait_for_new_file,
)
from xfusion_bluesky.devices.soft import SoftCam, SoftHDF5Plugin
from xfusion_bluesky.errors import InvalidInputError, RecordingError

__all__ = [
    "BurstFile",
    "BurstStatus",
    "FileCam",
    "FileHSCamera",
    "FilePlugin",
    "FileUHSCamera",
]

logger = logging.getLogger(__name__)

#: A file's frame rate may differ this much (relative) from ``cam``'s.
RATE_TOLERANCE = 0.01


class FileCam(SoftCam):
    """Soft ``cam1:``: what the vendor software is set to (ADBase names)."""

    trigger_mode = Cpt(Signal, value="External", kind="config")


class FilePlugin(SoftHDF5Plugin):
    """Soft ``HDF1:``: the watched directory and the last burst's files."""

    file_template = Cpt(Signal, value="", kind="omitted")


class BurstStatus(DeviceStatus):
    """A trigger status whose text ends with the reason a burst failed.

    The plans report a failed status by its text (bluesky's ``FailedStatus``
    carries the status, not its exception), so the reason has to be in it.
    """

    def __str__(self) -> str:
        text = super().__str__()
        if self.done and not self.success:
            text += f": {self.exception()}"
        return text

    __repr__ = __str__


@dataclass(frozen=True)
class BurstFile:
    """One burst's file, the HDF5 Tiled reads, and its asset documents."""

    recording: Recording
    hdf5_path: Path
    dataset: str
    frame_times_s: np.ndarray
    bundle: ComposeStreamResourceBundle


class _FileBurstCamera(BurstCamera):
    """Shared body of the file cameras: watch, open, check, register.

    Parameters
    ----------
    *args, **kwargs
        Passed to :class:`BurstCamera` (``name``, ``timing_channel``).
    watch_dir : str or Path
        Where the vendor software saves each burst.
    pattern : str
        Glob of a burst file in ``watch_dir`` (``"*.cine"``, ``"shot_*.tif"``).
    timeout_s : float
        Longest wait, after arming, for the file to be complete.
    dataset : str, optional
        HDF5 recordings: the frames' dataset (default ``/entry/data/data``, else
        the only 3-D dataset).
    settle_s : float
        A file counts once its size has not changed for this long.
    poll_s : float
        Polling interval of the directory.
    """

    cam = Cpt(FileCam, kind="config")
    hdf1 = Cpt(FilePlugin, kind="omitted")
    recording_path = Cpt(Signal, value="", kind="normal")
    watch_dir = Cpt(Signal, value="", kind="config")
    file_pattern = Cpt(Signal, value="*", kind="config")
    file_timeout_s = Cpt(Signal, value=30.0, kind="config")

    def __init__(
        self,
        *args: Any,
        watch_dir: str | Path,
        pattern: str,
        timeout_s: float = 30.0,
        dataset: str | None = None,
        settle_s: float = 0.2,
        poll_s: float = 0.05,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        if not timeout_s > 0 or not settle_s >= 0 or not poll_s > 0:
            raise InvalidInputError(
                f"{self.name}: timeout_s and poll_s must be > 0 and settle_s ≥ 0; got "
                f"{timeout_s!r}, {poll_s!r}, {settle_s!r}"
            )
        self.watch_dir.put(str(Path(watch_dir).expanduser()))
        self.file_pattern.put(str(pattern))
        self.file_timeout_s.put(float(timeout_s))
        self.dataset = dataset
        self.settle_s = float(settle_s)
        self.poll_s = float(poll_s)
        self._staged = False
        self._cancel: threading.Event | None = None
        self._pending: BurstFile | None = None
        self._bursts: list[BurstFile] = []
        self.cam.manufacturer.put(self.spec.manufacturer)
        self.cam.model.put(self.spec.model)
        for size, maximum, value in (
            (self.cam.size_x, self.cam.max_size_x, self.spec.sensor_width),
            (self.cam.size_y, self.cam.max_size_y, self.spec.sensor_height),
        ):
            size.put(value)
            maximum.put(value)

    @property
    def flavour(self) -> str:
        """``"file"``: the data key's ``source`` prefix."""
        return "file"

    # -- bluesky interface ---------------------------------------------------------

    def stage(self) -> list[object]:
        """Check the settings and the watched directory; nothing is opened."""
        self.validate()
        directory = Path(self.watch_dir.get())
        snapshot(directory, self.file_pattern.get())  # raises if it cannot be listed
        staged = Device.stage(self)
        with self._lock:
            self._staged = True
            self._pending = None
            self._bursts = []
        self.hdf1.file_path.put(f"{directory}/")
        self.hdf1.file_template.put(self.file_pattern.get())
        self.hdf1.capture.put(1)
        self.hdf1.num_captured.put(0)
        return staged

    def unstage(self) -> list[object]:
        """Stop watching and drop a pending burst."""
        try:
            return super().unstage()
        finally:
            with self._lock:
                self._staged = False
                self._pending = None
            self.hdf1.capture.put(0)

    def trigger(self) -> BurstStatus:
        """Arm: note the watched directory; the status finishes once the file is read.

        The status fails (with a :class:`~xfusion_bluesky.errors.RecordingError`
        saying why) if no complete file matching the pattern appears within
        ``timeout_s``, or it disagrees with ``cam``'s settings.
        """
        if not self._staged:
            raise RuntimeError(f"{self.name} must be staged before it is triggered")
        self._abandon("re-armed before the previous burst finished", always=False)
        settings = self.settings()
        external = self.cam.trigger_mode.get() == "External"
        delay = self._channel_delay() if external else 0.0
        before = snapshot(self.watch_dir.get(), self.file_pattern.get())
        status = BurstStatus(self)
        cancel = threading.Event()
        with self._lock:
            self._status = status
            self._cancel = cancel
            self._pending = None
        self.cam.acquire.put(1)
        self.cam.detector_state.put(WAITING)
        threading.Thread(
            target=self._watch,
            args=(status, before, settings, delay, cancel),
            name=f"{self.name}-watch",
            daemon=True,
        ).start()
        return status

    def collect_asset_docs(self) -> Any:
        """Yield this burst's StreamResource (its own file) and its StreamDatum."""
        with self._lock:
            burst, self._pending = self._pending, None
        if burst is None:
            return
        yield "stream_resource", dict(burst.bundle.stream_resource_doc)
        datum = burst.bundle.compose_stream_datum(indices=StreamRange(start=0, stop=1))
        yield "stream_datum", dict(datum)
        with self._lock:
            self._bursts.append(burst)

    def last_burst(self) -> np.ndarray:
        """Return the last burst read into an event, uint16 (n, h, w), from its file.

        Raises
        ------
        RuntimeError
            Not staged, or no burst was read yet in this staging.
        """
        if not self._staged or not self._bursts:
            raise RuntimeError(f"{self.name} has recorded no burst in this staging")
        burst = self._bursts[-1]
        return np.asarray(burst.recording.read()).astype(np.uint16, copy=False)

    def last_burst_path(self) -> str | None:
        """Return the HDF5 file Tiled reads for the last burst (None: none yet)."""
        return str(self._bursts[-1].hdf5_path) if self._bursts else None

    def last_recording_path(self) -> str | None:
        """Return the vendor file of the last burst (None: none yet)."""
        return str(self._bursts[-1].recording.path) if self._bursts else None

    # -- the worker thread ---------------------------------------------------------

    def _watch(
        self,
        status: BurstStatus,
        before: Snapshot,
        settings: BurstSettings,
        delay: float,
        cancel: threading.Event,
    ) -> None:
        error: BaseException | None = None
        burst: BurstFile | None = None
        try:
            burst = self._wait_for_burst(before, settings, delay, cancel)
        except WatchCancelledError:
            return
        except Exception as err:  # reported through the trigger status
            logger.error("%s: burst failed: %s", self.name, err)
            error = err
        with self._lock:
            owned = self._status is status  # (a bool: keeps mypy's type of status)
            if not owned:
                return  # abandoned: a newer arming or unstage owns the camera
            self._status = None
            if burst is not None:
                self._pending = burst
        self.cam.acquire.put(0)
        self.cam.detector_state.put(IDLE)
        if burst is None:
            status.set_exception(error or RecordingError(f"{self.name}: no burst"))
            return
        self.trigger_delay_s.put(delay)
        self.frame_times_s.put(burst.frame_times_s)
        self.recording_path.put(str(burst.recording.path))
        self.hdf1.file_name.put(burst.recording.path.name)
        self.hdf1.full_file_name.put(str(burst.hdf5_path))
        self.hdf1.num_captured.put(self.hdf1.num_captured.get() + settings.num_images)
        self.cam.array_counter.put(self.cam.array_counter.get() + settings.num_images)
        status.set_finished()

    def _wait_for_burst(
        self,
        before: Snapshot,
        settings: BurstSettings,
        delay: float,
        cancel: threading.Event,
    ) -> BurstFile:
        """Wait for the file, then read it; a bad file gets until the deadline.

        A file that does not open or disagrees with ``cam`` may be one the vendor
        software is still writing (some pause between frames), so it is retried
        each time it changes; the last error is raised at the deadline.
        """
        timeout = float(self.file_timeout_s.get())
        path = wait_for_new_file(
            before,
            timeout_s=timeout,
            settle_s=self.settle_s,
            poll_s=self.poll_s,
            cancel=cancel,
        )
        self.cam.detector_state.put(ACQUIRE)
        deadline = before.armed_at + timeout
        while True:
            stamp = file_stamp(path)
            try:
                return self._read_burst(path, settings, delay)
            except RecordingError as err:
                changed = wait_for_change(
                    path,
                    stamp,
                    deadline=deadline,
                    settle_s=self.settle_s,
                    poll_s=self.poll_s,
                    cancel=cancel,
                )
                if not changed:
                    raise RecordingError(
                        f"{self.name}: {err} (still so {timeout:g} s after arming)"
                    ) from err
                logger.info(
                    "%s: %s changed after a failed read; retrying", self.name, path
                )

    def _read_burst(
        self, path: Path, settings: BurstSettings, delay: float
    ) -> BurstFile:
        """Open ``path``, check it against ``settings``, prepare its asset documents."""
        recording = open_recording(path, dataset=self.dataset)
        expected = (settings.num_images, *settings.frame_shape)
        found = (recording.num_frames, *recording.frame_shape)
        if found != expected:
            raise RecordingError(
                f"{path}: {found[0]} frames of {found[1]}×{found[2]} px, but "
                f"{self.name} is set to {expected[0]} frames of "
                f"{expected[1]}×{expected[2]} px: the vendor software is set "
                f"differently; set it to match {self.name}.cam (num_images, ROI) "
                "or the reverse"
            )
        rate = recording.frame_rate_hz
        if rate is not None and abs(rate / settings.frame_rate_hz - 1) > RATE_TOLERANCE:
            raise RecordingError(
                f"{path}: recorded at {rate:g} Hz, but {self.name} is set to "
                f"{settings.frame_rate_hz:g} Hz: the vendor software is set "
                "differently; set the same frame rate in both"
            )
        if recording.format == "hdf5" and recording.dtype != np.uint16:
            raise RecordingError(
                f"{path}: frames of type {recording.dtype}, expected uint16; save "
                "16-bit frames (or TIFF/.cine, which are converted)"
            )
        if recording.frame_times_s is not None:
            times = delay + recording.frame_times_s
        else:
            times = frame_times(delay, settings.frame_rate_hz, settings.num_images)
        hdf5_path, dataset = recording.tiled_hdf5()
        bundle = compose_stream_resource(
            mimetype="application/x-hdf5",
            uri=f"file://localhost{Path(hdf5_path).absolute()}",
            data_key=f"{self.name}_image",
            # The file is whole and closed by now: no SWMR needed to read it.
            parameters={"dataset": dataset, "chunk_shape": [1], "swmr": False},
        )
        return BurstFile(recording, Path(hdf5_path), dataset, times, bundle)

    # -- hooks of BurstCamera ------------------------------------------------------

    def _disarm(self) -> None:
        with self._lock:
            cancel, self._cancel = self._cancel, None
        if cancel is not None:
            cancel.set()
        self.cam.acquire.put(0)
        self.cam.detector_state.put(IDLE)


class FileUHSCamera(_FileBurstCamera):
    """A Shimadzu HPV-X2 run by its vendor software, saving one file per burst."""

    spec = UHS_SPEC

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.effective_pixel_size_um.put(8.0)
        self.cam.num_images.put(DEFAULT_UHS_FRAMES)
        self.cam.acquire_period.put(1 / DEFAULT_UHS_RATE_HZ)
        self.cam.acquire_time.put(0.5 / DEFAULT_UHS_RATE_HZ)


class FileHSCamera(_FileBurstCamera):
    """A Phantom TMX 7510 run by its vendor software (PCC), saving .cine files."""

    spec = HS_SPEC

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.effective_pixel_size_um.put(2.0)
        self.cam.num_images.put(
            round(DEFAULT_UHS_FRAMES * DEFAULT_HS_RATE_HZ / DEFAULT_UHS_RATE_HZ)
        )
        self.cam.acquire_period.put(1 / DEFAULT_HS_RATE_HZ)
        self.cam.acquire_time.put(0.5 / DEFAULT_HS_RATE_HZ)
