"""Tiled: raw runs in, derived runs out.

``from xfusion_bluesky.catalog import fetch_fused, find_derived`` is the notebook
entry point: the fused video and attention scores of a raw run in one call.
"""

from xfusion_bluesky.catalog.broker import open_broker
from xfusion_bluesky.catalog.queries import (
    FusedRun,
    failed_runs_query,
    fetch_fused,
    find_derived,
)

__all__ = [
    "FusedRun",
    "failed_runs_query",
    "fetch_fused",
    "find_derived",
    "open_broker",
]
