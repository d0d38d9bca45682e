"""A raw run written from arrays by the system tests' writer."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def _system_helpers():
    # The writer lives in tests/system/conftest.py; a conftest's fixtures belong
    # to its own folder, so the module is loaded by path.
    path = Path(__file__).resolve().parents[1] / "system" / "conftest.py"
    spec = importlib.util.spec_from_file_location("pipeline_system_helpers", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_helpers = _system_helpers()


@pytest.fixture(scope="module")
def two_burst_run(tiled, hdf5_dir):
    """Uid of a raw run of two 24-frame bursts (LR 16×24, HR 64×96); read-only."""
    burst = _helpers.scene_burst()
    arrays = {k: burst[k] for k in ("lr", "hr", "lr_times", "hr_times")}
    return _helpers.make_raw_run_writer(tiled.raw, hdf5_dir)(**arrays, num_bursts=2)
