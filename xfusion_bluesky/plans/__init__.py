"""What the beamline does: stubs, metadata, dual-camera and calibration scans."""

from xfusion_bluesky.plans.calibration import registration_scan
from xfusion_bluesky.plans.dual_camera import dual_camera_scan
from xfusion_bluesky.plans.latency import latency_scan

__all__ = ["dual_camera_scan", "latency_scan", "registration_scan"]
