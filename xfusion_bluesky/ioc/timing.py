"""caproto PVGroup for the timing source, and the simulated event it starts.

``<P>DG1:`` mimics the EPICS ``delaygen`` DG645 records the ophyd
``TimingGenerator`` uses: ``TriggerSourceMO``/``MI``, ``TriggerDelayBO`` (the
single-shot ``*TRG``), and per channel ``<X>DelayAO``/``AI`` and
``<X>ReferenceMO``/``MI``. ``<P>SIM:`` holds what only a simulation has: the scene
family, seed and frame period of the event, and where the HS is mounted.
"""

from __future__ import annotations

import logging
from typing import Any

from caproto import ChannelType
from caproto.server import PVGroup, pvproperty

from xfusion_bluesky.devices.sim.event import DEFAULT_FRAME_PERIOD_S
from xfusion_bluesky.ioc.records import text

__all__ = ["DG645Group", "SimEventGroup"]

logger = logging.getLogger(__name__)

_SOURCES = [
    "Internal",
    "Ext rising edge",
    "Ext falling edge",
    "SS ext rise edge",
    "SS ext fall edge",
    "Single shot",
    "Line",
]
_REFERENCES = ["T0", "A", "B", "C", "D", "E", "F", "G", "H"]


def _delay_pair(channel: str) -> tuple[pvproperty, pvproperty]:
    """Return ``<X>DelayAO`` (setpoint, s after T0) and ``<X>DelayAI`` (readback)."""

    async def mirror(group: PVGroup, instance: Any, value: Any) -> Any:
        await group.pvdb[instance.pvname[:-2] + "AI"].write(value)
        return value

    return (
        pvproperty(name=f"{channel}DelayAO", value=0.0, put=mirror, precision=12),
        pvproperty(name=f"{channel}DelayAI", value=0.0, read_only=True, precision=12),
    )


def _reference_pair(channel: str) -> tuple[pvproperty, pvproperty]:
    """Return ``<X>ReferenceMO`` / ``<X>ReferenceMI`` (the channel's time origin)."""

    async def mirror(group: PVGroup, instance: Any, value: Any) -> Any:
        await group.pvdb[instance.pvname[:-2] + "MI"].write(value)
        return value

    kwargs = {"value": "T0", "dtype": ChannelType.ENUM, "enum_strings": _REFERENCES}
    return (
        pvproperty(name=f"{channel}ReferenceMO", put=mirror, **kwargs),
        pvproperty(name=f"{channel}ReferenceMI", read_only=True, **kwargs),
    )


class DG645Group(PVGroup):
    """A DG645 delay generator: channel A triggers the UHS, channel C the HS."""

    trigger_source = pvproperty(
        name="TriggerSourceMO", value="Internal", dtype=ChannelType.ENUM,
        enum_strings=_SOURCES, doc="Single shot: TriggerDelayBO fires once",
    )  # fmt: skip
    trigger_source_rbv = pvproperty(
        name="TriggerSourceMI", value="Internal", dtype=ChannelType.ENUM,
        enum_strings=_SOURCES, read_only=True,
    )  # fmt: skip
    fire = pvproperty(name="TriggerDelayBO", value=0, doc="Write 1: one trigger (*TRG)")
    a_delay, a_delay_rbv = _delay_pair("A")
    a_reference, a_reference_rbv = _reference_pair("A")
    c_delay, c_delay_rbv = _delay_pair("C")
    c_reference, c_reference_rbv = _reference_pair("C")
    pulse_count = pvproperty(name="PulseCount_RBV", value=0, read_only=True)

    @trigger_source.putter  # type: ignore[no-redef]
    async def trigger_source(self, instance: Any, value: Any) -> Any:
        """Accept a trigger source (MO) and show it in the readback (MI)."""
        await self.trigger_source_rbv.write(value)
        return value

    @fire.putter  # type: ignore[no-redef]
    async def fire(self, instance: Any, value: Any) -> Any:
        """Fire one trigger to every armed camera on a write of 1 (``*TRG``)."""
        if int(value) == 1:
            pulse_id = int(self.pulse_count.value)
            await self.pulse_count.write(pulse_id + 1)
            self.parent.fire(
                pulse_id=pulse_id,
                uhs_delay_s=float(self.a_delay.value),
                hs_delay_s=float(self.c_delay.value),
            )
        return 0


class SimEventGroup(PVGroup):
    """The simulated event (scene) and the true HS mounting; simulation only."""

    scene_family = pvproperty(name="SceneFamily", **text(""))
    scene_seed = pvproperty(name="SceneSeed", value=0, doc="Burst k images seed + k")
    frame_period = pvproperty(
        name="SceneFramePeriod", value=DEFAULT_FRAME_PERIOD_S, doc="s per scene frame"
    )
    mount_offset_y = pvproperty(name="HSMountOffsetY", value=0, doc="HR px")
    mount_offset_x = pvproperty(name="HSMountOffsetX", value=0, doc="HR px")
    mount_flip_y = pvproperty(name="HSMountFlipY", value=0)
    mount_flip_x = pvproperty(name="HSMountFlipX", value=0)
