"""Simulated UHS and HS cameras and timing generator imaging one synthetic event."""

from xfusion_bluesky.devices.sim.camera import SimHSCamera, SimUHSCamera
from xfusion_bluesky.devices.sim.event import SimEvent
from xfusion_bluesky.devices.sim.mount import HSMount, misalign, random_mount
from xfusion_bluesky.devices.sim.timing import SimTimingGenerator

__all__ = [
    "HSMount",
    "SimEvent",
    "SimHSCamera",
    "SimTimingGenerator",
    "SimUHSCamera",
    "misalign",
    "random_mount",
]
