"""`xfusion-bluesky show UID`: one fused frame beside its inputs, and the attention.

A PNG like the paper's Figs. 2 and 7, drawn from
:func:`~xfusion_bluesky.catalog.burst.load_burst`: the UHS frame upsampled | the
fused frame | the nearest HS frame, above the burst's attention scores.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from xfusion_bluesky.cli.options import (
    add_method_argument,
    add_tiled_arguments,
    open_from_args,
)

DESCRIPTION = """\
Draw one fused frame beside the frames it was made from, as in the paper's
Figs. 2 and 7: the UHS frame upsampled (bicubic) | the fused frame | the nearest
HS frame, above the raw and normalised attention scores of the whole burst
against time (grey lines: HS frames). The UHS and HS frames are read from the
raw run and cut to the field both cameras share, as the fusion cut them, and
all three are shown on the HS camera's intensity scale.
"""

EPILOG = """\
examples:
  xfusion-bluesky show 1a2b3c4d                      # raw or derived uid
  xfusion-bluesky show 1a2b3c4d --method bicubic     # the raw run's baseline
  xfusion-bluesky show 1a2b3c4d --frame 40 --out frame40.png

A raw uid names the fusion its run requested (edvr_stf unless the scan asked
for another), not a baseline fused later by hand; --method picks another.

The default frame lies midway between the two HS frames nearest the middle of
the burst: the instant where fusion has the least HS information.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``show`` verb."""
    parser = subparsers.add_parser(
        "show",
        help="draw a fused frame beside its UHS and HS frames, and the attention",
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
        "--out", metavar="PATH", help="PNG to write (default fused_<uid>.png here)"
    )
    parser.add_argument(
        "--frame",
        type=int,
        metavar="N",
        help="UHS frame in the burst (default: midway between two HS frames)",
    )
    parser.add_argument(
        "--burst", type=int, default=0, metavar="N", help="burst of the run (default 0)"
    )
    add_tiled_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Find the derived run, draw the panel, print its path."""
    from xfusion_bluesky.catalog.burst import load_burst
    from xfusion_bluesky.catalog.lookup import resolve_fused
    from xfusion_bluesky.evaluation.panels import frame_panel

    catalogs, uri = open_from_args(args, create=False)
    try:
        fused = resolve_fused(catalogs, args.uid, uri=uri, method=args.method)
        burst = load_burst(fused, args.burst)
        frame = burst.default_frame() if args.frame is None else args.frame
        panel = burst.panel(frame)
        out = Path(args.out or f"fused_{fused.uid[:8]}.png")
        frame_panel(
            out,
            panel.images,
            series=burst.series,
            ref_time_us=panel.time_us,
            title=panel.title,
        )
        print(f"wrote {out}: {panel.title} ({fused.method} fusion)")
    finally:
        catalogs.root.context.close()
    return 0
