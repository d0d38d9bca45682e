import numpy as np
import pytest


@pytest.fixture
def recorded(RE, sim_devices):
    """The bursts each camera produced, per event, as the RunEngine emitted them."""
    bursts = {"uhs": [], "hs": []}

    def grab(name, doc):
        for key in bursts:
            bursts[key].append(np.copy(getattr(sim_devices, key).last_frames))

    RE.subscribe(grab, "event")
    return bursts
