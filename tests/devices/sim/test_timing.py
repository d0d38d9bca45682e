import pytest

from xfusion_bluesky.devices.sim import SimEvent, SimTimingGenerator
from xfusion_bluesky.errors import InvalidInputError


def test_each_pulse_starts_the_next_event_of_the_seed():
    timing = SimTimingGenerator(name="timing", event=SimEvent("natural", seed=10))
    pulses = []
    timing.connect_camera(pulses.append)
    timing.stage()
    timing.trigger()
    timing.trigger()  # the listener was cabled for one pulse only
    assert [p.burst_seed for p in pulses] == [10]
    assert timing.pulse_id.get() == 1
    assert timing.burst_seed.get() == 11
    timing.unstage()
    assert pulses[0].event.family == "natural"


def test_negative_delay_is_refused_before_firing():
    timing = SimTimingGenerator(name="timing")
    pulses = []
    timing.connect_camera(pulses.append)
    timing.c.delay.put(-1e-6)
    with pytest.raises(InvalidInputError, match=r"timing\.c\.delay"):
        timing.trigger()
    assert pulses == []
    assert timing.pulse_id.get() == -1  # no pulse yet


def test_unknown_scene_family_is_refused():
    with pytest.raises(InvalidInputError, match="scene family"):
        SimEvent("no_such_family")
