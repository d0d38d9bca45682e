"""Command-line options of the sim IOC, importable without caproto (for the CLI)."""

from __future__ import annotations

import argparse

__all__ = ["DEFAULT_PREFIX", "add_ioc_arguments"]

DEFAULT_PREFIX = "XF:XFUSION:"


def add_ioc_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the IOC's options (prefix, interfaces, port, scene, seed) to ``parser``."""
    parser.add_argument(
        "--prefix", default=DEFAULT_PREFIX, help=f"PV prefix (default {DEFAULT_PREFIX})"
    )
    parser.add_argument(
        "--interfaces",
        nargs="+",
        default=["127.0.0.1"],
        help="addresses to serve Channel Access on (default: loopback only)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="CA server port (default EPICS_CA_SERVER_PORT, else 5064)",
    )
    parser.add_argument(
        "--scene", default="", help="scene family of the simulated event"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the event (burst k: seed + k)"
    )
    parser.add_argument("--list-pvs", action="store_true", help="log every PV name")
    return parser
