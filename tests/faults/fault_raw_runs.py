"""Raw runs written straight from arrays, for the fault tests of the fusion pipeline.

The writer lives in ``tests/system/conftest.py`` (its ``write_raw_run`` fixture),
reached through ``tests/system_helpers.py``.
"""

from __future__ import annotations

from system_helpers import make_raw_run_writer, scene_burst

__all__ = ["burst_arrays", "make_raw_run_writer", "scene_burst"]


def burst_arrays() -> dict:
    """The four arrays ``write`` takes, of one small fast-front burst."""
    burst = scene_burst()
    return {k: burst[k] for k in ("lr", "hr", "lr_times", "hr_times")}
