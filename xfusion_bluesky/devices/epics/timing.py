"""TimingGenerator: the delay generator's PVs (EPICS ``delaygen`` module, DG645).

Channel A's rising edge triggers the UHS, channel C's the HS; each ``delay`` is
after T0. ``trigger()`` writes ``TriggerDelayBO`` (the DG645 ``*TRG`` single-shot
trigger) with ``TriggerSourceMO`` staged to "Single shot".
"""

from __future__ import annotations

from typing import Any

from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal
from ophyd.status import StatusBase

from xfusion_bluesky.devices.base import check_delays

__all__ = ["DelayChannel", "TimingGenerator"]


class DelayChannel(Device):
    """One delay channel: ``<X>DelayAO``/``<X>DelayAI``, ``<X>ReferenceMO``/``MI``."""

    delay = Cpt(EpicsSignal, "DelayAI", write_pv="DelayAO", kind="normal")
    reference = Cpt(
        EpicsSignal, "ReferenceMI", write_pv="ReferenceMO", string=True, kind="config"
    )


class TimingGenerator(Device):
    """Stanford Research DG645 through the ``delaygen`` IOC (``drvDG645.db``)."""

    trigger_source = Cpt(
        EpicsSignal,
        "TriggerSourceMI",
        write_pv="TriggerSourceMO",
        string=True,
        kind="config",
    )
    fire_trigger = Cpt(EpicsSignal, "TriggerDelayBO", put_complete=True, kind="omitted")
    a = Cpt(DelayChannel, "A", kind="normal")
    c = Cpt(DelayChannel, "C", kind="normal")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.stage_sigs["trigger_source"] = "Single shot"

    def trigger(self) -> StatusBase:
        """Fire one single-shot trigger; the status finishes when the IOC has fired.

        Raises
        ------
        InvalidInputError
            A channel delay is negative.
        """
        check_delays(
            **{
                f"{self.name}.a.delay": self.a.delay.get(),
                f"{self.name}.c.delay": self.c.delay.get(),
            }
        )
        return self.fire_trigger.set(1)
