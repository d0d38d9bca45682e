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
no .cine adapter. :meth:`~xfusion_bluesky.devices.files.recording.Recording.tiled_hdf5`
converts TIFF and .cine once into areaDetector-layout HDF5 next to the original
(``<name>.<ext>.h5``) and reuses it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import tifffile

from xfusion_bluesky.devices.files.recording import Recording
from xfusion_bluesky.devices.hdf5 import DATASET
from xfusion_bluesky.errors import RecordingError

__all__ = ["FORMATS", "Recording", "open_recording"]

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
