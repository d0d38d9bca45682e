"""`xfusion-bluesky register`: a registration file for `ingest`, measured or saved.

A thin shell over :func:`~xfusion_bluesky.ingest.measure_registration` (a UHS +
HS recording pair of a static, textured target) or, with ``--from-run UID``,
over a raw run's stored ``registration`` block.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from xfusion_bluesky.cli.options import add_tiled_arguments, open_from_args

DESCRIPTION = """\
Write the registration file that `xfusion-bluesky ingest --registration FILE`
needs: where the HS field lies in the UHS field (scale ratio, rotation, offset,
flips) as a raw run's registration block in JSON.

With --uhs and --hs: measure it from a recording pair of a static, textured
target (a grid, a sandpaper, any object that does not move), each camera's
frames averaged, with the same measurement registration_scan() uses.
With --from-run UID: save the registration block of a raw run already in Tiled
(a dual_camera_scan taken with the same camera setup as the recordings).
"""

EPILOG = """\
examples:
  xfusion-bluesky register --uhs target_uhs.tif --hs target_hs.cine -o reg.json
  xfusion-bluesky register --from-run 1a2b3c4d -o reg.json --tiled URI

A target with too little texture, fields that do not overlap, or a transform
outside the range the worker accepts are refused with the reason (exit 1).
An existing output file is kept unless --overwrite is given.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``register`` verb."""
    parser = subparsers.add_parser(
        "register",
        help="measure (or save from a run) the registration file `ingest` needs",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--uhs", metavar="FILE", help="UHS recording of the target")
    parser.add_argument("--hs", metavar="FILE", help="HS recording of the target")
    parser.add_argument(
        "--from-run",
        metavar="UID",
        help="save this raw run's registration block instead of measuring",
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="PATH",
        help="the registration file to write (JSON)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing output file"
    )
    parser.add_argument(
        "--uhs-dataset", metavar="PATH", help="the frames' dataset in an HDF5 UHS file"
    )
    parser.add_argument(
        "--hs-dataset", metavar="PATH", help="the frames' dataset in an HDF5 HS file"
    )
    add_tiled_arguments(parser, api_key_note=" (--from-run only)")
    parser.set_defaults(func=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    """Measure or fetch the block, write it, print what it says."""
    from xfusion_bluesky.ingest import (
        measure_registration,
        read_registration,
        write_registration,
    )

    measuring = args.uhs is not None or args.hs is not None
    if measuring == (args.from_run is not None) or (
        measuring and (args.uhs is None or args.hs is None)
    ):
        args.parser.error("give --uhs FILE and --hs FILE, or --from-run UID")
    output = Path(args.output).expanduser()
    if output.exists() and not args.overwrite:
        args.parser.error(f"{output} exists: pass --overwrite to replace it")
    if measuring:
        block = measure_registration(
            args.uhs,
            args.hs,
            uhs_dataset=args.uhs_dataset,
            hs_dataset=args.hs_dataset,
        )
    else:
        block = _from_run(args)
    write_registration(output, block)
    checked = read_registration(output)  # what ingest will read
    shift_y, shift_x = checked["offset_hr_px"]
    print(f"registration {output}")
    print(f"measured by  {checked['measured_by']}")
    print(
        f"scale ratio  {checked['scale_ratio']:.5f}, rotation "
        f"{checked['rotation_deg']:+.4f}°, offset ({shift_y:.2f}, {shift_x:.2f}) "
        f"grid px, flips y={checked['flip_y']} x={checked['flip_x']}"
    )
    uncertainty = checked.get("uncertainty") or {}
    if uncertainty.get("point_rms_hr_px") is not None:
        rms = float(uncertainty["point_rms_hr_px"])
        print(f"uncertainty  {rms:.3f} grid px RMS over the field")
    print(
        f"frames       UHS {checked['uhs_shape'][0]}×{checked['uhs_shape'][1]} px, "
        f"HS {checked['hs_shape'][0]}×{checked['hs_shape'][1]} px"
    )
    return 0


def _from_run(args: argparse.Namespace) -> dict:
    """Return the registration block of raw run ``--from-run``."""
    from xfusion_bluesky.catalog.lookup import check_raw_uid
    from xfusion_bluesky.errors import InvalidInputError
    from xfusion_bluesky.stored_format import raw_start_v1

    catalogs, uri = open_from_args(args, create=False)
    try:
        check_raw_uid(catalogs, args.from_run, uri=uri)
        start = raw_start_v1(dict(catalogs.raw[args.from_run].start))
    finally:
        catalogs.root.context.close()
    block = start.get("registration")
    if not block:
        raise InvalidInputError(
            f"raw run {start['uid']} ({start.get('plan_name')}) has no registration "
            "block: give a dual_camera_scan run recorded after the registration_scan"
        )
    return dict(block)
