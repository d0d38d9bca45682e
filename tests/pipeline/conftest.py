"""A raw run written from arrays by the system tests' writer."""

from __future__ import annotations

import pytest
from system_helpers import make_raw_run_writer, scene_burst


@pytest.fixture(scope="module")
def two_burst_run(tiled, hdf5_dir):
    """Uid of a raw run of two 24-frame bursts (LR 16×24, HR 64×96); read-only."""
    burst = scene_burst()
    arrays = {k: burst[k] for k in ("lr", "hr", "lr_times", "hr_times")}
    return make_raw_run_writer(tiled.raw, hdf5_dir)(**arrays, num_bursts=2)
