"""`xfusion-bluesky worker`: a standalone fusion worker for another host (or GPU).

It connects to the Tiled server by URL, fuses every fusion-requested run that has
no finished derived run yet, then waits for new runs: told by Tiled's websocket
(default) or by bluesky's 0MQ proxy (--zmq). It is itself the separate
process, so it fuses in a thread of its own; Ctrl-C or SIGTERM stops it after
the current run (a run cut short is fused again by the next worker).
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from types import FrameType
from typing import Any

from xfusion_bluesky.cli.fuse import add_tiled_arguments

#: Seconds the worker gets to finish its current run after Ctrl-C / SIGTERM.
STOP_TIMEOUT_S = 10.0

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
  xfusion-bluesky worker --tiled URL --device cuda:0 &
  xfusion-bluesky worker --tiled URL --device cuda:1 &

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
        parser, api_key_note="; needs read on raw runs and write on the fused container"
    )
    parser.add_argument(
        "--zmq",
        metavar="HOST:PORT",
        help="listen to a bluesky-0MQ-proxy's out port instead of Tiled's websocket",
    )
    parser.add_argument(
        "--method",
        help="edvr_stf, edvr, bicubic, ... (default: what each run asks for)",
    )
    parser.add_argument("--model", metavar="PATH", help="checkpoint (default shipped)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--batch-size", type=int, help="windows per forward pass")
    parser.add_argument("--threads", type=int, help="torch threads (default all)")
    parser.add_argument(
        "--lookback-hours",
        type=float,
        default=24 * 7,
        help="catch up on runs started this far back (default 168; 0: all)",
    )
    parser.add_argument(
        "--no-catch-up",
        action="store_true",
        help="fuse only runs notified from now on (no catch-up at start, no polls)",
    )
    parser.add_argument(
        "--poll-s",
        type=float,
        default=60.0,
        help="look for missed runs this often (default 60 s; 0: never)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start the worker and its feed; run until Ctrl-C or SIGTERM."""
    from xfusion_bluesky.callbacks import FusionCallback, FusionWorker
    from xfusion_bluesky.callbacks.feeds import TiledFeed, ZmqFeed, parse_address
    from xfusion_bluesky.catalog.connect import open_catalogs, redact
    from xfusion_bluesky.settings import Settings

    settings = Settings.from_env()
    uri = args.tiled or settings.tiled_url
    if not uri:
        raise ValueError("no Tiled server: pass --tiled URL or set XFUSION_TILED_URL")
    if args.zmq:
        parse_address(args.zmq)  # a typo fails here, not in a thread
    since = time.time() - args.lookback_hours * 3600.0 if args.lookback_hours else 0
    worker = FusionWorker(
        uri,
        api_key=args.api_key or settings.tiled_api_key,
        mode="thread",
        method=args.method,
        model=args.model,
        device=args.device,
        batch_size=args.batch_size,
        catch_up=not args.no_catch_up,
        since=since,
        poll_s=None if args.no_catch_up else args.poll_s or None,
        torch_threads=args.threads,
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


def _on_signals(stop: threading.Event) -> None:
    """Make Ctrl-C and SIGTERM set ``stop`` (the main loop then closes cleanly)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)
