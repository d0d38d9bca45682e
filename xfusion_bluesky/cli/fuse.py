"""`xfusion-bluesky fuse UID`: fuse one raw run now, in this process, with a bar.

The same :func:`~xfusion_bluesky.pipeline.fuse_run` the automatic worker calls:
it reads the raw run from Tiled, fuses it and writes a derived run to the
server's ``fused`` container; asking again returns that run unless ``--force``.
Also home of what the ``export`` and ``show`` verbs share: the ``--tiled`` /
``--api-key`` options and finding a derived run from a raw or a derived uid.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from xfusion_bluesky.catalog.connect import redact

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

UID is the raw run's uid (a unique prefix works), as printed by the scan or
listed in the server's `raw` container. The exit status is 0 when the derived
run succeeded (or is still being written by a worker), 1 when it failed: the
reason is printed and kept in the derived run's start document.
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
    parser.add_argument(
        "--method",
        help="edvr_stf, edvr, bicubic, bayesian (default: what the run asked for, "
        "else edvr_stf)",
    )
    parser.add_argument(
        "--model", metavar="PTH", help="checkpoint for edvr_stf/edvr (default shipped)"
    )
    parser.add_argument(
        "--lr-separation",
        type=int,
        choices=(1, 2, 3),
        help="LR frames between the reference and its neighbours (default: the "
        "run's request, else 1)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="fuse again even if an identical derived run exists",
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="cpu, cuda, cuda:1, ... (default auto: cuda when there is one)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help="windows per forward pass (default: by frame size; halved on OOM)",
    )
    add_tiled_arguments(parser)
    parser.set_defaults(func=run)


def add_tiled_arguments(parser: Any, *, api_key_note: str = "") -> None:
    """Add ``--tiled URL`` and ``--api-key KEY`` (defaults: the environment).

    Parameters
    ----------
    parser : argparse.ArgumentParser or argument group
        Where the options go.
    api_key_note : str
        Appended to the ``--api-key`` help (what access the verb needs).
    """
    parser.add_argument(
        "--tiled",
        metavar="URL",
        help="Tiled server, e.g. http://host:8000/api/v1 (default XFUSION_TILED_URL)",
    )
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        help="its API key (default XFUSION_TILED_API_KEY; the environment keeps it "
        "out of `ps`)" + api_key_note,
    )


def open_from_args(args: argparse.Namespace, *, create: bool) -> tuple[Any, str]:
    """Open the server named by ``--tiled``/``--api-key`` or the environment.

    Parameters
    ----------
    args : argparse.Namespace
        With ``tiled`` and ``api_key`` (see :func:`add_tiled_arguments`).
    create : bool
        Create missing run containers (needs write access).

    Returns
    -------
    Catalogs, str
        The root, raw and fused containers; the server URI (for messages).

    Raises
    ------
    InvalidInputError
        Neither ``--tiled`` nor ``XFUSION_TILED_URL`` names a server.
    """
    from xfusion_bluesky.catalog.connect import open_catalogs
    from xfusion_bluesky.errors import InvalidInputError
    from xfusion_bluesky.settings import Settings

    settings = Settings.from_env()
    uri = args.tiled or settings.tiled_url
    if not uri:
        raise InvalidInputError(
            "no Tiled server: pass --tiled URL or set XFUSION_TILED_URL (an "
            "IPython session prints its embedded server's URL as bl.connection.uri; "
            "`xfusion-bluesky serve` runs a standalone one)"
        )
    api_key = args.api_key or settings.tiled_api_key
    return open_catalogs(uri, api_key=api_key, create=create), uri


def resolve_fused(catalogs: Any, uid: str, *, uri: str = "") -> Any:
    """Return the derived run ``uid`` names: a derived uid, or a raw run's.

    Parameters
    ----------
    catalogs : Catalogs
        The server's containers.
    uid : str
        A derived run's uid, or a raw run's (its newest successful derived run,
        else its newest finished one); unique prefixes work.
    uri : str
        The server, for messages.

    Returns
    -------
    FusedRun

    Raises
    ------
    LookupError
        Neither a derived nor a raw run has that uid, or the raw run has no
        derived run yet.
    """
    from xfusion_bluesky.catalog.queries import FusedRun, fetch_fused

    if catalogs.fused is not None:
        try:
            return FusedRun(catalogs.fused[uid], catalogs)
        except KeyError:
            pass
    if catalogs.raw is not None:
        try:
            catalogs.raw[uid]
        except KeyError:
            pass
        else:
            return fetch_fused(catalogs.root, uid)
    raise LookupError(
        f"no raw or derived run {uid!r} on {redact(uri) or 'the server'}: check the "
        "uid (a unique prefix works)"
    )


def run(args: argparse.Namespace) -> int:
    """Fuse the run, print where the result is; 1 if the fusion failed."""
    from xfusion_bluesky.errors import InvalidInputError
    from xfusion_bluesky.fusion import METHODS
    from xfusion_bluesky.pipeline import fuse_run

    if args.method is not None and args.method not in METHODS:
        raise InvalidInputError(
            f"--method must be one of {sorted(METHODS)}; got {args.method!r}"
        )
    if args.batch_size is not None and args.batch_size < 1:
        raise InvalidInputError(f"--batch-size must be ≥ 1; got {args.batch_size}")
    catalogs, uri = open_from_args(args, create=True)
    status = "failed"
    try:
        _check_raw(catalogs, args.uid, uri)
        began = time.time()
        fused = fuse_run(
            catalogs.root,
            args.uid,
            method=args.method,
            model=args.model,
            lr_separation=args.lr_separation,
            force=args.force,
            device=_device(args.device),
            batch_size=args.batch_size,
            progress=True,
        )
        new = float((fused.metadata.get("fusion") or {}).get("started", 0)) >= began
        status = fused.status
        print(describe(fused, new=new))
    finally:
        catalogs.root.context.close()
    return 1 if status == "failed" else 0


def describe(fused: Any, *, new: bool = True) -> str:
    """Return the lines that tell a scientist what a derived run holds."""
    start = fused.metadata
    fusion = start.get("fusion") or {}
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
        wall = fusion.get("wall_time_s")
        lines.append(
            f"frames       {shape[0]} × {shape[1]}×{shape[2]} px uint16 (HS counts)"
            + (f", fused in {wall:.1f} s" if wall is not None else "")
        )
    elif fused.status == "running":
        lines.append(
            "note         another worker is writing it now: "
            "fetch_fused(client, uid, wait=...) returns it when done"
        )
    if fused.reason:
        lines.append(f"reason       {fused.reason}")
    return "\n".join(lines)


def _check_raw(catalogs: Any, uid: str, uri: str) -> None:
    """Raise a clear error when ``uid`` names no raw run (or a derived one)."""
    try:
        catalogs.raw[uid]
    except KeyError:
        pass
    else:
        return
    hint = "check the uid (a unique prefix works)"
    if catalogs.fused is not None:
        try:
            derived = catalogs.fused[uid]
        except KeyError:
            pass
        else:
            hint = (
                f"it is a derived run, of raw run {derived.start['derived_from']}: "
                "fuse takes the raw run's uid"
            )
    raise LookupError(f"no raw run {uid!r} on {redact(uri)}: {hint}")


def _device(name: str) -> str:
    """Resolve ``auto`` to ``cuda`` where CUDA exists, else ``cpu``."""
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
