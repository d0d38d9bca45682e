"""Frames in the areaDetector NDFileHDF5 layout + their StreamResource/StreamDatum.

The layout is NDFileHDF5's default (no layout XML): the frame stack at
``/entry/instrument/detector/data`` (uint16, ``(N, H, W)``, one frame per chunk)
with a hard link at ``/entry/data/data``, and one dataset per NDAttribute under
``/entry/instrument/NDAttributes`` (``NDArrayUniqueId``, ``NDArrayTimeStamp``,
``NDArrayEpicsTSSec``, ``NDArrayEpicsTSnSec`` and ours, ``FrameTime``: seconds after
the trigger). Files are written in SWMR mode so Tiled can read a burst while the
file is still open. The simulated cameras and the caproto IOC both write through
:class:`NDFileHDF5Writer`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from event_model import (
    ComposeStreamResourceBundle,
    StreamRange,
    compose_stream_resource,
)

__all__ = [
    "DATASET",
    "EPICS_EPOCH_OFFSET_S",
    "BurstAssets",
    "NDFileHDF5Writer",
    "read_burst",
]

logger = logging.getLogger(__name__)

#: Where TiledWriter (and every areaDetector reader) finds the frames.
DATASET = "/entry/data/data"
DETECTOR_DATASET = "/entry/instrument/detector/data"
ATTRIBUTES_GROUP = "/entry/instrument/NDAttributes"
#: Seconds from the POSIX epoch (1970) to the EPICS epoch (1990-01-01 UTC).
EPICS_EPOCH_OFFSET_S = 631152000

# NDAttribute name -> (dtype, description), in NDFileHDF5's order.
_ND_ATTRIBUTES: dict[str, tuple[str, str]] = {
    "NDArrayUniqueId": ("<i4", "The unique ID of the NDArray"),
    "NDArrayTimeStamp": ("<f8", "The timestamp of the NDArray as float64"),
    "NDArrayEpicsTSSec": ("<u4", "The NDArray EPICS timestamp seconds past epoch"),
    "NDArrayEpicsTSnSec": ("<u4", "The NDArray EPICS timestamp nanoseconds"),
    "FrameTime": ("<f8", "Frame start after the trigger (s)"),
}


class NDFileHDF5Writer:
    """Write bursts of uint16 frames as areaDetector's NDFileHDF5 plugin would.

    Parameters
    ----------
    path : str or Path
        File to create (its directory is created too).
    frame_shape : tuple of int
        ``(height, width)`` of every frame.
    """

    def __init__(self, path: str | Path, frame_shape: tuple[int, int]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        height, width = (int(v) for v in frame_shape)
        self.frame_shape = (height, width)
        self._file = h5py.File(self.path, "w", libver="latest")
        entry = self._file.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        instrument = entry.create_group("instrument")
        instrument.attrs["NX_class"] = "NXinstrument"
        detector = instrument.create_group("detector")
        detector.attrs["NX_class"] = "NXdetector"
        data = detector.create_dataset(
            "data",
            shape=(0, height, width),
            maxshape=(None, height, width),
            chunks=(1, height, width),
            dtype="<u2",
        )
        data.attrs["signal"] = np.int32(1)
        nxdata = entry.create_group("data")
        nxdata.attrs["NX_class"] = "NXdata"
        nxdata["data"] = data  # a hard link, as the default layout's <hardlink>
        attributes = instrument.create_group("NDAttributes")
        attributes.attrs["NX_class"] = "NXcollection"
        for name, (dtype, description) in _ND_ATTRIBUTES.items():
            dset = attributes.create_dataset(
                name, shape=(0,), maxshape=(None,), chunks=(256,), dtype=dtype
            )
            dset.attrs["NDAttrName"] = name
            dset.attrs["NDAttrDescription"] = description
            dset.attrs["NDAttrSourceType"] = "NDAttrSourceDriver"
            dset.attrs["NDAttrSource"] = "Driver"
        self._data = data
        self._attributes = {name: attributes[name] for name in _ND_ATTRIBUTES}
        # SWMR must come after every dataset exists; readers then see each flush.
        self._file.swmr_mode = True
        self._next_unique_id = 1

    @property
    def num_frames(self) -> int:
        """Frames currently in the file."""
        return int(self._data.shape[0])

    def write(
        self,
        start: int,
        frames: np.ndarray,
        *,
        trigger_time: float,
        frame_times_s: np.ndarray,
    ) -> None:
        """Write ``frames`` at frame index ``start`` and flush them for readers.

        Parameters
        ----------
        start : int
            First frame index; the file grows as needed and frames already there
            are overwritten (a burst re-taken after a RunEngine rewind).
        frames : ndarray, (n, h, w) uint16
            The burst.
        trigger_time : float
            POSIX time of the trigger (T0).
        frame_times_s : ndarray, (n,) float64
            Frame start times after the trigger.
        """
        frames = np.asarray(frames)
        if frames.dtype != np.uint16 or frames.shape[1:] != self.frame_shape:
            raise ValueError(
                f"frames must be uint16 (n, {self.frame_shape[0]}, "
                f"{self.frame_shape[1]}); got {frames.dtype} {frames.shape}"
            )
        count = frames.shape[0]
        stop = start + count
        if stop > self.num_frames:
            self._resize(stop)
        self._data[start:stop] = frames
        stamps = trigger_time + np.asarray(frame_times_s, dtype=np.float64)
        epics = stamps - EPICS_EPOCH_OFFSET_S
        seconds = np.floor(epics)
        ids = np.arange(self._next_unique_id, self._next_unique_id + count)
        self._next_unique_id += count
        values = {
            "NDArrayUniqueId": ids,
            "NDArrayTimeStamp": stamps,
            "NDArrayEpicsTSSec": seconds,
            "NDArrayEpicsTSnSec": np.round((epics - seconds) * 1e9),
            "FrameTime": frame_times_s,
        }
        for name, value in values.items():
            self._attributes[name][start:stop] = value
        self._file.flush()

    def _resize(self, num_frames: int) -> None:
        self._data.resize(num_frames, axis=0)
        for dset in self._attributes.values():
            dset.resize(num_frames, axis=0)

    def close(self, num_frames: int | None = None) -> None:
        """Truncate to ``num_frames`` (frames no document points at) and close."""
        if not self._file.id.valid:
            return
        if num_frames is not None and num_frames < self.num_frames:
            self._resize(num_frames)
        self._file.close()


def read_burst(path: str | Path, index: int, frames_per_burst: int) -> np.ndarray:
    """Return burst ``index`` of an NDFileHDF5 file, uint16 ``(n, h, w)``."""
    with h5py.File(path, "r", swmr=True) as f:
        start = index * frames_per_burst
        return np.asarray(f[DATASET][start : start + frames_per_burst])


@dataclass
class BurstAssets:
    """The StreamResource of one HDF5 file and a StreamDatum per burst.

    One event holds one burst, so burst ``i`` is index ``i`` of the data key whose
    shape is ``(frames_per_burst, h, w)``; Tiled reshapes the flat ``(N·n, h, w)``
    dataset into ``(N, n, h, w)``.
    """

    path: str
    data_key: str
    frames_per_burst: int
    frame_shape: tuple[int, int]
    _bundle: ComposeStreamResourceBundle = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._bundle = compose_stream_resource(
            mimetype="application/x-hdf5",
            uri=f"file://localhost{Path(self.path).absolute()}",
            data_key=self.data_key,
            parameters={"dataset": DATASET, "chunk_shape": [1], "swmr": True},
        )

    @property
    def stream_resource_doc(self) -> dict[str, Any]:
        """The StreamResource document (emit once, before the first datum)."""
        return dict(self._bundle.stream_resource_doc)

    def stream_datum(self, index: int) -> dict[str, Any]:
        """Return the StreamDatum of burst ``index`` (one event, one index)."""
        doc = self._bundle.compose_stream_datum(
            indices=StreamRange(start=index, stop=index + 1)
        )
        return dict(doc)
