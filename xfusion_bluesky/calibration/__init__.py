"""Calibration from the data: the HS image's geometry and the cameras' latency.

Pure numpy, SciPy and scikit-image: :func:`measure_geometry` measures the HS
image's similarity transform and flips from a static textured target;
:func:`measure_latency` the HS camera's latency relative to the UHS from a moving
one. Plans and ingest call them; nothing here touches devices or Tiled.
"""

from xfusion_bluesky.calibration.latency import MeasuredLatency, measure_latency
from xfusion_bluesky.calibration.registration import MeasuredGeometry, measure_geometry

__all__ = ["MeasuredGeometry", "MeasuredLatency", "measure_geometry", "measure_latency"]
