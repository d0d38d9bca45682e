"""Fused frames out of Tiled into files: HDF5, TIFF, PNG or an mp4 preview.

Frames are read from the server a chunk at a time and written as they come, so a
full-sensor video never sits in memory whole. The pixel values stay the derived
run's: uint16 in the HS camera's counts (h5, tiff, png); the mp4 is a preview,
8-bit and contrast-stretched. :func:`export_fused` picks the writer from the
file's suffix.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xfusion_bluesky.catalog.queries import FusedRun
from xfusion_bluesky.errors import InvalidInputError, XFusionError

__all__ = [
    "CHUNK_BYTES",
    "FORMATS",
    "SCORE_KEYS",
    "check_writable",
    "default_path",
    "export_fused",
    "format_of",
    "iter_chunks",
    "write_h5",
    "write_mp4",
    "write_png",
    "write_tiff",
]

#: Output formats and the default name each gets (``{uid}``: 8 characters).
FORMATS = {
    "h5": "fused_{uid}.h5",
    "tiff": "fused_{uid}.tif",
    "png": "fused_{uid}_png",
    "mp4": "fused_{uid}.mp4",
}
#: File suffixes and their format; a path without a suffix is a PNG folder.
SUFFIXES = {
    ".h5": "h5",
    ".hdf5": "h5",
    ".nxs": "h5",
    ".tif": "tiff",
    ".tiff": "tiff",
    "": "png",
    ".mp4": "mp4",
}
#: Bytes of frames read from the server per request.
CHUNK_BYTES = 32 * 2**20
#: Per-frame records (FusedRun properties) copied into the h5 file beside the frames.
SCORE_KEYS = (
    "frame_times_s",
    "backward_attention",
    "forward_attention",
    "normalized_backward_attention",
    "normalized_forward_attention",
    "burst",
    "uhs_frame",
    "hs_before",
    "hs_after",
    "hr_at_reference",
)


def format_of(path: str | Path) -> str:
    """Return the export format a path's suffix names (no suffix: a PNG folder).

    Raises
    ------
    InvalidInputError
        The suffix names no format.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise InvalidInputError(
            f"cannot tell the format of {str(path)!r} from its suffix {suffix!r}: "
            f"use one of {', '.join(s for s in SUFFIXES if s)} (none: a folder of "
            "PNGs), or name the format"
        )
    return SUFFIXES[suffix]


def default_path(fused: FusedRun, format: str) -> Path:
    """Return ``fused_<uid>.<ext>`` (PNG: a ``_png`` folder) in the working folder."""
    return Path(FORMATS[_check_format(format)].format(uid=fused.uid[:8]))


def export_fused(
    fused: FusedRun,
    path: str | Path,
    *,
    format: str | None = None,
    fps: int = 10,
    overwrite: bool = False,
) -> Path:
    """Write the fused frames of a derived run to a file.

    Parameters
    ----------
    fused : FusedRun
        A successful derived run.
    path : path
        Output file; a folder for PNG.
    format : {"h5", "tiff", "png", "mp4"}, optional
        Default: from the suffix of ``path`` (``.h5``/``.hdf5``/``.nxs``,
        ``.tif``/``.tiff``, ``.mp4``; none: a folder of PNGs).
    fps : int
        mp4 frames per second.
    overwrite : bool
        Replace an existing output.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    InvalidInputError
        Unknown format or suffix, ``fps`` ≤ 0, the run is still being written,
        ``path`` exists and ``overwrite`` is False, or ``path`` cannot be
        written (a file where a folder must be, no permission).
    LookupError
        The run failed: it holds no frames (the message gives the reason).
    XFusionError
        mp4 without ffmpeg on the PATH.
    """
    chosen = format_of(path) if format is None else _check_format(format)
    if not fps > 0:
        raise InvalidInputError(f"fps must be > 0 frames per second; got {fps}")
    if fused.status == "running":
        raise InvalidInputError(
            f"derived run {fused.uid} is still being written by a worker: "
            "export it when it is done"
        )
    _ = fused.frames  # a failed run raises LookupError here, with its reason
    out = Path(path)
    check_writable(out)
    if out.exists() and not overwrite:
        raise InvalidInputError(
            f"{out} exists: pass overwrite=True (CLI: --overwrite) to replace it, "
            "or write elsewhere"
        )
    if chosen == "h5":
        return write_h5(fused, out)
    if chosen == "tiff":
        return write_tiff(fused, out)
    if chosen == "png":
        return write_png(fused, out)
    return write_mp4(fused, out, fps=fps)


