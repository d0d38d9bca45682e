"""`xfusion-bluesky worker`: a standalone fusion worker for another host (or GPU).

It connects to the Tiled server by URL, fuses every fusion-requested run that has
no finished derived run yet, then waits for new runs: told by Tiled's websocket
(default) or by bluesky's 0MQ proxy (--zmq). It is itself the separate
process, so it fuses in a thread of its own; Ctrl-C or SIGTERM stops it after
the current run (a run cut short is fused again by the next worker).

With --prefect it fuses nothing itself: each finished run becomes a flow run of
the facility's Prefect fusion deployment (`xfusion-bluesky deploy`), which
Prefect workers take, and the deployment's scheduled catch-up does the catching up.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from types import FrameType
from typing import Any

from xfusion_bluesky.cli.options import (
    adapt_options,
    add_adapt_arguments,
    add_batch_size_argument,
    add_device_argument,
    add_method_argument,
    add_model_argument,
    add_threads_argument,
    add_tiled_arguments,
    resolve_device,
    seconds,
)

#: Seconds the worker gets to finish its current run after Ctrl-C / SIGTERM.
STOP_TIMEOUT_S = 10.0
#: ``--catch-up-s`` without a value: the library's window (``CATCH_UP_S``), stated
#: here so that ``--help`` need not import the worker (a test keeps them equal).
DEFAULT_CATCH_UP_S = 7 * 86400


def _catch_up_s(text: str) -> float:
    """Parse a catch-up window: seconds ≥ 0, or ``all``."""
    return float("inf") if text.lower() == "all" else seconds(text)


EPILOG = """\
examples:
  # fed by Tiled itself (the server needs a streaming cache; `xfusion-bluesky
  # serve` configures one); the API key is best passed in the environment
  XFUSION_TILED_API_KEY=secret xfusion-bluesky worker --tiled http://host:8000/api/v1

  # fed by bluesky's 0MQ proxy; on the acquisition side
  #   bluesky-0MQ-proxy --in-address tcp://127.0.0.1:5577 --out-address tcp://127.0.0.1:5578
  #   RE.subscribe(Publisher("127.0.0.1:5577"))
  xfusion-bluesky worker --tiled http://host:8000/api/v1 --zmq 127.0.0.1:5578

  # one worker per GPU
  xfusion-bluesky worker --tiled URI --device cuda:0 &
  xfusion-bluesky worker --tiled URI --device cuda:1 &

  # at a facility: every finished run of any RunEngine becomes a Prefect flow run
  PREFECT_API_URL=http://prefect-host:4200/api \
      xfusion-bluesky worker --tiled http://host:8000/api/v1 --prefect

