"""The beamline's configured devices, used by plans called without device arguments.

``beamline.setup()`` registers its devices here, so ``RE(dual_camera_scan())``
works in the profile; plans never import a device flavour themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["BeamlineDevices", "default_devices", "set_default_devices"]


@dataclass(frozen=True)
class BeamlineDevices:
    """The devices of one beamline: cameras, timing generator, registration."""

    uhs: Any
    hs: Any
    timing: Any
    registration: Any


_current: BeamlineDevices | None = None


def set_default_devices(devices: BeamlineDevices | None) -> None:
    """Make ``devices`` the default of every plan (None clears it)."""
    global _current
    _current = devices


def default_devices(
    uhs: Any = None, hs: Any = None, timing: Any = None, registration: Any = None
) -> BeamlineDevices:
    """Return the given devices, filling the missing ones from the defaults.

    Raises
    ------
    ValueError
        A device is missing and no beamline was set up.
    """
    given = {"uhs": uhs, "hs": hs, "timing": timing, "registration": registration}
    missing = [key for key, value in given.items() if value is None]
    if missing:
        if _current is None:
            raise ValueError(
                f"no {', '.join(missing)} given and no beamline set up; pass the "
                "devices or run xfusion_bluesky.beamline.setup() first"
            )
        for key in missing:
            given[key] = getattr(_current, key)
    return BeamlineDevices(**given)
