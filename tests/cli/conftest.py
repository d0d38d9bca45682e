"""A tiny raw run in the session's Tiled, for the verbs that read one back."""

import pytest


@pytest.fixture
def raw_uid(RE, sim_devices):
    """One burst of the tiny sim beamline (UHS 16×24, HS 64×96, HR every 16)."""
    from xfusion_bluesky.plans.dual_camera import dual_camera_scan

    (uid,) = RE(dual_camera_scan())
    return uid
