"""Soft-signal stand-ins for an areaDetector ``cam1:`` and NDFileHDF5 ``HDF1:``.

Cameras without PVs (the simulation, and cameras run by their vendor software)
keep their settings in these, under areaDetector's names, so the plans drive
every flavour through the same component names.
"""

from __future__ import annotations

from ophyd import Component as Cpt
from ophyd import Device, Signal

from xfusion_bluesky.devices.base import IDLE

__all__ = ["SoftCam", "SoftHDF5Plugin"]


class SoftCam(Device):
    """Soft-signal stand-in for an areaDetector ``cam1:`` (ADBase names)."""

    acquire = Cpt(Signal, value=0, kind="omitted")
    acquire_time = Cpt(Signal, value=1e-7, kind="config")
    acquire_period = Cpt(Signal, value=5e-7, kind="config")
    num_images = Cpt(Signal, value=128, kind="config")
    image_mode = Cpt(Signal, value="Multiple", kind="omitted")
    trigger_mode = Cpt(Signal, value="Internal", kind="config")
    min_x = Cpt(Signal, value=0, kind="config")
    min_y = Cpt(Signal, value=0, kind="config")
    size_x = Cpt(Signal, value=1, kind="config")
    size_y = Cpt(Signal, value=1, kind="config")
    max_size_x = Cpt(Signal, value=1, kind="omitted")
    max_size_y = Cpt(Signal, value=1, kind="omitted")
    manufacturer = Cpt(Signal, value="", kind="config")
    model = Cpt(Signal, value="", kind="config")
    data_type = Cpt(Signal, value="UInt16", kind="omitted")
    array_counter = Cpt(Signal, value=0, kind="omitted")
    detector_state = Cpt(Signal, value=IDLE, kind="omitted")


class SoftHDF5Plugin(Device):
    """Soft-signal stand-in for an NDFileHDF5 plugin ``HDF1:``."""

    file_path = Cpt(Signal, value="", kind="omitted")
    file_name = Cpt(Signal, value="", kind="omitted")
    file_template = Cpt(Signal, value="%s%s.h5", kind="omitted")
    full_file_name = Cpt(Signal, value="", kind="omitted")
    capture = Cpt(Signal, value=0, kind="omitted")
    num_captured = Cpt(Signal, value=0, kind="omitted")
