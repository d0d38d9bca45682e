"""Calibration targets of the simulation: a still textured object and a moving one.

A beamline registers its cameras on a grid or a textured object held still in the
beam, and times them on something that moves. The simulation's equivalents, on
the fused grid of the UHS field, in [0, 1]:

- ``"static"``: a seeded periodic 1/f texture (structure at every scale from the
  HS pixel to the field), the same at every instant;
- ``"moving"``: that texture translated at :data:`MOVING_VELOCITY_PX` grid pixels
  per scene frame, exactly (a phase ramp on its spectrum: no interpolation blur);
- ``"blank"``: nothing in the beam (a flat open beam): what a calibration sees
  when the target was forgotten, and must refuse.

``"event"`` (the scene itself) is the default of
:attr:`~xfusion_bluesky.devices.sim.event.SimEvent.target`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from xfusion_bluesky.synthetic.textures import fractal_noise

__all__ = ["MOVING_VELOCITY_PX", "TARGETS", "render_target"]

#: What the simulated beam can hold.
TARGETS = ("event", "static", "moving", "blank")
#: Drift ``(y, x)`` of the moving target, in fused-grid pixels per scene frame:
#: 2 px (1/2 UHS pixel) per frame, slow enough to interpolate between UHS frames,
#: fast enough that a tenth of a frame shows above the UHS noise (at 1 px the
#: frame-to-frame change was too weak to time, at 3 px the interpolation errs).
MOVING_VELOCITY_PX = (1.2, 1.6)
#: Texture: 1/f amplitude spectrum, low-passed at this many grid pixels.
_BETA, _SMOOTH_PX = 2.0, 1.0
#: Mean and contrast (std) of the target's transmission.
_MEAN, _CONTRAST = 0.5, 0.15


def render_target(
    target: str,
    times: NDArray[np.floating],
    field_shape: tuple[int, int],
    *,
    seed: int,
) -> NDArray[np.float32]:
    """Render a calibration target at ``times`` (scene frames), float32 ``(t, H, W)``.

    Parameters
    ----------
    target : {"static", "moving", "blank"}
        Which target.
    times : ndarray, (t,)
        Instants in scene frames.
    field_shape : (int, int)
        The field on the fused grid.
    seed : int
        The texture's seed (the scene's: one object, whatever the burst).

    Raises
    ------
    ValueError
        Unknown ``target``.
    """
    if target not in TARGETS[1:]:
        raise ValueError(f"target must be one of {TARGETS[1:]}; got {target!r}")
    height, width = (int(v) for v in field_shape)
    instants = np.asarray(times, dtype=np.float64).reshape(-1)
    if target == "blank":
        return np.full((len(instants), height, width), _MEAN, dtype=np.float32)
    rng = np.random.default_rng([int(seed), 0x7A26])
    texture = fractal_noise(rng, (height, width), _BETA, _SMOOTH_PX)
    if target == "static":
        frame = np.clip(_MEAN + _CONTRAST * texture, 0.0, 1.0).astype(np.float32)
        return np.repeat(frame[None], len(instants), axis=0)
    spectrum = np.fft.rfft2(texture)
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    vy, vx = MOVING_VELOCITY_PX
    out = np.empty((len(instants), height, width), dtype=np.float32)
    for i, t in enumerate(instants):
        ramp = np.exp(-2j * np.pi * (fy * vy * t + fx * vx * t))
        moved = np.fft.irfft2(spectrum * ramp, s=(height, width))
        out[i] = np.clip(_MEAN + _CONTRAST * moved, 0.0, 1.0)
    return out
