"""Plans: `RE(dual_camera_scan())` records one burst of both cameras."""

from xfusion_bluesky.plans.calibration import registration_scan  # noqa: F401
from xfusion_bluesky.plans.dual_camera import dual_camera_scan  # noqa: F401
from xfusion_bluesky.plans.latency import latency_scan  # noqa: F401

print(
    f"xfusion-bluesky {bl.mode} beamline: RE(dual_camera_scan()) records a burst; "
    f"raw runs in Tiled at {bl.connection.uri.split('?')[0]} (raw[-1])"
)
