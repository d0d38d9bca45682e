"""`xfusion-bluesky` entry point: argparse, logging setup, dispatch.

Each verb lives in its own module ``xfusion_bluesky.cli.<verb>`` exposing
``add_parser(subparsers)`` (which sets ``func`` on its parser) and is listed in
``VERBS``. A verb parses, calls the library and prints; options several verbs
share come from :mod:`xfusion_bluesky.cli.options`, and verbs never import each
other (an import-linter contract). A verb's heavy imports happen inside its
``run`` so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from xfusion_bluesky import __version__

#: Verb modules, in the order ``--help`` lists them.
VERBS: tuple[str, ...] = (
    "demo",
    "fuse",
    "show",
    "export",
    "train",
    "evaluate",
    "sim_ioc",
    "serve",
    "worker",
    "deploy",
    "replay",
    "ingest",
    "register",
)


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with one sub-command per verb module."""
    parser = argparse.ArgumentParser(
        prog="xfusion-bluesky",
        description=(
            "Dual-camera x-ray imaging: acquire UHS (LR) + HS (HR) bursts with "
            "Bluesky, store them in Tiled, fuse them with EDVR-STF."
        ),
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more log output (-vv: debug)",
    )
    subparsers = parser.add_subparsers(title="commands", metavar="<command>")
    for verb in VERBS:
        importlib.import_module(f"xfusion_bluesky.cli.{verb}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # httpx logs every request at INFO, the embedded server's with ?api_key=...
    # in the URL: a secret in the log. Its warnings and errors still show.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # the CLI boundary: one clear line, details with -v
        logging.getLogger(__name__).debug("command failed", exc_info=True)
        print(f"xfusion-bluesky: error: {err}", file=sys.stderr)
        return 1
