"""`xfusion-bluesky export UID`: fused frames out of Tiled into h5, tiff, png or mp4.

Frames are read from the server a chunk at a time and written as they come, so a
full-sensor video never sits in memory whole. The pixel values stay the derived
run's: uint16 in the HS camera's counts (h5, tiff, png); the mp4 is a preview,
8-bit and contrast-stretched.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from xfusion_bluesky.cli.fuse import add_tiled_arguments, open_from_args, resolve_fused

#: Output formats and the default name each gets (``{uid}``: 8 characters).
FORMATS = {
    "h5": "fused_{uid}.h5",
    "tiff": "fused_{uid}.tif",
    "png": "fused_{uid}_png",
    "mp4": "fused_{uid}.mp4",
}
#: Bytes of frames read from the server per request.
CHUNK_BYTES = 32 * 2**20
#: Per-frame records copied into the h5 file beside the frames.
SCORE_KEYS = (
    "frame_times_s",
    "backward_attention",
    "forward_attention",
    "normalized_backward_attention",
    "normalized_forward_attention",
    "hr_before",
    "hr_after",
    "hr_at_reference",
    "burst",
)

DESCRIPTION = """\
Write the fused frames of a derived run to a file a scientist's tools read:
HDF5 (with the attention scores and the provenance), TIFF, PNG or an mp4
preview. Frames are read from Tiled a chunk at a time, so a long video never
sits in memory whole; pixel values stay the derived run's (uint16 HS counts)
except in the mp4.
"""

EPILOG = """\
formats:
  h5    /entry/data/fused (T, H, W) uint16 in HS counts, the per-frame records
        (frame_times_s, backward/forward attention raw and normalised, hr_before,
        hr_after, hr_at_reference, burst) beside it, and /entry/provenance
        (the derived run's start document as JSON: method, model sha256,
        registration, HR index, alignment errors, versions)
  tiff  one multi-page ImageJ TIFF, uint16 HS counts (tifffile if installed,
        else Pillow)
  png   a folder of 16-bit grayscale PNGs, frame_00000.png, ... (HS counts)
  mp4   an 8-bit preview movie (needs ffmpeg on the PATH)

examples:
  xfusion-bluesky export 1a2b3c4d --format h5             # raw or derived uid
  xfusion-bluesky export 1a2b3c4d --format mp4 --fps 20 --out melt.mp4
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``export`` verb."""
    parser = subparsers.add_parser(
        "export",
        help="write a derived run's fused frames to h5, tiff, png or mp4",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "uid",
        metavar="UID",
        help="derived run uid, or a raw run's (its newest successful fusion)",
    )
    parser.add_argument("--format", required=True, choices=tuple(FORMATS))
    parser.add_argument(
        "--out",
        metavar="PATH",
        help="output file (folder for png); default fused_<uid>.<ext> here",
    )
    parser.add_argument(
        "--fps", type=int, default=10, help="mp4 frames per second (default 10)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing output"
    )
    add_tiled_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Find the derived run, write the chosen format, print the path."""
    from xfusion_bluesky.errors import InvalidInputError

    if not args.fps > 0:
        raise InvalidInputError(f"--fps must be > 0; got {args.fps}")
    catalogs, uri = open_from_args(args, create=False)
    try:
        fused = resolve_fused(catalogs, args.uid, uri=uri)
        if fused.status == "running":
            raise InvalidInputError(
                f"derived run {fused.uid} is still being written by a worker: "
                "export it when it is done"
            )
        frames = fused.frames  # raises for a failed run, with its reason
        out = Path(args.out or FORMATS[args.format].format(uid=fused.uid[:8]))
        if out.exists() and not args.overwrite:
            raise InvalidInputError(
                f"{out} exists: pass --overwrite to replace it, or --out elsewhere"
            )
        writer = {
            "h5": write_h5,
            "tiff": write_tiff,
            "png": write_png,
            "mp4": lambda f, p: write_mp4(f, p, fps=args.fps),
        }[args.format]
        path = writer(fused, out)
        shape = tuple(frames.shape)
        print(
            f"wrote {path} ({shape[0]} frames {shape[1]}×{shape[2]} px of derived "
            f"run {fused.uid}, raw run {fused.raw_uid})"
        )
    finally:
        catalogs.root.context.close()
    return 0


def iter_chunks(frames: Any, *, desc: str = "export") -> Iterator[np.ndarray]:
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


def write_h5(fused: Any, path: str | Path) -> Path:
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
    :data:`SCORE_KEYS`. ``/entry/provenance/start_document`` is the derived run's
    start document as JSON; its attributes repeat the uids and method.
    """
    import h5py

    frames = fused.frames
    count, height, width = (int(v) for v in frames.shape)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    start = fused.metadata
    fusion = start.get("fusion") or {}
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
            values = np.asarray(getattr(fused, key))
            data.create_dataset(key, data=values)
        data["frame_times_s"].attrs["units"] = "s"
        provenance = entry.create_group("provenance")
        provenance.attrs.update(
            derived_uid=fused.uid,
            raw_uid=fused.raw_uid,
            method=str(fusion.get("method")),
            model_sha256=str((fusion.get("model") or {}).get("sha256")),
        )
        provenance.create_dataset(
            "start_document", data=json.dumps(start, default=str, indent=1)
        )
    return out


def write_tiff(fused: Any, path: str | Path) -> Path:
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


def write_png(fused: Any, path: str | Path) -> Path:
    """Write one 16-bit grayscale PNG per fused frame into folder ``path``."""
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


def write_mp4(fused: Any, path: str | Path, *, fps: int = 10) -> Path:
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

    from xfusion_bluesky.errors import XFusionError

    if not animation.writers.is_available("ffmpeg"):
        raise XFusionError(
            "mp4 needs ffmpeg on the PATH (apt-get install ffmpeg, or conda install "
            "ffmpeg); --format tiff or png need nothing more"
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
    with writer.saving(fig, str(out), dpi=100):
        index = 0
        for chunk in iter_chunks(frames, desc="mp4"):
            for frame in chunk:
                image.set_data(frame)
                label.set_text(f"frame {index}  t = {times_us[index]:.2f} µs")
                writer.grab_frame()
                index += 1
    plt.close(fig)
    return out
