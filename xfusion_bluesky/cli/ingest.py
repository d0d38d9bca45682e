"""`xfusion-bluesky ingest --uhs FILE --hs FILE ...`: old recordings → a raw run.

A thin shell over :func:`~xfusion_bluesky.ingest.ingest_recordings`: a UHS + HS
pair recorded before (multi-page TIFF, HDF5, Phantom .cine) becomes one raw run
in Tiled, referencing the files, which the fusion worker fuses like any other.
"""

from __future__ import annotations

import argparse
import math

from xfusion_bluesky.cli.options import add_tiled_arguments, open_from_args

DESCRIPTION = """\
Turn a pair of recordings made before (the UHS and the HS camera, one event)
into one raw run in Tiled, in the format dual_camera_scan writes, so that the
fusion worker fuses it like any other run (fusion.requested is true). The files
are referenced, not copied: HDF5 as it is, multi-page TIFF and Phantom .cine
through an HDF5 copy written once beside the original (<name>.h5; Tiled cannot
register those formats). They must lie in a folder the Tiled server reads.

Frame times come from the files' headers where they have them, from --uhs-rate
and --hs-rate otherwise (a rate given must match the header's). The HS frame
times are shifted by --hs-delay: the HS trigger's delay after the UHS's.
Every mistake is refused before anything is written, with the reason.
"""

EPILOG = """\
examples:
  xfusion-bluesky register --uhs target_uhs.tif --hs target_hs.cine -o reg.json
  xfusion-bluesky ingest --uhs shot_uhs.tif --hs shot_hs.cine --uhs-rate 2e6 \\
      --registration reg.json
  xfusion-bluesky ingest --uhs a.tif --hs b.tif --uhs-rate 2e6 --hs-rate 125e3 \\
      --hs-delay 1e-6 --registration reg.json --tiled http://host:8000/api/v1

The registration file (a raw run's registration block as JSON) says where the
HS field lies in the UHS field: `xfusion-bluesky register` measures one from a
recording pair of a static, textured target, or saves a raw run's with
--from-run UID. The exit status is 0 with the run's uid printed, 1 when the
pair was refused (nothing written).
"""


def _rate(text: str) -> float:
    """Parse a frame rate in Hz > 0 (argparse ``type``)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a rate in Hz > 0; got {text!r}")
    return value


def _delay(text: str) -> float:
    """Parse a delay in seconds, any sign (argparse ``type``)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected seconds; got {text!r}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``ingest`` verb."""
    parser = subparsers.add_parser(
        "ingest",
        help="turn a UHS + HS recording pair made before into a raw run in Tiled",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--uhs", required=True, metavar="FILE", help="the UHS recording"
    )
    parser.add_argument("--hs", required=True, metavar="FILE", help="the HS recording")
    parser.add_argument(
        "--registration",
        metavar="FILE",
        help="registration file (JSON; required: `xfusion-bluesky register` makes one)",
    )
    parser.add_argument(
        "--uhs-rate",
        type=_rate,
        metavar="HZ",
        help="UHS frame rate, when its file's header has none",
    )
    parser.add_argument(
        "--hs-rate",
        type=_rate,
        metavar="HZ",
        help="HS frame rate, when its file's header has none",
    )
    parser.add_argument(
        "--hs-delay",
        type=_delay,
        default=0.0,
        metavar="S",
        help="the HS trigger's delay after the UHS's, seconds (default 0)",
    )
    parser.add_argument(
        "--uhs-dataset",
        metavar="PATH",
        help="the frames' dataset in an HDF5 UHS file (default: found)",
    )
    parser.add_argument(
        "--hs-dataset",
        metavar="PATH",
        help="the frames' dataset in an HDF5 HS file (default: found)",
    )
    add_tiled_arguments(parser, api_key_note="; needs write access to raw runs")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Ingest the pair; print the raw run's uid and what it holds."""
    from xfusion_bluesky.catalog.connect import redact
    from xfusion_bluesky.ingest import check_ingest, ingest_recordings

    options = {
        "uhs_rate_hz": args.uhs_rate,
        "hs_rate_hz": args.hs_rate,
        "hs_delay_s": args.hs_delay,
        "uhs_dataset": args.uhs_dataset,
        "hs_dataset": args.hs_dataset,
    }
    # Checked before the server is even opened: a refusal needs no Tiled.
    check_ingest(args.uhs, args.hs, registration=args.registration, **options)
    catalogs, uri = open_from_args(args, create=True)
    try:
        uid = ingest_recordings(
            catalogs, args.uhs, args.hs, registration=args.registration, **options
        )
        start = catalogs.raw[uid].start
    finally:
        catalogs.root.context.close()
    uhs, hs, timing = start["uhs"], start["hs"], start["timing"]
    print(f"raw run      {uid}")
    print(f"server       {redact(uri)}")
    for name, block in (("UHS", uhs), ("HS", hs)):
        source = start["ingest"][name.lower()]
        print(
            f"{name:<12} {block['frames_per_burst']} × {block['frame_shape'][0]}×"
            f"{block['frame_shape'][1]} px at {block['frame_rate_hz']:.6g} Hz "
            f"(times from the {source['frame_times_from']}), {source['path']}"
        )
    print(f"hr_separation {timing['hr_separation']:.4g} LR frame periods")
    print("fusion       requested: a running worker fuses it at its next look")
    return 0
