"""Hardware as ophyd Devices with Components: UHS and HS cameras, timing generator.

Import a flavour explicitly: :mod:`xfusion_bluesky.devices.sim` (no IOC needed) or
:mod:`xfusion_bluesky.devices.epics` (Channel Access); both share
:mod:`xfusion_bluesky.devices.base`.
"""