def check_writable(path: str | Path) -> None:
    """Raise an error naming why ``path`` cannot be written, before anything is.

    The first folder above ``path`` that exists must be a folder this process
    may write in; the folders below it are made when the file is written.

    Raises
    ------
    InvalidInputError
        A file stands where a folder must be, or there is no write permission.
    """
    out = Path(path)
    parent = out.absolute().parent
    while not parent.exists():  # the root exists: the loop ends
        parent = parent.parent
    if not parent.is_dir():
        raise InvalidInputError(
            f"cannot write {out}: {parent} is a file, not a folder; choose another "
            "output path"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidInputError(
            f"cannot write {out}: no permission to write in {parent}; choose "
            "another output path"
        )


def iter_chunks(frames: Any, *, desc: str = "export") -> Iterator[NDArray[Any]]:
    """Yield ``frames`` (a lazy (T, H, W) array) in chunks of ~32 MB, with a bar.

    Parameters
    ----------
    frames : array-like, (T, H, W)
        A Tiled array client (or any sliceable array).
    desc : str
        Progress-bar label.

    Yields
    ------
    ndarray, (n, H, W)
        Consecutive chunks, in order.
    """
    from tqdm import tqdm

    count, height, width = (int(v) for v in frames.shape)
    step = max(1, CHUNK_BYTES // max(height * width * frames.dtype.itemsize, 1))
    with tqdm(total=count, desc=desc, unit="frame", disable=None) as bar:
        for start in range(0, count, step):
            chunk = np.asarray(frames[start : start + step])
            bar.update(chunk.shape[0])
            yield chunk


def write_h5(fused: FusedRun, path: str | Path) -> Path:
    """Write frames, per-frame records and provenance of ``fused`` to HDF5.

    Parameters
    ----------
    fused : FusedRun
        A successful derived run.
    path : path
        Output file (replaced).

    Returns
    -------
    Path
        ``path``.

    Notes
    -----
    ``/entry/data/fused`` is (T, H, W) uint16, one HDF5 chunk per frame (reading
    one frame touches one chunk); beside it one (T,) dataset per record of
    :data:`SCORE_KEYS`. ``/entry/provenance/start_document`` and
    ``stop_document`` are the derived run's documents as JSON; the group's
    attributes repeat the uids, the method and the model's sha256.
    """
    import h5py

    frames = fused.frames
    count, height, width = (int(v) for v in frames.shape)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(out, "w") as f:
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        data = entry.create_group("data")
        data.attrs.update(NX_class="NXdata", signal="fused")
        dataset = data.create_dataset(
            "fused",
            (count, height, width),
            dtype=frames.dtype,
            chunks=(1, height, width),
        )
        dataset.attrs["units"] = "HS counts"
        written = 0
        for chunk in iter_chunks(frames, desc="h5"):
            dataset[written : written + chunk.shape[0]] = chunk
            written += chunk.shape[0]
        for key in SCORE_KEYS:
            data.create_dataset(key, data=np.asarray(getattr(fused, key)))
        data["frame_times_s"].attrs["units"] = "s"
        provenance = entry.create_group("provenance")
        provenance.attrs.update(
            derived_uid=fused.uid,
            raw_uid=fused.raw_uid,
            method=str(fused.fusion.get("method")),
            model_sha256=str((fused.fusion.get("model") or {}).get("sha256")),
        )
        for name, document in (
            ("start_document", fused.metadata),
            ("stop_document", fused.stop),
        ):
            provenance.create_dataset(
                name, data=json.dumps(document, default=str, indent=1)
            )
    return out


def write_tiff(fused: FusedRun, path: str | Path) -> Path:
    """Write the fused frames as one multi-page TIFF, uint16 HS counts.

    Uses tifffile (an ImageJ hyperstack, frames streamed) where it is installed,
    else Pillow (a dependency of matplotlib), which holds the pages until the end.
    """
    frames = fused.frames
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    pages = (frame for chunk in iter_chunks(frames, desc="tiff") for frame in chunk)
    try:
        import tifffile
    except ImportError:
        from PIL import Image

        first = Image.fromarray(np.ascontiguousarray(next(pages)))
        first.save(
            out,
            save_all=True,
            append_images=[Image.fromarray(np.ascontiguousarray(p)) for p in pages],
        )
        return out
    shape = tuple(int(v) for v in frames.shape)
    # ImageJ hyperstacks stop at 4 GB: a bigger video is written as BigTIFF.
    big = int(np.prod(shape)) * frames.dtype.itemsize > 2**32 - 2**25
    with tifffile.TiffWriter(out, bigtiff=big, imagej=not big) as tif:
        tif.write(
            pages,
            shape=shape,
            dtype=frames.dtype,
            metadata={"axes": "TYX"} if not big else {},
        )
    return out


def write_png(fused: FusedRun, path: str | Path) -> Path:
    """Write one 16-bit grayscale PNG per fused frame into folder ``path``.

    The files are ``frame_00000.png``, ... (more digits past 100 000 frames).
    """
    from PIL import Image

    frames = fused.frames
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    digits = max(5, len(str(int(frames.shape[0]) - 1)))
    index = 0
    for chunk in iter_chunks(frames, desc="png"):
        for frame in chunk:
            Image.fromarray(np.ascontiguousarray(frame)).save(
                out / f"frame_{index:0{digits}d}.png"
            )
            index += 1
    return out


def write_mp4(fused: FusedRun, path: str | Path, *, fps: int = 10) -> Path:
    """Write an 8-bit preview movie of the fused frames with matplotlib + ffmpeg.

    Raises
    ------
    XFusionError
        ffmpeg is not on the PATH.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import animation

    if not animation.writers.is_available("ffmpeg"):
        raise XFusionError(
            "mp4 needs ffmpeg on the PATH (apt-get install ffmpeg, or conda install "
            "ffmpeg); tiff or png need nothing more"
        )
    frames = fused.frames
    count, height, width = (int(v) for v in frames.shape)
    times_us = fused.frame_times_s * 1e6
    # One contrast for the whole movie, from a sample of frames, so brightness
    # changes in the event stay visible.
    sample = np.asarray(frames[:: max(1, count // 16)])
    lo, hi = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig = plt.figure(figsize=(width / 100, height / 100 + 0.3), dpi=100)
    ax = fig.add_axes((0.0, 0.0, 1.0, height / (height + 30)))
    ax.axis("off")
    image = ax.imshow(np.zeros((height, width)), cmap="gray", vmin=lo, vmax=hi)
    label = fig.text(0.01, 0.99, "", va="top", fontsize=8)
    writer = animation.FFMpegWriter(fps=fps, metadata={"title": f"fused {fused.uid}"})
    try:
        with writer.saving(fig, str(out), dpi=100):
            index = 0
            for chunk in iter_chunks(frames, desc="mp4"):
                for frame in chunk:
                    image.set_data(frame)
                    label.set_text(f"frame {index}  t = {times_us[index]:.2f} µs")
                    writer.grab_frame()
                    index += 1
    finally:
        plt.close(fig)
    return out


def _check_format(format: str) -> str:
    """Return ``format`` if it is one of :data:`FORMATS`, else say which are."""
    if format not in FORMATS:
        raise InvalidInputError(
            f"format must be one of {', '.join(FORMATS)}; got {format!r}"
        )
    return format
