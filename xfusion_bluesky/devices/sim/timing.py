"""SimTimingGenerator: one trigger, per-camera delays, and the event it starts.

Shaped like the EPICS ``delaygen`` DG645 (channels ``a`` → UHS, ``c`` → HS, each a
``delay`` after T0); ``trigger()`` is the single-shot trigger. In the simulation a
trigger also starts the simulated event: every armed sim camera receives the
pulse and images burst ``pulse_id`` of the event (seed ``scene_seed + pulse_id``).

``target`` says what is in the simulated beam: ``"event"`` (the scene, default),
or a calibration target, ``"static"`` (a textured object held still: what
``registration_scan`` images), ``"moving"`` (that texture drifting: what
``latency_scan`` images) or ``"blank"`` (the open beam). At a beamline an
operator (or a target stage) puts the grid or the moving target in the beam;
the plans move this signal when the timing generator has one, and put it back
afterwards.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import Status

from xfusion_bluesky.devices.base import check_delays
from xfusion_bluesky.devices.sim.event import DEFAULT_FRAME_PERIOD_S, SimEvent
from xfusion_bluesky.synthetic import scene as scene_module

__all__ = ["Pulse", "SimDelayChannel", "SimTimingGenerator"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pulse:
    """One single-shot trigger as the cameras receive it.

    Attributes
    ----------
    trigger_time : float
        POSIX time of T0.
    pulse_id : int
        Pulses fired since the generator was staged (0 first).
    event : SimEvent
        The simulated event this pulse starts.
    burst_seed : int
        Seed of this burst's event (``event.seed + pulse_id``).
    """

    trigger_time: float
    pulse_id: int
    event: SimEvent
    burst_seed: int


class SimDelayChannel(Device):
    """One DG645 delay channel (``ADelayAO``/``AReferenceMO`` in EPICS)."""

    delay = Cpt(Signal, value=0.0, kind="normal")
    reference = Cpt(Signal, value="T0", kind="config")


class SimTimingGenerator(Device):
    """A simulated DG645 whose single-shot trigger starts the simulated event.

    Parameters
    ----------
    *args, **kwargs
        Passed to :class:`ophyd.Device`.
    event : SimEvent, optional
        Initial scene settings (family, seed, frame period); they stay editable
        through the ``scene_*`` signals.
    """

    trigger_source = Cpt(Signal, value="Single shot", kind="config")
    a = Cpt(SimDelayChannel, kind="normal")
    c = Cpt(SimDelayChannel, kind="normal")
    pulse_id = Cpt(Signal, value=-1, kind="normal")
    burst_seed = Cpt(Signal, value=0, kind="normal")
    scene_family = Cpt(Signal, value="", kind="config")
    scene_seed = Cpt(Signal, value=0, kind="config")
    scene_frame_period_s = Cpt(Signal, value=DEFAULT_FRAME_PERIOD_S, kind="config")
    #: What is in the beam: one of ``targets.TARGETS`` ("event", "static", ...).
    target = Cpt(Signal, value="event", kind="config")

    def __init__(self, *args: Any, event: SimEvent | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        event = event or SimEvent()
        self.scene_family.put(event.family)
        self.scene_seed.put(int(event.seed))
        self.scene_frame_period_s.put(float(event.frame_period_s))
        self.target.put(event.target)
        self._scene_params = dict(event.params)
        self._listeners: list[Callable[[Pulse], None]] = []
        self._listeners_lock = threading.Lock()
        self._count = 0

    def event(self) -> SimEvent:
        """Return the simulated event defined by the ``scene_*`` signals."""
        family = self.scene_family.get() or scene_module.DEFAULT_FAMILY
        return SimEvent(
            family=family,
            seed=int(self.scene_seed.get()),
            frame_period_s=float(self.scene_frame_period_s.get()),
            params=self._scene_params,
            target=str(self.target.get() or "event"),
        )

    def connect_camera(self, listener: Callable[[Pulse], None]) -> None:
        """Cable a camera: ``listener(pulse)`` runs on the next trigger, once."""
        with self._listeners_lock:
            self._listeners.append(listener)

    def disconnect_camera(self, listener: Callable[[Pulse], None]) -> None:
        """Uncable a camera armed with :meth:`connect_camera` (no error if absent)."""
        with self._listeners_lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def stage(self) -> list[object]:
        """Restart the pulse count, so burst k of every run images event seed + k."""
        self._count = 0
        return super().stage()

    def trigger(self) -> Status:
        """Fire one single-shot trigger; the status finishes once it is sent."""
        check_delays(**{f"{self.name}.a.delay": self.a.delay.get()})
        check_delays(**{f"{self.name}.c.delay": self.c.delay.get()})
        event = self.event()
        pulse = Pulse(
            trigger_time=time.time(),
            pulse_id=self._count,
            event=event,
            burst_seed=int(event.seed) + self._count,
        )
        self._count += 1
        self.pulse_id.put(pulse.pulse_id)
        self.burst_seed.put(pulse.burst_seed)
        with self._listeners_lock:
            listeners, self._listeners = self._listeners, []
        logger.debug(
            "%s fired pulse %d to %d cameras", self.name, pulse.pulse_id, len(listeners)
        )
        for listener in listeners:
            listener(pulse)
        status = Status(obj=self)
        status.set_finished()
        return status
