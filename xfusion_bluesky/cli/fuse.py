"""`xfusion-bluesky fuse UID`: fuse one raw run now, in this process, with a bar.

The same :func:`~xfusion_bluesky.pipeline.fuse_run` the automatic worker calls:
it reads the raw run from Tiled, fuses it and writes a derived run to the
server's ``fused`` container; asking again returns that run unless ``--force``.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from xfusion_bluesky.cli.options import (
    adapt_options,
    add_adapt_arguments,
    add_batch_size_argument,
    add_device_argument,
    add_method_argument,
    add_model_argument,
    add_tiled_arguments,
    open_from_args,
    resolve_device,
    seconds,
)

DESCRIPTION = """\
Fuse one raw dual-camera run now, in this process, with a progress bar: read it
from Tiled, put the HS frames on the UHS time axis and field, fuse, and write the
result back to the server as a derived run (fused frames in HS counts, attention
scores per frame, provenance). The automatic fusion worker does the same after
every scan; asking for a fusion that exists returns it unless --force.
"""

EPILOG = """\
examples:
  export XFUSION_TILED_URL=http://host:8000/api/v1 XFUSION_TILED_API_KEY=secret
  xfusion-bluesky fuse 1a2b3c4d                    # the method the run asked for
  xfusion-bluesky fuse 1a2b3c4d --method bicubic   # a baseline beside it
  xfusion-bluesky fuse 1a2b3c4d --force --model runs/mine/final.pth --device cuda
  xfusion-bluesky fuse 1a2b3c4d --wait 600         # the scan is still running
  xfusion-bluesky fuse 1a2b3c4d --force --adapt    # fine-tuned on the run's HS frames

UID is the raw run's uid (a unique prefix works), as printed by the scan or
listed in the server's `raw` container. The exit status is 0 when the derived
run succeeded (or is still being written by a worker), 1 when it failed: the
reason is printed and kept in the derived run's stop document. A run stopped or
aborted part-way is fused burst by burst: the bursts left out are listed.

A run still being recorded (no stop document yet) is refused, exit status 1,
with nothing written; --wait S waits up to S seconds for the scan to end first.
A model file that does not exist is a usage error (exit status 2), not a
failed fusion.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``fuse`` verb."""
    parser = subparsers.add_parser(
        "fuse",
        help="fuse one raw run now and write the derived run to Tiled",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("uid", metavar="UID", help="raw run uid (a unique prefix)")
    add_method_argument(
        parser, help="fusion method (default: what the run asked for, else edvr_stf)"
    )
    add_model_argument(parser)
    parser.add_argument(
        "--lr-separation",
        type=int,
        choices=(1, 2, 3),
        metavar="N",
        help="LR frames between the reference and its neighbours: 1, 2 or 3 "
        "(default: the run's request, else 1)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="fuse again even if an identical derived run exists",
    )
    parser.add_argument(
        "--wait",
        type=seconds,
        default=0.0,
        metavar="S",
        help="wait up to S seconds for a run still being recorded to end "
        "(default 0: refuse it, writing nothing)",
    )
    parser.add_argument(
        "--no-hr-passthrough",
        action="store_true",
        help="keep the network's output at UHS frames that have an HS frame of "
        "their own instant (default: that HS frame itself)",
    )
    add_adapt_arguments(parser)
    add_device_argument(parser)
    add_batch_size_argument(parser)
    add_tiled_arguments(parser)
    parser.set_defaults(func=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    """Fuse the run, print where the result is; 1 if the fusion failed."""
    from xfusion_bluesky.catalog.lookup import check_raw_uid
    from xfusion_bluesky.errors import RunNotFinishedError
    from xfusion_bluesky.fusion.adaptation import AdaptSettings
    from xfusion_bluesky.pipeline import fuse_run

    _check_model(args)
    adapt = adapt_options(args)
    device = resolve_device(args.device)
    catalogs, uri = open_from_args(args, create=True)
    status = "failed"
    try:
        check_raw_uid(catalogs, args.uid, uri=uri)
        began = time.time()
        if args.wait:
            print(f"waiting up to {args.wait:g} s for the scan to end ...", flush=True)
        try:
            fused = fuse_run(
                catalogs.root,
                args.uid,
                method=args.method,
                model=args.model,
                lr_separation=args.lr_separation,
                force=args.force,
                device=device,
                batch_size=args.batch_size,
                progress=True,
                wait_s=args.wait,
                hr_passthrough=not args.no_hr_passthrough,
                adapt=None if adapt is None else AdaptSettings.from_dict(adapt),
            )
        except RunNotFinishedError as err:
            hint = "" if args.wait else "; pass --wait S to wait for it"
            print(f"xfusion-bluesky: error: {err}{hint}", file=sys.stderr)
            return 1
        status = fused.status
        print(describe(fused, new=_started(fused) >= began))
    finally:
        catalogs.root.context.close()
    return 1 if status == "failed" else 0


def _check_model(args: argparse.Namespace) -> None:
    """Refuse a --model that is neither a file nor a shipped model's name (exit 2).

    A usage error must not reach the catalog as a failed fusion of the run.
    """
    if args.model is None:
        return
    from pathlib import Path

    from xfusion_bluesky.fusion.model.checkpoint import MODELS_DIR

    path = Path(args.model).expanduser()
    if not path.is_file() and not (MODELS_DIR / f"{args.model}.pth").is_file():
        args.parser.error(
            f"--model {args.model}: no such file (nor a shipped model in {MODELS_DIR})"
        )


def describe(fused: Any, *, new: bool = True) -> str:
    """Return the lines that tell a scientist what a derived run holds."""
    start = fused.metadata
    fusion = fused.fusion
    model = fusion.get("model") or {}
    lines = [
        f"raw run      {fused.raw_uid}"
        + (f" (scan {start['raw_scan_id']})" if "raw_scan_id" in start else ""),
        f"derived run  {fused.uid}"
        + ("" if new else " (existing: pass --force to fuse again)"),
        f"method       {fusion.get('method')}"
        + (
            f" (model {model['name']}, sha256 {str(model.get('sha256'))[:12]}…)"
            if model.get("name")
            else ""
        ),
        f"status       {fused.status}",
    ]
    if fused.status == "success":
        shape = tuple(fused.frames.shape)
        wall = fused.outcome.get("wall_time_s")
        lines.append(
            f"frames       {shape[0]} × {shape[1]}×{shape[2]} px uint16 (HS counts)"
            + (f", fused in {wall:.1f} s" if wall is not None else "")
        )
    elif fused.status == "running":
        lines.append(
            "note         another worker is writing it now: "
            "fetch_fused(client, uid, wait=...) returns it when done"
        )
    missing = (fused.outcome or {}).get("missing_bursts") or []
    if missing and fused.status == "success":
        numbers = ", ".join(str(item["burst"]) for item in missing)
        lines.append(f"left out     burst(s) {numbers}: not fused (see reason)")
    if fused.reason:
        lines.append(f"reason       {fused.reason}")
    return "\n".join(lines)


def _started(fused: Any) -> float:
    """Return when a derived run was started (epoch s; 0 if unknown)."""
    return float(fused.metadata.get("time") or 0.0)
