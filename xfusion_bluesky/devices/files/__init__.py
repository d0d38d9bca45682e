"""Cameras without an EPICS driver: their vendor software writes a file per burst.

:mod:`~xfusion_bluesky.devices.files.formats` opens recordings (multi-page TIFF,
HDF5, Phantom .cine); :mod:`~xfusion_bluesky.devices.files.watcher` waits for a new
file; :mod:`~xfusion_bluesky.devices.files.camera` is the ophyd flavour
(:class:`FileUHSCamera`, :class:`FileHSCamera`) that plans drive like the others.
"""

from xfusion_bluesky.devices.files.camera import FileHSCamera, FileUHSCamera
from xfusion_bluesky.devices.files.formats import Recording, open_recording

__all__ = ["FileHSCamera", "FileUHSCamera", "Recording", "open_recording"]
