"""RunEngine, Tiled (embedded or XFUSION_TILED_URL) and devices (XFUSION_BEAMLINE)."""

import atexit
import logging

import bluesky.plan_stubs as bps  # noqa: F401  (for the user)
import bluesky.plans as bp  # noqa: F401
import numpy as np  # noqa: F401

from xfusion_bluesky.beamline import setup

logging.basicConfig(
    level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
)
logging.getLogger("xfusion_bluesky").setLevel(logging.INFO)

bl = setup()  # XFUSION_BEAMLINE=sim (default) or epics; see xfusion_bluesky.settings
atexit.register(bl.close)
RE = bl.RE
raw = bl.tiled  # raw runs: raw[-1], raw[uid], raw["1a2b3c"]
