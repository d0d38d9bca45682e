"""Recordings made before, as raw runs: ``ingest_recordings`` and the registration file.

A UHS + HS pair of files (multi-page TIFF, HDF5, Phantom ``.cine``) becomes one
raw run in the format ``dual_camera_scan`` writes, referencing the files (TIFF
and ``.cine`` through an HDF5 conversion beside them), with the registration
read from a JSON file that :func:`measure_registration` makes from a recording
pair of a static target. The worker fuses it like any other run.
"""

from xfusion_bluesky.ingest.recordings import CameraTrack, RecordingPair, check_pair
from xfusion_bluesky.ingest.registration_file import (
    check_fits,
    measure_registration,
    read_registration,
    registration_block,
    write_registration,
)
from xfusion_bluesky.ingest.run import check_ingest, ingest_recordings

__all__ = [
    "CameraTrack",
    "RecordingPair",
    "check_fits",
    "check_ingest",
    "check_pair",
    "ingest_recordings",
    "measure_registration",
    "read_registration",
    "registration_block",
    "write_registration",
]
