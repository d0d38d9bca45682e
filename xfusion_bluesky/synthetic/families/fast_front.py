"""Fast-front scene: a shock, crack or liquid jet crossing a porous sample.

A textured, porous sample strip; once per pass a front crosses it left to right:
a shock compressing the material behind a rough, leaning front, a crack opening
with one slower branch, or a liquid jet with a mushroom head. Each pass draws its
own shape (and, with ``front="random"``, its kind) from its own seed stream.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import fft as sp_fft

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
from xfusion_bluesky.synthetic.textures import (
    Frame,
    add_spheres,
    fractal_noise,
    sample_wrap,
    wrap_pad,
)

__all__ = ["FRONT_KINDS", "SPEC", "FastFrontScene"]

#: The kinds of front; ``front="random"`` draws one per pass.
FRONT_KINDS = ("shock", "crack", "jet")

#: The family and its parameters.
SPEC = define_family(
    "fast_front",
    "a shock, crack or liquid jet crossing a textured sample",
    "fast",
    speed=SPEED,
    zoom=ZOOM,
    density=SceneParameter(1.0, "pores in the sample (1 = ~0.5 % of the area)", 0, 10),
    front=SceneParameter(
        "random",
        "front kind; 'random' draws one per pass",
        choices=("random", *FRONT_KINDS),
    ),
    **XRAY,
)


@dataclass(frozen=True)
class _Front:
    """Shape of one front pass; lengths in pixels."""

    kind: str
    tilt: float  # tan of the front's lean (shock) or the path's slope (crack, jet)
    rough: NDArray[np.float32]  # roughness profile of the front or the path
    rough2: NDArray[np.float32]  # roughness of the crack branch
    y0: float  # row where the crack or the jet starts
    branch: float  # fraction of the width where the crack branches
    slope: float  # slope of the branch
    radius: float  # jet radius
    wave: float  # wavelength of the jet's sinuous and varicose waves
    wphase: float


class FastFrontScene(XRayScene):
    """A front crossing a porous sample strip, once per pass, left to right."""

    family = SPEC.name
    _SAMPLE = 0.8

    def __init__(
        self, height: int, width: int, seed: int, values: Mapping[str, ParamValue]
    ) -> None:
        super().__init__(height, width, seed, values)
        s, h, w, rng = self.s, height, width, self.rng(0)
        tw = sp_fft.next_fast_len(w + 16)  # periodic along x: the shock resamples it
        sample = self._SAMPLE * (1 + 0.18 * fractal_noise(rng, (h, tw), 2.2, 1.0 * s))
        self.mu = self._SAMPLE / (12 * s)  # sample 12 px (zoom 1) thick along the beam
        n = rng.poisson(
            0.005 * as_float(values, "density") * h * tw / (np.pi * (3 * s) ** 2)
        )
        for y, x, r in zip(
            rng.uniform(0, h, n),
            rng.uniform(0, tw, n),
            rng.uniform(1.5, 4.5, n) * s,
            strict=True,
        ):
            add_spheres(sample, y, x, max(r, 0.7), -self.mu)  # voids
        yy = np.arange(h, dtype=np.float32)[:, None]
        layout = self.rng(5)  # scalars apart from textures: size-independent
        top, bottom = h * layout.uniform(0.08, 0.2), h * layout.uniform(0.8, 0.92)
        inside = np.clip(yy + 0.5 - top, 0, 1) * np.clip(bottom - yy + 0.5, 0, 1)
        self.base = np.maximum(GAS + inside * (sample - GAS), GAS)
        self.padded = wrap_pad(self.base)
        self.yy = np.broadcast_to(yy, (h, w))
        self.cols = np.arange(w, dtype=np.float32)[None, :]
        self.margin = 0.25 * h + 30 * s
        self.v = 5.0 * s  # px/frame
        self.period = (w + 2 * self.margin) / self.v
        self.phase = layout.uniform(0.2, 0.5) * self.period  # front in view at t=0
        self.kind = str(values["front"])
        self._passes: dict[int, _Front] = {}

    def _pass(self, k: int) -> _Front:
        """Random shape of the k-th front, from its own seed stream (cached)."""
        if k not in self._passes:
            s, h, rng = self.s, self.h, self.rng(1, k + 2**40)
            kind = self.kind if self.kind != "random" else str(rng.choice(FRONT_KINDS))
            n = max(self.h, self.w)
            self._passes[k] = _Front(
                kind=kind,
                tilt=rng.uniform(-0.35, 0.35),
                rough=3 * s * fractal_noise(rng, (1, n), 1.8, 2 * s)[0],
                rough2=3 * s * fractal_noise(rng, (1, n), 1.8, 2 * s)[0],
                y0=h * rng.uniform(0.35, 0.65),
                branch=rng.uniform(0.2, 0.6),
                slope=rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.7),
                radius=rng.uniform(5, 9) * s,
                wave=rng.uniform(25, 50) * s,
                wphase=rng.uniform(0, 2 * np.pi),
            )
        return self._passes[k]

    def attenuation(self, tau: float) -> Frame:
        """Return the sample with this pass's front where it is at ``tau``."""
        rel = tau + self.phase
        k = math.floor(rel / self.period)
        front = -self.margin + self.v * (rel - k * self.period)
        p = self._pass(k)
        draw = {"shock": self._shock, "crack": self._crack, "jet": self._jet}[p.kind]
        return draw(front, p)

    def _shock(self, front: float, p: _Front) -> Frame:
        """Compressed, denser material behind a rough, leaning front."""
        h, w = self.h, self.w
        xf = front + p.tilt * (self.yy[:, :1] - h / 2) + p.rough[:h, None]
        compression = 0.4
        # Material now at x came from further back: x0 = xf - (xf - x)(1 + c).
        x0 = xf - (xf - self.cols) * (1 + compression)
        squeezed = sample_wrap(self.padded, self.yy, x0)
        a = self.base[:, :w].copy()
        cover = np.clip(xf - self.cols + 0.5, 0, 1)
        a += cover * (GAS + (squeezed - GAS) * (1 + compression) - a)
        return a

    def _crack_gap(self, path: Frame, tip: float, origin: float, width: float) -> Frame:
        """Row coverage of a crack along ``path`` (per column), open behind ``tip``."""
        behind = np.clip((tip - self.cols) / (60 * self.s), 0, 1)
        # Crack opening grows as the square root of the distance behind the tip.
        half = 0.5 * width * np.sqrt(behind) * (self.cols >= origin)
        return np.clip(half - np.abs(self.yy - path) + 0.5, 0, 1)

    def _crack(self, front: float, p: _Front) -> Frame:
        """Open a rough crack along x, with one slower branch; gaps go bright."""
        w, s = self.w, self.s
        a = self.base[:, :w].copy()
        x = self.cols
        path = p.y0 + p.tilt * 0.5 * x + p.rough[None, :w]
        gap = self._crack_gap(path, front, -np.inf, 5 * s)
        xb = p.branch * w
        yb = float(np.interp(xb, x[0], path[0]))
        branch = yb + p.slope * (x - xb) + p.rough2[None, :w]
        tip_b = xb + 0.7 * (front - xb)
        gap = np.maximum(gap, self._crack_gap(branch, tip_b, xb, 3.5 * s))
        a -= 0.9 * gap * (a - GAS)
        return a

    def _jet(self, front: float, p: _Front) -> Frame:
        """Shoot a liquid jet with a mushroom head and travelling sinuous waves."""
        w, r0 = self.w, p.radius
        a = self.base[:, :w].copy()
        x = self.cols
        travel = 2 * np.pi * (x - 0.6 * front) / p.wave + p.wphase
        axis = (
            p.y0 + 0.3 * p.tilt * x + 0.6 * r0 * np.clip(x / w, 0, 1) * np.sin(travel)
        )
        radius = r0 * (1 + 0.12 * np.sin(1.7 * travel + 1.0))
        head = 1.35 * r0
        cap = np.sqrt(np.maximum(head**2 - (x - front + head) ** 2, 0))
        radius = np.where(x > front - head, cap, radius)
        chord = 2 * np.sqrt(np.maximum(radius**2 - (self.yy - axis) ** 2, 0))
        a += (0.4 / r0) * chord  # ~0.8 through the jet's core
        return a
