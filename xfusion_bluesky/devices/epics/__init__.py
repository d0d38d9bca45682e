"""EPICS UHS and HS cameras (areaDetector cam + NDFileHDF5) and the DG645 timing."""

from xfusion_bluesky.devices.epics.camera import HSCamera, UHSCamera
from xfusion_bluesky.devices.epics.timing import DelayChannel, TimingGenerator

__all__ = ["DelayChannel", "HSCamera", "TimingGenerator", "UHSCamera"]
