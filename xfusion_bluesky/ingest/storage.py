"""The HDF5 file Tiled reads for each recording, and proof that the server reads it.

Tiled's TiledWriter registers external data from StreamResource documents whose
mimetype it has an adapter for; multi-page TIFF frames and Phantom ``.cine``
files have none it can register that way, so
:meth:`~xfusion_bluesky.devices.files.formats.Recording.tiled_hdf5` converts such
a file once into areaDetector-layout HDF5 next to the original (an HDF5
recording is used as it is). Before the run's first document,
:func:`prepare_files` registers each file as a temporary node and reads a frame
back through the server: a file outside its readable storage is refused then,
not after half a run is written. A converted file made by a call that is then
refused is removed again.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from xfusion_bluesky.errors import InvalidInputError, RecordingError

__all__ = ["StoredFile", "file_facts", "prepare_files", "remove_created"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredFile:
    """The HDF5 dataset the run references for one recording.

    Attributes
    ----------
    path : Path
        The HDF5 file (the original, or its conversion beside it).
    dataset : str
        The frames' dataset in it.
    shape : tuple of int
        The dataset's ``(n, h, w)``.
    dtype : numpy.dtype
        Its pixel type (what the data key declares).
    converted : bool
        The recording was converted (not HDF5 already).
    created : bool
        This call made the converted file (it is removed if the call is refused).
    """

    path: Path
    dataset: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    converted: bool
    created: bool


def prepare_files(root: Any, recordings: dict[str, Any]) -> dict[str, StoredFile]:
    """Convert where needed, then check the server reads every file; return them.

    Parameters
    ----------
    root : tiled container
        Where a temporary probe node may be created (and is deleted again).
    recordings : dict of str to Recording
        By role (``"uhs"``, ``"hs"``).

    Raises
    ------
    RecordingError
        A conversion failed, or the HDF5 file does not hold the recording's frames.
    InvalidInputError
        The Tiled server cannot read a file (outside its readable storage).
    """
    stored: dict[str, StoredFile] = {}
    try:
        for role, recording in recordings.items():
            stored[role] = _tiled_hdf5(role, recording)
        for role, item in stored.items():
            _probe(root, role, item)
    except BaseException:
        remove_created(stored.values())
        raise
    return stored


def remove_created(files: Any) -> None:
    """Delete the converted files a refused call made (never an original)."""
    for item in files:
        if item.created and item.converted:
            try:
                item.path.unlink(missing_ok=True)
            except OSError:
                logger.warning("could not remove %s", item.path, exc_info=True)


def _tiled_hdf5(role: str, recording: Any) -> StoredFile:
    original = Path(recording.path)
    converted = recording.format != "hdf5"
    # The agreed name of a conversion: the original's name plus ".h5", beside it.
    expected = original.with_name(original.name + ".h5")
    existed = expected.exists()
    path_text, dataset = recording.tiled_hdf5()
    path = Path(path_text).absolute()
    created = converted and not existed and path == expected.absolute()
    try:
        with h5py.File(path, "r", locking=False) as f:
            data = f[dataset]
            shape = tuple(int(v) for v in data.shape)
            dtype = np.dtype(data.dtype)
    except (OSError, KeyError, TypeError) as err:
        if created:
            path.unlink(missing_ok=True)
        raise RecordingError(
            f"the {role.upper()} frames of {original} are not readable in {path} "
            f"(dataset {dataset!r}): {err}"
        ) from err
    expected_shape = (int(recording.num_frames), *recording.frame_shape)
    if shape != expected_shape:
        if created:
            path.unlink(missing_ok=True)
        raise RecordingError(
            f"{path} holds {shape} at {dataset!r}, not the {expected_shape} frames of "
            f"{original}: remove it so that it is converted again"
        )
    return StoredFile(path, dataset, shape, dtype, converted, created)


def _probe(root: Any, role: str, item: StoredFile) -> None:
    """Register ``item`` as a throw-away node and read its first frame back."""
    from tiled.structures.array import ArrayStructure, BuiltinDtype
    from tiled.structures.core import StructureFamily

    from xfusion_bluesky.catalog.connect import external_hdf5

    key = f"xfusion_ingest_probe_{uuid.uuid4().hex[:8]}"
    structure = ArrayStructure(
        data_type=BuiltinDtype.from_numpy_dtype(item.dtype),
        shape=item.shape,
        chunks=tuple((int(v),) for v in item.shape),
    )
    source = external_hdf5(item.path, item.dataset, structure, swmr=False)
    try:
        node = root.new(StructureFamily.array, [source], key=key)
        # One plain request for one frame: the client's own reads retry a 500.
        response = root.context.http_client.get(
            node.item["links"]["full"],
            params={"slice": "0:1"},
            headers={"Accept": "application/octet-stream"},
        )
        response.raise_for_status()
        frame = np.frombuffer(response.content, dtype=item.dtype)
        if frame.size != int(np.prod(item.shape[1:])):
            raise ValueError(f"read back {frame.size} values for one frame")
    except Exception as err:
        raise InvalidInputError(
            f"the Tiled server cannot read the {role.upper()} file {item.path} "
            f"({type(err).__name__}: {_first_line(err)}): put the recordings in a "
            "folder the server reads (its readable storage, e.g. the cameras' "
            f"HDF5 folder), or add {item.path.parent} to it"
        ) from err
    finally:
        _delete_quietly(root, key)


def _delete_quietly(root: Any, key: str) -> None:
    try:
        if key in root:
            root.delete_contents(key, external_only=True)
    except Exception:  # a leftover probe node is harmless
        logger.warning("could not delete probe node %r", key, exc_info=True)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else ""


def file_facts(path: str | Path) -> dict[str, Any]:
    """Return ``path`` (absolute), ``size_bytes`` and ``mtime`` (epoch s) of a file."""
    path = Path(path).absolute()
    stat = os.stat(path)
    return {"path": str(path), "size_bytes": int(stat.st_size), "mtime": stat.st_mtime}
