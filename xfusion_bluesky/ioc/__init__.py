"""The simulated beamline IOC: a separate process; nothing in the package imports it.

Run it with ``xfusion-bluesky sim-ioc`` or ``python -m xfusion_bluesky.ioc``.
"""
