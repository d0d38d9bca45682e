"""Raw runs written straight from arrays, for the fault tests of the fusion pipeline.

The writer lives in ``tests/system/conftest.py`` (its ``write_raw_run`` fixture);
a conftest's fixtures belong to its own folder, so this module loads that file by
path and hands its plain functions to the fault tests here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def _system_helpers() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "system" / "conftest.py"
    spec = importlib.util.spec_from_file_location("fault_system_helpers", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_helpers = _system_helpers()
#: ``make_raw_run_writer(raw, hdf5_dir) -> write(**options) -> uid``.
make_raw_run_writer = _helpers.make_raw_run_writer
#: ``scene_burst() -> dict`` of lr, hr, lr_times, hr_times (a 24-frame burst).
scene_burst = _helpers.scene_burst


def burst_arrays() -> dict:
    """The four arrays ``write`` takes, of one small fast-front burst."""
    burst = scene_burst()
    return {k: burst[k] for k in ("lr", "hr", "lr_times", "hr_times")}
