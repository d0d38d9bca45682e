"""Live feedback; the fusion issue subscribes its PostRunFusion callback here."""

from bluesky.callbacks.best_effort import BestEffortCallback

bec = BestEffortCallback()
bec.disable_plots()  # bursts are images: Tiled (raw[-1]) is where to look at them
RE.subscribe(bec)
