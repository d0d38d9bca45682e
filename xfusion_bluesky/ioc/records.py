"""pvproperty helpers shared by the IOC's groups: setpoint/readback pairs, enums.

areaDetector names a setting ``Name`` and its readback ``Name_RBV``; a put to the
setpoint here copies the value to the readback and tells the group, as a driver
that accepted the value would.
"""

from __future__ import annotations

from typing import Any

from caproto import ChannelType
from caproto.server import PVGroup, pvproperty

__all__ = ["ACQUIRE", "DETECTOR_STATES", "readback", "setting", "text"]

ACQUIRE = ["Done", "Acquire"]
DETECTOR_STATES = [
    "Idle",
    "Acquire",
    "Readout",
    "Correct",
    "Saving",
    "Aborting",
    "Error",
    "Waiting",
    "Initializing",
    "Disconnected",
    "Aborted",
]
_TEXT = {"dtype": ChannelType.CHAR, "max_length": 256, "string_encoding": "latin-1"}


def text(value: str = "") -> dict[str, Any]:
    """Return pvproperty keywords for an areaDetector text PV (a CHAR waveform)."""
    return {"value": value, **_TEXT}


async def _mirror(group: PVGroup, instance: Any, value: Any) -> Any:
    """Copy an accepted setpoint to its ``_RBV`` and notify the group."""
    readback_pv = group.pvdb.get(f"{instance.pvname}_RBV")
    if readback_pv is not None:
        await readback_pv.write(value)
    hook = getattr(group, "setting_changed", None)
    if hook is not None:
        await hook(instance.pvname.removeprefix(group.prefix), value)
    return value


def setting(name: str, value: Any, *, doc: str = "", **kwargs: Any) -> pvproperty:
    """Return a writable PV ``name`` whose accepted value goes to ``name_RBV``."""
    return pvproperty(name=name, value=value, put=_mirror, doc=doc, **kwargs)


def readback(name: str, value: Any, *, doc: str = "", **kwargs: Any) -> pvproperty:
    """Return the read-only ``name_RBV`` of :func:`setting` ``name``."""
    return pvproperty(
        name=f"{name}_RBV", value=value, read_only=True, doc=doc, **kwargs
    )
