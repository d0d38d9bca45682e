"""The beamline's devices, by their data-key names."""

uhs, hs, timing, registration = bl.uhs, bl.hs, bl.timing, bl.registration
