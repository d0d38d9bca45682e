"""`xfusion-bluesky demo`: the demo (placeholder until the engine lands)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``demo`` verb."""
    parser = subparsers.add_parser(
        "demo", help="run the demo and print where results are"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo."""
    print("demo: nothing to show yet")
    return 0
