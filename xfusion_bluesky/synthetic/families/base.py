"""What every scene renderer shares: seed streams, random events, the x-ray chain.

:class:`Scene` precomputes what a family needs once per call and renders one
instant at a time: ``intensity`` at the scene clock, then scintillator blur and,
when asked, shot noise. :class:`XRayScene` makes that intensity from a map of
attenuation (``mu * thickness``) through phase contrast and the beam profile
(:mod:`xfusion_bluesky.synthetic.imaging`).

Random content comes from seed streams ``[seed, family code, *stream]`` (see
:meth:`Scene.rng`), and events from :func:`poisson_events`, per epoch, so a
frame depends on the seed and the parameters only, never on which instants are
rendered.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
from numpy.typing import NDArray

from xfusion_bluesky.synthetic.imaging import (
    beam_profile,
    phase_contrast,
    scintillator_blur,
    shot_noise,
)
from xfusion_bluesky.synthetic.parameters import ParamValue, as_float
from xfusion_bluesky.synthetic.textures import Frame

__all__ = ["GAS", "Scene", "XRayScene", "poisson_events"]

# Fraction of the detector range reached by the open beam at its centre: headroom
# for the bright phase-contrast fringes, which overshoot the open beam.
_BRIGHT_FIELD = 0.85
GAS = 0.03  # attenuation of gas and windows, so "empty" is never exactly 1
_EPOCH = 16.0  # scene frames per event epoch (see poisson_events)
# Seed-stream codes: fixed per family, so adding a family changes no other scene.
_FAMILY_CODE = MappingProxyType(
    {
        "additive_manufacturing": 1,
        "friction_stir": 2,
        "fast_front": 3,
        "natural": 4,
        "foam": 5,
    }
)


def poisson_events(
    seed: int, stream: tuple[int, ...], rate: float, lo: float, hi: float, n_attr: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Return birth times in ``[lo, hi]`` of a Poisson process and uniform attributes.

    Parameters
    ----------
    seed : int
        Scene seed.
    stream : tuple of int
        Seed stream of this kind of event (family code first).
    rate : float
        Mean births per scene frame.
    lo, hi : float
        Time span in scene frames, both ends included.
    n_attr : int
        Uniform [0, 1) attributes drawn per event.

    Returns
    -------
    births : ndarray, (n,) float64
        Birth times in scene frames.
    attrs : ndarray, (n, n_attr) float64
        The attributes of each event.

    Notes
    -----
    Each epoch of ``_EPOCH`` scene frames draws its events from its own stream, so
    what happens at an instant never depends on which instants are rendered.
    """
    births, attrs = [np.empty(0)], [np.empty((0, n_attr))]
    for k in range(math.floor(lo / _EPOCH), math.floor(hi / _EPOCH) + 1):
        rng = np.random.default_rng([seed, *stream, k + 2**40])
        n = rng.poisson(rate * _EPOCH)
        b = (k + rng.random(n)) * _EPOCH
        u = rng.random((n, n_attr))
        keep = (b >= lo) & (b <= hi)
        births.append(b[keep])
        attrs.append(u[keep])
    return np.concatenate(births), np.concatenate(attrs)


class Scene:
    """Base of the renderers: precomputes per call, renders one instant at a time.

    Parameters
    ----------
    height, width : int
        Frame shape in pixels.
    seed : int
        Scene seed.
    values : Mapping[str, float, str or None]
        Every parameter of the family, checked, defaults filled in.
    """

    family = ""  # the family name; subclasses set it

    def __init__(
        self, height: int, width: int, seed: int, values: Mapping[str, ParamValue]
    ) -> None:
        self.h, self.w, self.seed, self.values = height, width, seed, values
        self.s = as_float(values, "zoom")  # output pixels per design pixel
        self.speed = as_float(values, "speed")
        self.code = _FAMILY_CODE[type(self).family]

    def rng(self, *stream: int) -> np.random.Generator:
        """Return the generator of seed stream ``stream`` of this scene."""
        return np.random.default_rng([self.seed, self.code, *stream])

    def intensity(self, tau: float) -> Frame:
        """Return the noiseless, unblurred intensity at scene clock ``tau``."""
        raise NotImplementedError

    def frame(self, t: float) -> Frame:
        """Return the detector frame at instant ``t`` (scene frames), in [0, 1]."""
        image = scintillator_blur(
            self.intensity(self.speed * t), sigma_px=as_float(self.values, "blur_px")
        )
        photons = as_float(self.values, "photons")
        if photons > 0:
            # Noise is a function of (seed, instant) so that rendering an instant
            # alone gives the same pixels as rendering it within a sequence.
            bits = int(np.float64(t).view(np.uint64))
            image = shot_noise(image, photons=photons, rng=self.rng(99, bits))
        return np.clip(image, 0, 1, out=image)


class XRayScene(Scene):
    """Renders ``attenuation(tau)`` through phase contrast and the beam profile."""

    def __init__(
        self, height: int, width: int, seed: int, values: Mapping[str, ParamValue]
    ) -> None:
        super().__init__(height, width, seed, values)
        strength = as_float(values, "flat_field")
        self.flat = _BRIGHT_FIELD * beam_profile(
            height, width, strength=strength, seed=seed
        )

    def attenuation(self, tau: float) -> Frame:
        """Return ``mu * thickness`` along the beam at scene clock ``tau``."""
        raise NotImplementedError

    def intensity(self, tau: float) -> Frame:
        """Return the beam profile times the phase-contrast transmission."""
        transmission = phase_contrast(
            self.attenuation(tau), strength=as_float(self.values, "fringe")
        )
        return self.flat * transmission
