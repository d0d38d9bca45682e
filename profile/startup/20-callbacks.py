"""Live feedback, and automatic fusion of every finished run (XFUSION_FUSION)."""

from bluesky.callbacks.best_effort import BestEffortCallback

from xfusion_bluesky.catalog import fetch_fused  # noqa: F401  (for the user)
from xfusion_bluesky.settings import Settings

bec = BestEffortCallback()
bec.disable_plots()  # bursts are images: Tiled (raw[-1]) is where to look at them
RE.subscribe(bec)

# XFUSION_FUSION=process (default): a worker process fuses each run after its stop
# document and writes a derived run to Tiled (fetch_fused(raw, uid, wait=120));
# `thread` fuses in this process (a laptop), `prefect` submits each run to the
# facility's Prefect deployment (docs/facility.md), `off` not at all.
_fusion = Settings.from_env().fusion
fusion_worker = bl.start_fusion(_fusion) if _fusion != "off" else None
