"""`xfusion-bluesky export UID`: fused frames out of Tiled into h5, tiff, png or mp4.

The writing is :func:`~xfusion_bluesky.catalog.export.export_fused`; this verb
finds the derived run, picks the output name and prints what it wrote.
"""

from __future__ import annotations

import argparse

from xfusion_bluesky.cli.options import (
    add_method_argument,
    add_tiled_arguments,
    open_from_args,
    positive_int,
)

#: The formats ``--format`` offers (the library's ``FORMATS``; not imported here
#: so that ``--help`` stays fast).
FORMATS = ("h5", "tiff", "png", "mp4")

DESCRIPTION = """\
Write the fused frames of a derived run to a file a scientist's tools read:
HDF5 (with the attention scores and the provenance), TIFF, PNG or an mp4
preview. Frames are read from Tiled a chunk at a time, so a long video never
sits in memory whole; pixel values stay the derived run's (uint16 HS counts)
except in the mp4.
"""

EPILOG = """\
formats (default: from the --out suffix; without --out, h5):
  h5    .h5/.hdf5/.nxs: /entry/data/fused (T, H, W) uint16 in HS counts, the
        per-frame records (frame_times_s, backward/forward attention raw and
        normalised, burst, uhs_frame, hs_before, hs_after, hr_at_reference)
        beside it, and /entry/provenance (the derived run's start and stop
        documents as JSON: method, model sha256, registration, outcome)
  tiff  .tif/.tiff: one multi-page ImageJ TIFF, uint16 HS counts (tifffile if
        installed, else Pillow)
  png   no suffix: a folder of 16-bit grayscale PNGs, frame_00000.png, ...
  mp4   .mp4: an 8-bit preview movie (needs ffmpeg on the PATH)

examples:
  xfusion-bluesky export 1a2b3c4d                        # raw or derived uid
  xfusion-bluesky export 1a2b3c4d --out melt.tif
  xfusion-bluesky export 1a2b3c4d --out melt.mp4 --fps 20
  xfusion-bluesky export 1a2b3c4d --method bicubic       # the baseline

A raw uid names the fusion its run requested (edvr_stf unless the scan asked
for another), not a baseline fused later by hand; --method picks another.
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
        help="derived run uid, or a raw run's (its fusion of --method)",
    )
    add_method_argument(
        parser,
        help="with a raw uid, the fusion to use (default: the method the raw run "
        "requested; if it has none of that, its newest other one)",
    )
    parser.add_argument(
        "--out",
        metavar="PATH",
        help="output file (a folder for png); default fused_<uid>.<ext> here",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="h5, tiff, png or mp4 (default: from the --out suffix, else h5)",
    )
    parser.add_argument(
        "--fps",
        type=positive_int,
        default=10,
        metavar="N",
        help="mp4 frames per second (default 10)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing output"
    )
    add_tiled_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Find the derived run, write the file, print the path."""
    from xfusion_bluesky.catalog.export import default_path, export_fused
    from xfusion_bluesky.catalog.lookup import resolve_fused

    catalogs, uri = open_from_args(args, create=False)
    try:
        fused = resolve_fused(catalogs, args.uid, uri=uri, method=args.method)
        out = args.out or default_path(fused, args.format or "h5")
        path = export_fused(
            fused, out, format=args.format, fps=args.fps, overwrite=args.overwrite
        )
        count, height, width = (int(v) for v in fused.frames.shape)
        print(
            f"wrote {path} ({count} frames {height}×{width} px of derived run "
            f"{fused.uid}, raw run {fused.raw_uid}, {fused.method} fusion)"
        )
    finally:
        catalogs.root.context.close()
    return 0
