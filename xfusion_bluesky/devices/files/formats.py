"""open_recording(): a camera recording (multi-page TIFF, HDF5, Phantom .cine).

Every format is read by a kept library, never by a parser of our own:

- **TIFF** (``.tif``, ``.tiff``): tifffile. Frame times from tifffile's JSON
  description (``frame_times_s``, ``frame_rate_hz``), or the ImageJ ``finterval``.
- **HDF5** (``.h5``, ``.hdf5``, ``.hdf``, ``.nxs``): h5py. The frames are
  ``/entry/data/data`` (areaDetector), else the file's only 3-D dataset; frame times
  from areaDetector's ``/entry/instrument/NDAttributes/FrameTime``.
- **Phantom .cine**: pims (``pims.Cine``; uncompressed files). pims
  (github.com/soft-matter/pims) is maintained at a slow pace: its last release,
  0.7 (2024-06), reads .cine under numpy 2 here. Frame times from the per-frame
  timestamps relative to the trigger, the rate from the setup block.

Frame times are seconds after the camera's own trigger input, as the file's header
holds them; None where the header has none.

Tiled reads HDF5 in place: bluesky-tiled-plugins' TiledWriter registers
``application/x-hdf5`` and joins one file per burst. For TIFF it registers only a
sequence of files (``multipart/related;type=image/tiff``); Tiled's ``TiffAdapter``
reads one multi-page file, but TiledWriter has no consolidator for it (its generic
fallback takes one file per data key, and a run has one file per burst). Tiled has
no .cine adapter. :meth:`Recording.tiled_hdf5` converts TIFF and .cine once into
areaDetector-layout HDF5 next to the original (``<name>.<ext>.h5``) and reuses it.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import tifffile

from xfusion_bluesky.devices.hdf5 import DATASET, NDFileHDF5Writer
from xfusion_bluesky.errors import RecordingError

__all__ = ["FORMATS", "Recording", "open_recording"]

logger = logging.getLogger(__name__)

#: File suffix (lower case) → format name.
FORMATS = {
    ".tif": "tiff",
    ".tiff": "tiff",
    ".h5": "hdf5",
    ".hdf5": "hdf5",
    ".hdf": "hdf5",
    ".nxs": "hdf5",
    ".cine": "cine",
}
#: Where areaDetector (and our cameras) keep each frame's time after the trigger.
FRAME_TIME_DATASET = "/entry/instrument/NDAttributes/FrameTime"
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


def open_recording(path: str | Path, *, dataset: str | None = None) -> Recording:
    """Open a camera recording and read its header; check it is whole.

    Parameters
    ----------
    path : str or Path
        A ``.tif``/``.tiff``, ``.h5``/``.hdf5``/``.hdf``/``.nxs`` or ``.cine`` file.
    dataset : str, optional
        HDF5 only: the frames' dataset (default ``/entry/data/data``, else the
        file's only 3-D dataset).

    Returns
    -------
    Recording

    Raises
    ------
    RecordingError
        The file is missing, does not open, is truncated, holds no frames or not
        a 3-D stack, or its header disagrees with its frames; the message names
        the file.
    """
    path = Path(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise RecordingError(
            f"{path}: unknown recording format {path.suffix!r}; use one of "
            f"{', '.join(sorted(FORMATS))}"
        )
    if not path.is_file():
        raise RecordingError(f"{path}: no such file")
    if dataset is not None and kind != "hdf5":
        raise RecordingError(f"{path}: dataset= applies to HDF5 files only")
    opener = {"tiff": _open_tiff, "hdf5": _open_hdf5, "cine": _open_cine}[kind]
    try:
        recording = opener(path, dataset)
    except RecordingError:
        raise
    except Exception as err:
        raise RecordingError(
            f"{path}: does not open as {kind} ({type(err).__name__}: {err}); the "
            "file is damaged, cut short, or still being written"
        ) from err
    if recording.num_frames < 1:
        raise RecordingError(f"{path}: the recording holds no frames")
    # The last frame is read at once: a file cut short fails here, not later.
    try:
        recording.read(recording.num_frames - 1)
    except RecordingError as err:
        raise RecordingError(
            f"{path}: truncated: the header promises {recording.num_frames} frames "
            f"but the last cannot be read ({err.__cause__ or err}); the file was cut "
            "short or is still being written"
        ) from err
    return recording


def _check_times(path: Path, times: Any, num_frames: int, source: str) -> np.ndarray:
    array = np.asarray(times, dtype=np.float64).reshape(-1)
    if array.shape[0] != num_frames:
        raise RecordingError(
            f"{path}: inconsistent frame count: {source} has {array.shape[0]} frame "
            f"times for {num_frames} frames; the file is cut short or damaged"
        )
    return array


def _rate_from_times(times: np.ndarray | None) -> float | None:
    if times is None or times.shape[0] < 2:
        return None
    period = float(np.median(np.diff(times)))
    return 1.0 / period if period > 0 else None


# -- TIFF ------------------------------------------------------------------------


def _open_tiff(path: Path, dataset: str | None) -> Recording:
    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise RecordingError(f"{path}: the TIFF holds no images")
        series = tif.series[0]
        shape = tuple(int(v) for v in series.shape)
        dtype = np.dtype(series.dtype)
        shaped = tif.shaped_metadata[0] if tif.shaped_metadata else {}
        imagej = tif.imagej_metadata or {}
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3:
        raise RecordingError(
            f"{path}: the TIFF's images have shape {shape}, not a stack of "
            "grayscale frames (n, h, w); export single-channel frames"
        )
    num_frames = shape[0]
    times = None
    if shaped.get("frame_times_s") is not None:
        times = _check_times(path, shaped["frame_times_s"], num_frames, "the header")
    rate: float | None = None
    if shaped.get("frame_rate_hz") is not None:
        rate = float(shaped["frame_rate_hz"])
    elif imagej.get("finterval"):
        rate = 1.0 / float(imagej["finterval"])
    else:
        rate = _rate_from_times(times)

    def read(start: int, stop: int) -> np.ndarray:
        with tifffile.TiffFile(path) as tif:
            return np.asarray(tif.asarray(key=range(start, stop), series=0))

    return Recording(
        path=path,
        format="tiff",
        num_frames=num_frames,
        frame_shape=(shape[1], shape[2]),
        dtype=dtype,
        frame_times_s=times,
        frame_rate_hz=rate,
        bit_depth=int(shaped["bit_depth"]) if "bit_depth" in shaped else None,
        _reader=read,
    )


# -- HDF5 ------------------------------------------------------------------------


def _find_dataset(path: Path, f: h5py.File, dataset: str | None) -> str:
    if dataset is not None:
        if not isinstance(f.get(dataset), h5py.Dataset):
            raise RecordingError(f"{path}: no dataset {dataset!r} in the file")
        return dataset
    if isinstance(f.get(DATASET), h5py.Dataset):
        return DATASET
    found: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and obj.ndim == 3:
            found.append("/" + name)

    f.visititems(visit)
    if len(found) == 1:
        return found[0]
    if not found:
        raise RecordingError(
            f"{path}: no {DATASET} and no 3-D dataset (n, h, w) in the file"
        )
    raise RecordingError(
        f"{path}: no {DATASET} and several 3-D datasets ({', '.join(found)}); "
        "name the frames with dataset="
    )


def _open_hdf5(path: Path, dataset: str | None) -> Recording:
    with h5py.File(path, "r") as f:
        name = _find_dataset(path, f, dataset)
        data = f[name]
        if data.ndim != 3:
            raise RecordingError(
                f"{path}: dataset {name} has shape {data.shape}, not a stack of "
                "frames (n, h, w)"
            )
        num_frames, height, width = (int(v) for v in data.shape)
        dtype = np.dtype(data.dtype)
        times = None
        if isinstance(f.get(FRAME_TIME_DATASET), h5py.Dataset):
            stored = _check_times(
                path, f[FRAME_TIME_DATASET][()], num_frames, FRAME_TIME_DATASET
            )
            # A conversion of a file without times stores NaN: no times.
            times = None if np.isnan(stored).all() else stored
        rate_attr = data.attrs.get("frame_rate_hz")

    def read(start: int, stop: int) -> np.ndarray:
        with h5py.File(path, "r") as f:
            return np.asarray(f[name][start:stop])

    rate = float(rate_attr) if rate_attr is not None else _rate_from_times(times)
    return Recording(
        path=path,
        format="hdf5",
        num_frames=num_frames,
        frame_shape=(height, width),
        dtype=dtype,
        frame_times_s=times,
        frame_rate_hz=rate,
        dataset=name,
        _reader=read,
    )


# -- Phantom .cine (through pims) -------------------------------------------------


def _open_cine(path: Path, dataset: str | None) -> Recording:
    from pims.cine import Cine  # imported here: pims is needed for .cine only

    cine = Cine(str(path))
    try:
        num_frames = len(cine)
        locations = getattr(cine, "image_locations", None)
        if locations is None or len(locations) != num_frames:
            raise RecordingError(
                f"{path}: inconsistent frame count: the header says {num_frames} "
                "frames but the image offsets are missing or fewer; the file is cut "
                "short"
            )
        width, height = (int(v) for v in cine.frame_shape)
        dtype = np.dtype(cine.pixel_type)
        trigger = cine.trigger_time
        # Differences of (datetime, fraction) pairs: float epoch seconds would keep
        # only ~0.2 µs, coarser than a UHS frame period.
        times = np.array(
            [
                (stamp - trigger["datetime"]).total_seconds()
                + (fraction - trigger["second_fraction"])
                for stamp, fraction in cine.frame_time_stamps
            ],
            dtype=np.float64,
        )
        times = _check_times(path, times, num_frames, "the timestamp block")
        rate = float(cine.frame_rate) or _rate_from_times(times)
        real_bpp = cine.setup_fields_dict.get("real_bpp")
        trigger_time = trigger["datetime"].timestamp() + trigger["second_fraction"]
    finally:
        cine.close()

    def read(start: int, stop: int) -> np.ndarray:
        reader = Cine(str(path))
        try:
            return np.stack(
                [np.asarray(reader.get_frame(i)) for i in range(start, stop)]
            )
        finally:
            reader.close()

    return Recording(
        path=path,
        format="cine",
        num_frames=num_frames,
        frame_shape=(height, width),
        dtype=dtype,
        frame_times_s=times,
        frame_rate_hz=rate,
        bit_depth=int(real_bpp) if real_bpp else None,
        trigger_time=float(trigger_time),
        _reader=read,
    )
