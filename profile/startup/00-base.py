"""RunEngine, Tiled (embedded or XFUSION_TILED_URL) and devices (XFUSION_BEAMLINE)."""

import logging

import bluesky.plan_stubs as bps  # noqa: F401  (for the user)
import bluesky.plans as bp  # noqa: F401
import numpy as np  # noqa: F401

from xfusion_bluesky.beamline import setup

logging.basicConfig(
    level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
)
logging.getLogger("xfusion_bluesky").setLevel(logging.INFO)

# XFUSION_BEAMLINE=sim (default) or epics, XFUSION_ROI=small (default), full or demo,
# XFUSION_SIM_MISALIGN=SEED for a misaligned simulation (RE(registration_scan()) and
# RE(latency_scan()) then measure it), XFUSION_ADAPT=on to fine-tune the network on each
# burst's own HS frames before the worker fuses it (docs/fusion.md);
# see xfusion_bluesky.settings. bl closes itself when the session ends (exit, end of
# input, Ctrl-C): its worker stops, and runs it had not fused yet are caught up on
# by the next session's worker.
bl = setup()
RE = bl.RE
raw = bl.tiled  # raw runs: raw[-1], raw[uid], raw["1a2b3c"]
