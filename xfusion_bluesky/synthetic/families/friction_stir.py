"""Friction-stir scene: a textured plate with tracers, stirred by a rotating pin.

Slow: a plate with tungsten tracer particles, seen through its thickness,
travels past a rotating tri-flat pin; material near the pin turns with it, the
angle falling off with radius. This is the paper's slow "case 2" kind of event.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from xfusion_bluesky.synthetic.families.base import XRayScene
from xfusion_bluesky.synthetic.parameters import (
    SPEED,
    XRAY,
    ZOOM,
    ParamValue,
    SceneParameter,
    as_float,
    define_family,
)
from xfusion_bluesky.synthetic.textures import (
    Frame,
    add_spheres,
    fractal_noise,
    sample_wrap,
    texture_shape,
    wrap_pad,
)

__all__ = ["SPEC", "FrictionStirScene"]

#: The family and its parameters.
SPEC = define_family(
    "friction_stir",
    "textured plate with tracers stirred by a rotating pin, travelling",
    "slow",
    speed=SPEED,
    zoom=ZOOM,
    density=SceneParameter(1.0, "tracer particles (1 = ~1.5 % of the area)", 0, 10),
    **XRAY,
)


class FrictionStirScene(XRayScene):
    """Plate with tracers seen through its thickness, stirred by a rotating pin.

    The camera follows the tool: far material travels past at the traverse speed,
    material near the pin also turns with it, the angle falling off with radius.
    """

    family = SPEC.name
    _TOOL = 2.2  # steel pin through the plate: transmission ~0.1

    def __init__(
        self, height: int, width: int, seed: int, values: Mapping[str, ParamValue]
    ) -> None:
        super().__init__(height, width, seed, values)
        s, h, w, rng = self.s, height, width, self.rng(0)
        th, tw = texture_shape(h, w)
        material = 0.9 * (1 + 0.12 * fractal_noise(rng, (th, tw), 2.6, 1.2 * s))
        # Tungsten tracer particles, as used to image the flow in real welds.
        n = rng.poisson(
            0.015 * as_float(values, "density") * th * tw / (np.pi * (2 * s) ** 2)
        )
        mu_tracer = 0.5 / s  # a 2 px radius (zoom 1) tracer adds ~2 at its centre
        for y, x, r in zip(
            rng.uniform(0, th, n),
            rng.uniform(0, tw, n),
            rng.uniform(1.2, 2.8, n) * s,
            strict=True,
        ):
            add_spheres(material, y, x, max(r, 0.7), mu_tracer)
        self.material = wrap_pad(material)
        m, layout = min(h, w), self.rng(5)  # scalars apart from textures
        self.centre = (
            h / 2 + layout.uniform(-0.05, 0.05) * m,
            w / 2 + layout.uniform(-0.1, 0.1) * m,
        )
        # 33 px at zoom 1, but at most 0.3 of a small field so material shows.
        self.r_pin = min(33 * s, 0.3 * m) * layout.uniform(0.85, 1.15)
        self.omega = -2 * np.pi / 400 * layout.choice([-1.0, 1.0])  # rad/frame
        self.v = 0.1 * s  # traverse, px/frame
        self.flat_phase = layout.uniform(0, 2 * np.pi)
        dy = np.arange(h, dtype=np.float32)[:, None] - np.float32(self.centre[0])
        dx = np.arange(w, dtype=np.float32)[None, :] - np.float32(self.centre[1])
        self.dy, self.dx = np.broadcast_arrays(dy, dx)
        self.r = np.hypot(dy, dx)
        self.phi = np.arctan2(dy, dx)
        cy, cx, reach = *self.centre, self.r_pin + 2
        self.pin_box = np.s_[
            max(int(cy - reach), 0) : max(int(cy + reach) + 2, 0),
            max(int(cx - reach), 0) : max(int(cx + reach) + 2, 0),
        ]
        # Stirred fraction of the pin's rotation: 1 at the pin, gone in ~4 shear widths.
        shear = 0.7 * self.r_pin
        self.g = np.exp(-((np.maximum(self.r - self.r_pin, 0) / shear) ** 1.5))

    def attenuation(self, tau: float) -> Frame:
        """Return the stirred, travelling plate and the pin at ``tau``."""
        # The stirred zone winds up as material is sheared: past ~10^4 frames at
        # speed 1 its spiral gets finer than a pixel and aliases.
        angle = np.float32(self.omega * tau) * self.g
        c, s = np.cos(angle), np.sin(angle)
        shift = (self.v * tau) % (self.material.shape[1] - 1)
        qy = self.centre[0] + c * self.dy - s * self.dx
        qx = self.centre[1] + s * self.dy + c * self.dx + np.float32(shift)
        a = sample_wrap(self.material, qy, qx)
        # Tri-flat pin: its outline turns with the tool.
        box = self.pin_box
        turn = self.omega * tau + self.flat_phase
        edge = self.r_pin * (1 - 0.06 * np.cos(3 * (self.phi[box] - turn)))
        cover = np.clip(edge - self.r[box] + 0.5, 0, 1)
        a[box] += cover * (self._TOOL - a[box])
        return a
