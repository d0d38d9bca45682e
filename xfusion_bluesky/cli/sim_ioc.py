"""`xfusion-bluesky sim-ioc`: serve the simulated beamline over Channel Access."""

from __future__ import annotations

import argparse

from xfusion_bluesky.ioc.options import add_ioc_arguments


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``sim-ioc`` verb."""
    parser = subparsers.add_parser(
        "sim-ioc",
        help="run the simulated beamline IOC (Channel Access, 127.0.0.1)",
        description=(
            "Serve both cameras (areaDetector cam + HDF5 plugin) and the DG645 "
            "timing generator of a simulated beamline over Channel Access. "
            "Connect with XFUSION_BEAMLINE=epics and the same prefix; clients "
            "need EPICS_CA_ADDR_LIST=127.0.0.1 (and the port, if not 5064)."
        ),
    )
    add_ioc_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the IOC until interrupted; say so, in one line, once it serves."""
    from xfusion_bluesky.ioc.__main__ import main

    return main(args=args, on_ready=lambda line: print(line, flush=True))
