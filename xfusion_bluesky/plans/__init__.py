"""What the beamline does: stubs, metadata, dual-camera and calibration scans."""

from xfusion_bluesky.plans.calibration import registration_scan
from xfusion_bluesky.plans.dual_camera import dual_camera_scan

__all__ = ["dual_camera_scan", "registration_scan"]
