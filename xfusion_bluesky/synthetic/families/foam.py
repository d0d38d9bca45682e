"""Foam scene: a liquid-metal foam rising through a thin cell, coarsening, rupturing.

A quasi-2-D foam between two windows, seen through its thickness: bright gas
cells separated by dark liquid films that flare into Plateau borders where three
cells meet, the kind of metal-foam evolution imaged by fast radiography. The
foam rises slowly through the field; as each cell rises it grows or shrinks
(coarsening: small cells vanish, their neighbours take their place), and some
films rupture, the hole opening along the film within a few frames. Held out of
training (``synthetic.scene.HELD_OUT_FAMILIES``): a network never sees a cell
network, so it measures generality.

The cells are a Laguerre (power) tessellation of jittered hexagonal sites with
weights that change with age, so the network moves continuously in time. Each
frame queries a k-d tree of the sites for every pixel: ~0.1–0.2 s per 256×256
frame on the shared 2-core host, tens of times the other x-ray families, which
is fine for evaluation sequences, what this family is for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from xfusion_bluesky.synthetic.families.base import GAS, XRayScene
from xfusion_bluesky.synthetic.parameters import (
    SPEED,
    XRAY,
    ZOOM,
    ParamValue,
    SceneParameter,
    as_float,
    define_family,
)
from xfusion_bluesky.synthetic.textures import Frame, fractal_noise

__all__ = ["SPEC", "FoamScene"]

#: The family and its parameters.
SPEC = define_family(
    "foam",
    "liquid foam rising in a thin cell: coarsening cells, fast film ruptures",
    "slow",
    speed=SPEED,
    zoom=ZOOM,
    density=SceneParameter(
        1.0, "cells per area (1 = cells ~22 px across); 0 = no cells", 0, 10
    ),
    ruptures=SceneParameter(
        0.3, "fraction of cells whose film to a neighbour ruptures as they rise", 0, 1
    ),
    **XRAY,
)

_NEIGHBOURS = 8  # candidate sites per pixel; the three best power distances win
_ROWS_PER_BAND = 4  # lattice rows per seed stream along the foam's height


class FoamScene(XRayScene):
    """Foam cells rising at constant speed; films, Plateau borders and ruptures.

    Foam coordinates ``(y', x)`` move with the foam: ``y = y' - v tau`` on the
    detector. Sites are drawn per band of lattice rows from the band's own seed
    stream, so the foam is endless and a frame depends on the seed only.
    """

    family = SPEC.name
    _FILM = 1.1  # attenuation across a full film: transmission ~0.33
    _LAYER = 0.25  # liquid wetting the windows, inside every cell

    def __init__(
        self, height: int, width: int, seed: int, values: Mapping[str, ParamValue]
    ) -> None:
        super().__init__(height, width, seed, values)
        s, h, w = self.s, height, width
        density = as_float(values, "density")
        self.spacing = 22 * s / math.sqrt(density) if density > 0 else math.inf
        self.row_step = self.spacing * math.sqrt(3) / 2
        self.margin = 2 * self.spacing if density > 0 else 0.0
        self.v = 0.4 * s  # rise, px/frame
        self.half_film = 0.6 * s  # film half-thickness, px
        self.border = 3.0 * s  # Plateau-border flare length, px
        self.p_rupture = as_float(values, "ruptures")
        self.v_rupture = 4.0 * s  # hole opening along the film, px/frame
        # Windows and wetting layer: fixed, faintly textured.
        rng = self.rng(0)
        windows = 1 + 0.05 * fractal_noise(rng, (h, w), 2.4, 2.0 * s)
        self.windows = (GAS + self._LAYER * windows).astype(np.float32)
        self.sway = 3.0 * s * (0.5 + rng.random())  # lateral sway amplitude, px
        self.sway_phase = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        self.pixels = np.column_stack([yy.ravel(), xx.ravel()])
        self._bands: dict[int, NDArray[np.float64]] = {}

    def _band(self, j: int) -> NDArray[np.float64]:
        """Sites of band ``j``: y, x, w0, growth, rupture age, puncture, band."""
        if j not in self._bands:
            rng = self.rng(1, j + 2**40)
            d, rs = self.spacing, self.row_step
            cols = math.ceil((self.w + 2 * self.margin) / d) + 1
            rows = np.repeat(np.arange(_ROWS_PER_BAND), cols)
            col = np.tile(np.arange(cols), _ROWS_PER_BAND).astype(np.float64)
            n = rows.size
            jitter = rng.uniform(-0.3, 0.3, (n, 2)) * d
            y = (j * _ROWS_PER_BAND + rows + 0.5) * rs + jitter[:, 0]
            x = (col + 0.5 * (rows % 2)) * d - self.margin + jitter[:, 1]
            radius2 = (0.5 * d * rng.lognormal(0, 0.25, n)) ** 2
            growth = rng.uniform(-1 / 150, 1 / 250, n)  # relative, per frame of age
            rupture = np.where(
                rng.random(n) < self.p_rupture, rng.uniform(0, 400, n), np.inf
            )
            where = rng.uniform(-0.35, 0.35, n)  # puncture along the film
            self._bands[j] = np.column_stack(
                [y, x, radius2, growth, rupture, where, np.full(n, j)]
            )
        return self._bands[j]

    def _sites(self, tau: float) -> NDArray[np.float64]:
        """Every site that can own a pixel at ``tau``, in foam coordinates."""
        top = self.v * tau - self.margin
        bottom = self.v * tau + self.h + self.margin
        band_h = _ROWS_PER_BAND * self.row_step
        bands = range(math.floor(top / band_h) - 1, math.floor(bottom / band_h) + 2)
        return np.concatenate([self._band(j) for j in bands])

    def attenuation(self, tau: float) -> Frame:
        """Return windows, films and Plateau borders of the foam at ``tau``."""
        a = self.windows.copy()
        if not math.isfinite(self.spacing):
            return a
        sites = self._sites(tau)
        shift = self.v * tau
        sway = self.sway * math.sin(2 * np.pi * tau / 300 + self.sway_phase)
        cy = sites[:, 0] - shift
        cx = sites[:, 1] + sway
        # Age since the site rose into view from below: cells grow or shrink with it.
        age = tau - (sites[:, 0] - self.h - self.margin) / self.v
        weight = sites[:, 2] * np.maximum(1 + sites[:, 3] * np.maximum(age, 0), 0.05)
        centres = np.column_stack([cy, cx])
        k = min(_NEIGHBOURS, len(sites))
        _, near = cKDTree(centres).query(self.pixels, k=k)
        # Power distance |p - c|^2 - w to each candidate; the three best make the
        # cell (first), its nearest wall (second) and the wall's end (third).
        dy = self.pixels[:, :1] - cy[near]
        dx = self.pixels[:, 1:] - cx[near]
        power = dy * dy + dx * dx - weight[near]
        best = np.argsort(power, axis=1)[:, :3]
        idx = np.take_along_axis(near, best, axis=1)
        pw = np.take_along_axis(power, best, axis=1)
        gap = np.hypot(cy[idx[:, 1:]] - cy[idx[:, :1]], cx[idx[:, 1:]] - cx[idx[:, :1]])
        # Distance to the bisector of the first and each other cell.
        wall = (pw[:, 1:] - pw[:, :1]) / (2 * np.maximum(gap, 1e-6))
        # Each of the two nearest walls flares into a Plateau border where it
        # meets the other; symmetric in the two, so the frame stays continuous
        # where the second and third cells swap.
        flare = self.half_film + self.border * np.exp(-wall[:, ::-1] / self.border)
        cover = np.clip(flare - wall + 0.5, 0, 1)
        for n in (0, 1):
            cover[:, n] *= self._intact(sites, idx[:, 0], idx[:, n + 1], cy, cx, tau)
        film = (self._FILM / (2 * self.half_film + 1)) * cover.max(axis=1)
        # Liquid collects along the walls: a meniscus, thickest at the wall.
        meniscus = 0.15 * np.exp(-wall.min(axis=1) / (2.5 * self.s))
        a += (film + meniscus).reshape(self.h, self.w).astype(np.float32)
        return a

    def _intact(
        self,
        sites: NDArray[np.float64],
        first: NDArray[np.intp],
        second: NDArray[np.intp],
        cy: NDArray[np.float64],
        cx: NDArray[np.float64],
        tau: float,
    ) -> NDArray[np.float64]:
        """Return 1 where the film between ``first`` and ``second`` still stands."""
        intact = np.ones(first.shape)
        age = tau - (sites[:, 0] - self.h - self.margin) / self.v
        broken = np.flatnonzero(age > sites[:, 4])
        if broken.size == 0:
            return intact
        # A cell ruptures the film to its nearest neighbour (fixed in foam
        # coordinates, so the pair never changes).
        tree = cKDTree(sites[:, :2])
        _, pair = tree.query(sites[broken, :2], k=2)
        partner = pair[:, 1]
        for i, j in zip(broken, partner, strict=True):
            on = ((first == i) & (second == j)) | ((first == j) & (second == i))
            if not on.any():
                continue
            # The hole opens from a point on the film, a fraction along it.
            my, mx = (cy[i] + cy[j]) / 2, (cx[i] + cx[j]) / 2
            ty, tx = -(cx[j] - cx[i]), cy[j] - cy[i]  # along the film
            py = my + sites[i, 5] * ty
            px = mx + sites[i, 5] * tx
            radius = self.v_rupture * (age[i] - sites[i, 4])
            rows = np.flatnonzero(on)
            d = np.hypot(self.pixels[rows, 0] - py, self.pixels[rows, 1] - px)
            intact[rows] = np.clip(d - radius, 0, 1)
        return intact
