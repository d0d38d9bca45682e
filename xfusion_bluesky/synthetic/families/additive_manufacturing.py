"""Additive-manufacturing scene: laser powder-bed fusion seen side-on.

A plate under a powder layer; the laser scans along +x, once per pass across the
field (a new layer each pass), with a melt pool and an oscillating keyhole behind
it, leaving a solidified bead. Pores pinch off the keyhole tip and stay where they
froze; spatter droplets fly from the keyhole mouth, blurred over the exposure.
This is the paper's fast "case 1" kind of event.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from xfusion_bluesky.synthetic.families.base import GAS, XRayScene, poisson_events
from xfusion_bluesky.synthetic.parameters import (
    SPEED,
    XRAY,
    ZOOM,
    ParamValue,
    SceneParameter,
    as_float,
    define_family,
)
from xfusion_bluesky.synthetic.textures import Frame, add_spheres, fractal_noise

__all__ = ["SPEC", "AdditiveManufacturingScene"]

#: The family and its parameters.
SPEC = define_family(
    "additive_manufacturing",
    "laser powder-bed fusion: keyhole, melt pool, pores, spatter",
    "fast",
    speed=SPEED,
    zoom=ZOOM,
    density=SceneParameter(
        1.0, "spatter and pore rate (1 = ~0.6 spatter/frame)", 0, 10
    ),
    exposure=SceneParameter(
        0.5, "exposure as a fraction of the frame period (motion blur)", 0, 1
    ),
    **XRAY,
)


class AdditiveManufacturingScene(XRayScene):
    """Side view of laser powder-bed fusion; the laser scans along +x."""

    family = SPEC.name
    _PLATE = 1.0  # attenuation through the plate: transmission ~0.37
    _PLATE_PX = 16.0  # plate thickness along the beam, px at zoom 1: sets mu of metal

    def __init__(
        self, height: int, width: int, seed: int, values: Mapping[str, ParamValue]
    ) -> None:
        super().__init__(height, width, seed, values)
        s, h, w, rng = self.s, height, width, self.rng(0)
        self.mu = self._PLATE / (self._PLATE_PX * s)
        self.surface = h * rng.uniform(0.45, 0.55)
        self.powder_px = 9 * s
        self.v_scan = 1.0 * s  # px/frame: ~10 um per frame at 2 um pixels
        self.margin = 40 * s
        self.period = (w + 2 * self.margin) / self.v_scan
        self.phase = rng.uniform(0.15, 0.6) * self.period
        yy = np.arange(h, dtype=np.float32)[:, None]
        plate = self._PLATE * (1 + 0.07 * fractal_noise(rng, (h, w), 2.4, 1.5 * s))
        below = np.clip(yy + 0.5 - self.surface, 0, 1)  # anti-aliased surface
        self.static = (GAS + below * (plate - GAS)).astype(np.float32)
        top = max(int(self.surface - 2.5 * self.powder_px) - 2, 0)
        self.band = slice(top, min(math.ceil(self.surface) + 1, h))
        self.band_y = yy[self.band]
        self.band_air = 1 - below[self.band]
        self.cols = np.arange(w, dtype=np.float32)
        self.powder = self._powder(rng)
        self.bead_h = self.powder_px * (
            0.7 + 0.1 * fractal_noise(rng, (1, w), 1.5, 2 * s)[0]
        )
        # Keyhole depth fluctuates at a few incommensurate frequencies (cycles/frame).
        layout = self.rng(5)  # scalars apart from textures: size-independent
        self.kh_freq = layout.uniform([0.03, 0.08, 0.17], [0.06, 0.13, 0.25])
        self.kh_phase = layout.uniform(0, 2 * np.pi, size=5)
        self.kh_depth = 40 * s * layout.uniform(0.8, 1.2)
        self.rate = 0.6 * as_float(values, "density")
        self.half_exposure = 0.5 * self.speed * as_float(values, "exposure")

    def _powder(self, rng: np.random.Generator) -> Frame:
        s, pw, w = self.s, self.powder_px, self.w
        y = self.band_y
        # Grains behind and in front of the focal plane blur into a soft fill.
        fill = np.clip(y + 0.5 - (self.surface - 0.75 * pw), 0, 1) - (1 - self.band_air)
        powder = np.broadcast_to(0.3 * self._PLATE * fill, (y.shape[0], w)).copy()
        n = rng.poisson(1.3 * w * pw / (np.pi * (2 * s) ** 2))
        radii = rng.uniform(1.3, 2.8, n) * s
        ys = self.surface - radii - rng.random(n) * np.maximum(pw - 2 * radii, 0)
        xs = rng.uniform(0, w, n)
        for yc, xc, r in zip(ys - self.band.start, xs, radii, strict=True):
            add_spheres(powder, yc, xc, max(r, 0.7), self.mu)  # band coordinates
        return powder * self.band_air

    def _scan_x(self, tau: float) -> tuple[float, int]:
        rel = tau + self.phase
        k = math.floor(rel / self.period)
        return -self.margin + self.v_scan * (rel - k * self.period), k

    def _keyhole(self, tau: float) -> tuple[float, float, float]:
        """Depth (px), radius (px) and backward lean (tan) at ``tau``."""
        ph = self.kh_phase
        waves = np.sin(2 * np.pi * self.kh_freq * tau + ph[:3])
        depth = self.kh_depth * (1 + float(np.dot([0.22, 0.12, 0.06], waves)))
        radius = 4.5 * self.s * (1 + 0.12 * math.sin(2 * np.pi * 0.07 * tau + ph[3]))
        lean = 0.25 + 0.1 * math.sin(2 * np.pi * 0.045 * tau + ph[4])
        return depth, radius, lean

    def attenuation(self, tau: float) -> Frame:
        """Return plate, layer, melt pool, pores and spatter at ``tau``."""
        a = self.static.copy()
        x_m, k = self._scan_x(tau)
        self._layer(a, x_m, k)
        self._melt_pool(a, x_m, tau)
        self._pores(a, tau, k)
        self._spatter(a, tau)
        return a

    def _layer(self, a: Frame, x_m: float, k: int) -> None:
        """Powder ahead of the laser, solidified bead behind it."""
        s, pw = self.s, self.powder_px
        shift = (k * 7919) % self.w  # each pass lays a fresh stretch of powder
        behind = x_m - self.cols
        bead_h = np.roll(self.bead_h, shift) * (
            1 - np.exp(-np.maximum(behind, 0) / (3 * s))
        )
        hump = 0.35 * pw * np.exp(-(((behind - 12 * s) / (8 * s)) ** 2))  # liquid
        height = np.where(behind > 0, bead_h + hump, 0)
        # Row coverage of the bead: from its top down to the plate surface.
        bead = np.clip(self.band_y + 0.5 - (self.surface - height), 0, 1) - (
            1 - self.band_air
        )
        keep = np.clip((-behind - 2 * s) / (6 * s), 0, 1)  # denuded zone ahead
        powder = np.roll(self.powder, shift, axis=1) * keep
        a[self.band] += powder + bead * (0.85 * self._PLATE - GAS)

    def _melt_pool(self, a: Frame, x_m: float, tau: float) -> None:
        s, h, w = self.s, self.h, self.w
        depth, radius, lean = self._keyhole(tau)
        top_y, top_x = self.surface - 2 * s, x_m + 0.3 * radius
        tip_y, tip_x = self.surface + depth, x_m - lean * depth
        y0, y1 = max(int(top_y - 2 * radius), 0), min(int(tip_y + 2 * radius) + 2, h)
        x0, x1 = max(int(x_m - 45 * s), 0), min(int(x_m + 3 * radius) + 2, w)
        if y0 >= y1 or x0 >= x1:
            return
        yy = np.arange(y0, y1, dtype=np.float32)[:, None]
        xx = np.arange(x0, x1, dtype=np.float32)[None, :]
        box = a[y0:y1, x0:x1]
        # Liquid metal is a few per cent less dense: a faint pool behind the keyhole.
        ell = ((xx - (x_m - 15 * s)) / (22 * s)) ** 2 + (
            (yy - self.surface) / (14 * s)
        ) ** 2
        box -= 0.06 * self._PLATE * np.clip((1 - ell) * 4, 0, 1) * (yy > self.surface)
        # Keyhole: a vapour capsule widening into a funnel at the mouth.
        dy, dx = tip_y - top_y, tip_x - top_x
        u = np.clip(((yy - top_y) * dy + (xx - top_x) * dx) / (dy**2 + dx**2), 0, 1)
        d2 = (yy - top_y - u * dy) ** 2 + (xx - top_x - u * dx) ** 2
        r = radius * (1 + 0.9 * (1 - u) ** 3)
        box -= self.mu * 2 * np.sqrt(np.maximum(r**2 - d2, 0))
        np.maximum(box, GAS, out=box)

    def _pores(self, a: Frame, tau: float, k: int) -> None:
        """Pores pinched off the keyhole tip stay where they froze, for the pass."""
        start = k * self.period - self.phase
        births, u = poisson_events(
            self.seed, (self.code, 2), 0.03 * self.rate, start, tau, 4
        )
        for tb, (uy, ux, ur, _) in zip(births, u, strict=True):
            depth, _, lean = self._keyhole(tb)
            x_m, _ = self._scan_x(tb)
            y = self.surface + depth * (0.8 + 0.2 * uy)
            x = x_m - lean * depth - 6 * self.s * ux
            add_spheres(a, y, x, max((1.2 + 1.4 * ur) * self.s, 0.7), -self.mu)
        np.maximum(a, GAS, out=a)

    def _spatter(self, a: Frame, tau: float) -> None:
        """Molten droplets ejected from the keyhole mouth, blurred over the exposure."""
        s, he = self.s, self.half_exposure
        births, u = poisson_events(
            self.seed, (self.code, 3), self.rate, tau - 80 - he, tau + he, 4
        )
        for tb, (uv, ua, ur, ul) in zip(births, u, strict=True):
            t0, t1 = max(tau - he, tb), min(tau + he, tb + 30 + 50 * ul)
            if t1 < t0:
                continue
            speed = (3 + 9 * uv) * s
            angle = np.radians(-65 + 90 * ua)  # from vertical; mostly backward
            x_m, _ = self._scan_x(tb)
            n = int(np.clip(speed * (t1 - t0) / (0.5 * s) + 1, 1, 24))
            dt = np.linspace(t0, t1, n) - tb
            # Ballistic: gravity bends only the slowest, longest-lived droplets.
            ys = self.surface - 3 * s - speed * math.cos(angle) * dt + 0.01 * s * dt**2
            xs = x_m + speed * math.sin(angle) * dt
            add_spheres(a, ys, xs, max((1.2 + 1.8 * ur) * s, 0.7), self.mu)
