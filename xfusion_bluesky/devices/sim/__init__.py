"""Simulated UHS and HS cameras and timing generator imaging one synthetic event."""

from xfusion_bluesky.devices.sim.camera import SimHSCamera, SimUHSCamera
from xfusion_bluesky.devices.sim.event import HSMount, SimEvent
from xfusion_bluesky.devices.sim.timing import SimTimingGenerator

__all__ = ["HSMount", "SimEvent", "SimHSCamera", "SimTimingGenerator", "SimUHSCamera"]
