"""Recording: one opened camera recording, and its one-time HDF5 conversion.

:func:`~xfusion_bluesky.devices.files.formats.open_recording` makes one per file
(the per-format readers live there). A ``Recording`` reads frames lazily through
its reader and, for Tiled, gives an areaDetector-layout HDF5 file: the original
if it is HDF5, else a conversion written once next to it and reused while it is
newer than the original (why: ``formats``' module docstring).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from xfusion_bluesky.devices.hdf5 import DATASET, NDFileHDF5Writer
from xfusion_bluesky.errors import RecordingError

__all__ = ["Reader", "Recording"]

logger = logging.getLogger(__name__)

#: Frames converted per step: bounds memory for full-sensor recordings.
_CONVERT_CHUNK = 32

Reader = Callable[[int, int], np.ndarray]


@dataclass(frozen=True)
class Recording:
    """One camera recording: its frames' count, shape, type and times.

    Attributes
    ----------
    path : Path
        The file.
    format : str
        ``"tiff"``, ``"hdf5"`` or ``"cine"``.
    num_frames : int
        Frames in the file (≥ 1).
    frame_shape : tuple of int
        ``(height, width)``, row 0 at the top.
    dtype : numpy.dtype
        Pixel type as stored.
    frame_times_s : ndarray or None
        Each frame's start after the camera's trigger, from the file's header.
    frame_rate_hz : float or None
        The recording's frame rate from the header (or from its frame times).
    bit_depth : int or None
        Bits the sensor used, where the header says (.cine ``real_bpp``).
    dataset : str or None
        The frames' dataset (HDF5 only).
    trigger_time : float or None
        POSIX time of the trigger, where the header holds it (.cine).
    """

    path: Path
    format: str
    num_frames: int
    frame_shape: tuple[int, int]
    dtype: np.dtype
    frame_times_s: np.ndarray | None
    frame_rate_hz: float | None
    bit_depth: int | None = None
    dataset: str | None = None
    trigger_time: float | None = None
    _reader: Reader = field(repr=False, compare=False, kw_only=True)

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Return frames ``start:stop`` as an ndarray ``(n, h, w)``.

        Raises
        ------
        RecordingError
            The frames cannot be read (the file changed or was cut short).
        """
        stop = self.num_frames if stop is None else int(stop)
        start = int(start)
        if not 0 <= start <= stop <= self.num_frames:
            raise RecordingError(
                f"{self.path}: frames {start}:{stop} are outside the recording's "
                f"{self.num_frames} frames"
            )
        if start == stop:
            return np.empty((0, *self.frame_shape), dtype=self.dtype)
        try:
            frames = np.asarray(self._reader(start, stop))
        except RecordingError:
            raise
        except Exception as err:
            raise RecordingError(
                f"{self.path}: frames {start}:{stop} cannot be read ({err}); the "
                "file was cut short or changed since it was opened"
            ) from err
        return frames.reshape(stop - start, *self.frame_shape)

    def tiled_hdf5(self) -> tuple[Path, str]:
        """Return an areaDetector-layout HDF5 file Tiled reads, and its dataset.

        An HDF5 recording is its own. A TIFF or .cine recording is converted once
        into ``<name>.<ext>.h5`` next to it (uint16 frames at ``/entry/data/data``,
        ``FrameTime`` from the header, NaN where it has none); a conversion
        newer than the original with the same frames is reused.

        Raises
        ------
        RecordingError
            The frames do not fit uint16, or the directory is not writable.
        """
        if self.format == "hdf5":
            return self.path, str(self.dataset)
        target = self.path.with_name(self.path.name + ".h5")
        if self._conversion_is_current(target):
            return target, DATASET
        self._convert(target)
        return target, DATASET

    def _conversion_is_current(self, target: Path) -> bool:
        try:
            if target.stat().st_mtime < self.path.stat().st_mtime:
                return False
            with h5py.File(target, "r") as f:
                shape = tuple(f[DATASET].shape)
        except (OSError, KeyError):
            return False
        return shape == (self.num_frames, *self.frame_shape)

    def _convert(self, target: Path) -> None:
        # Written under a temporary name and renamed: a reader (or a second
        # conversion) never sees half a file under the final name.
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
        times = self.frame_times_s
        if times is None:
            times = np.full(self.num_frames, np.nan)
        try:
            writer = NDFileHDF5Writer(partial, self.frame_shape)
        except OSError as err:
            raise RecordingError(
                f"{self.path}: cannot write its HDF5 copy for Tiled in "
                f"{target.parent} ({err}); make the directory writable"
            ) from err
        try:
            for start in range(0, self.num_frames, _CONVERT_CHUNK):
                stop = min(start + _CONVERT_CHUNK, self.num_frames)
                writer.write(
                    start,
                    _as_uint16(self.read(start, stop), self.path),
                    trigger_time=self.trigger_time or 0.0,
                    frame_times_s=times[start:stop],
                )
            writer.close()
            os.replace(partial, target)
        except BaseException:
            writer.close()
            partial.unlink(missing_ok=True)
            raise
        logger.info("%s converted to %s for Tiled", self.path, target)


def _as_uint16(frames: np.ndarray, path: Path) -> np.ndarray:
    if frames.dtype == np.uint16:
        return frames
    if np.issubdtype(frames.dtype, np.integer) and (
        frames.size == 0 or (frames.min() >= 0 and frames.max() <= 65535)
    ):
        return frames.astype(np.uint16)
    raise RecordingError(
        f"{path}: frames of type {frames.dtype} do not fit uint16 without loss; "
        "export the recording as 8-, 10-, 12- or 16-bit unsigned integers"
    )