Results: `fetch_fused(client, uid)` (xfusion_bluesky.catalog), or the `fused`
container of the server. Every run leaves a derived run: fused frames and attention
scores, or status "failed" with the reason.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``worker`` verb."""
    parser = subparsers.add_parser(
        "worker",
        help="fuse every finished run of a Tiled server as it arrives",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_tiled_arguments(
        parser,
        api_key_note="; needs read on raw runs and write on the fused container "
        "(default XFUSION_FUSION_API_KEY, else XFUSION_TILED_API_KEY)",
    )
    parser.add_argument(
        "--prefect",
        action="store_true",
        help="submit each finished run to the Prefect fusion deployment instead of "
        "fusing it here (see `xfusion-bluesky deploy`)",
    )
    parser.add_argument(
        "--deployment",
        metavar="FLOW/NAME",
        help="with --prefect: the fusion deployment (default "
        "XFUSION_PREFECT_DEPLOYMENT, else xfusion-fuse-run/xfusion)",
    )
    parser.add_argument(
        "--zmq",
        metavar="HOST:PORT",
        help="listen to a bluesky-0MQ-proxy's out port instead of Tiled's websocket",
    )
    add_method_argument(parser, help="fusion method (default: what each run asks for)")
    add_model_argument(parser)
    add_device_argument(parser)
    add_batch_size_argument(parser)
    add_adapt_arguments(parser)
    add_threads_argument(parser)
    parser.add_argument(
        "--catch-up-s",
        type=_catch_up_s,
        metavar="S",
        help="at start, fuse the pending runs started in the last S seconds; 'all': "
        f"every pending run (default {DEFAULT_CATCH_UP_S}, 7 days)",
    )
    parser.add_argument(
        "--no-catch-up",
        action="store_true",
        help="fuse only runs notified from now on (no catch-up at start, no polls)",
    )
    parser.add_argument(
        "--poll-s",
        type=seconds,
        default=60.0,
        metavar="S",
        help="look for missed runs every S seconds; 0: never (default 60)",
    )
    parser.add_argument(
        "--backup-dir",
        metavar="DIR",
        help="replay the raw runs' backups in DIR at each catch-up (the "
        "acquisition host's $XFUSION_DATA/backup)",
    )
    parser.add_argument(
        "--orphan-after-s",
        type=seconds,
        default=3600.0,
        metavar="S",
        help="mark a requested raw run failed (orphaned) when it has had no stop "
        "document for S seconds and has no backup; 0: never (default 3600)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start the worker and its feed; run until Ctrl-C or SIGTERM."""
    from xfusion_bluesky.callbacks import FusionCallback, FusionWorker
    from xfusion_bluesky.callbacks.feeds import TiledFeed, ZmqFeed, parse_address
    from xfusion_bluesky.catalog.connect import open_catalogs, redact
    from xfusion_bluesky.catalog.lookup import server_address
    from xfusion_bluesky.settings import Settings

    # Shown at default verbosity: one line per run is what an operator watches.
    logging.getLogger("xfusion_bluesky.callbacks.worker").setLevel(
        min(logging.INFO, logging.getLogger().level)
    )
    uri, api_key = server_address(
        args.tiled, args.api_key or Settings.from_env().fusion_api_key
    )
    if args.zmq:
        parse_address(args.zmq)  # a typo fails here, not in a thread
    if args.prefect:
        return _submit_to_prefect(args, uri, api_key)
    worker = FusionWorker(
        uri,
        api_key=api_key,
        mode="thread",
        method=args.method,
        model=args.model,
        device=resolve_device(args.device),
        batch_size=args.batch_size,
        catch_up=not args.no_catch_up,
        since=_since(args.catch_up_s),
        poll_s=None if args.no_catch_up else args.poll_s or None,
        torch_threads=args.threads,
        backup_dir=args.backup_dir,
        orphan_after_s=args.orphan_after_s or None,
        adapt=adapt_options(args),
    )
    stop = threading.Event()
    _on_signals(stop)
    feed: Any
    client: Any = None
    if args.zmq:
        feed = ZmqFeed(args.zmq, FusionCallback(worker)).start()
        source = f"0MQ proxy {args.zmq}"
    else:
        catalogs = open_catalogs(uri, api_key=worker.api_key)
        client = catalogs.root
        feed = TiledFeed(catalogs.raw, worker.submit).start()
        source = "Tiled websocket"
    # The feed is connected first: a run that ends from now on is notified, one
    # that ended before is caught up.
    worker.start()
    print(f"fusion worker on {redact(uri)}, fed by {source}; Ctrl-C stops", flush=True)
    try:
        while not stop.wait(1.0):
            if not worker.is_alive():
                break
    finally:
        feed.close()
        worker.close(timeout=STOP_TIMEOUT_S)
        if client is not None:
            client.context.close()
    if worker.error:
        raise RuntimeError(worker.error)
    return 0


def _submit_to_prefect(args: argparse.Namespace, uri: str, api_key: str | None) -> int:
    """Feed the Prefect fusion deployment until Ctrl-C or SIGTERM."""
    from xfusion_bluesky.callbacks import FusionCallback
    from xfusion_bluesky.callbacks.feeds import TiledFeed, ZmqFeed
    from xfusion_bluesky.catalog.connect import open_catalogs, redact
    from xfusion_bluesky.orchestration.submit import PrefectSubmitter
    from xfusion_bluesky.settings import Settings

    deployment = args.deployment or Settings.from_env().prefect_deployment
    submitter = PrefectSubmitter(
        uri,
        api_key=api_key,
        deployment=deployment,
        method=args.method,
        model=args.model,
    ).start()
    stop = threading.Event()
    _on_signals(stop)
    feed: Any
    catalogs = None
    if args.zmq:
        feed = ZmqFeed(args.zmq, FusionCallback(submitter)).start()
    else:
        catalogs = open_catalogs(uri, api_key=api_key)  # `raw` made if missing
        feed = TiledFeed(catalogs.raw, submitter.submit).start()
    print(
        f"submitting the finished runs of {redact(uri)} to Prefect deployment "
        f"{deployment}; Ctrl-C stops",
        flush=True,
    )
    try:
        while not stop.wait(1.0):
            pass
    finally:
        feed.close()
        submitter.close(timeout=STOP_TIMEOUT_S)
        if catalogs is not None:
            catalogs.root.context.close()
    return 0


def _since(catch_up_s: float | None) -> float | None:
    """Return the worker's ``since`` (epoch s) for a catch-up window in seconds."""
    if catch_up_s is None:
        return None  # the library's window, CATCH_UP_S
    if catch_up_s == float("inf"):
        return 0.0  # every run
    return time.time() - catch_up_s


def _on_signals(stop: threading.Event) -> None:
    """Make Ctrl-C and SIGTERM set ``stop`` (the main loop then closes cleanly)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)
