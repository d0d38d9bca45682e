"""Natural scene: generic textures and occluding objects, no x-ray effects.

A textured background and three occluding textured objects, each under its own
affine motion (drift, rotation, breathing scale), all under a smooth elastic
warp; natural-like statistics for pretraining. Renders intensity directly: no
phase contrast or beam profile, only the optional blur and shot noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from xfusion_bluesky.synthetic.families.base import Scene
from xfusion_bluesky.synthetic.parameters import (
    PHOTONS,
    SPEED,
    ZOOM,
    ParamValue,
    SceneParameter,
    as_float,
    define_family,
)
from xfusion_bluesky.synthetic.textures import (
    Frame,
    fractal_noise,
    sample_wrap,
    texture_shape,
    wrap_pad,
)

__all__ = ["SPEC", "NaturalScene"]

#: The family and its parameters.
SPEC = define_family(
    "natural",
    "natural-like textures and objects under affine and elastic motion",
    "pretraining",
    speed=SPEED,
    zoom=ZOOM,
    density=SceneParameter(1.0, "area covered by objects (1 = ~30 %)", 0, 3),
    photons=PHOTONS,
    blur_px=SceneParameter(0.0, "Gaussian blur sigma in pixels", 0, 20),
)


@dataclass(frozen=True)
class _Layer:
    """One periodic layer of the natural family and its affine motion."""

    texture: NDArray[Any]  # padded; complex64 value + 1j * opacity
    centre: tuple[float, float]
    velocity: tuple[float, float]  # px/frame
    omega: float  # rad/frame
    breathe: float  # relative amplitude of the breathing scale
    freq: float  # cycles/frame of the breathing
    phase: float


class NaturalScene(Scene):
    """Textured background and occluding textured objects, each moving on its own."""

    family = SPEC.name

    def __init__(
        self, height: int, width: int, seed: int, values: Mapping[str, ParamValue]
    ) -> None:
        super().__init__(height, width, seed, values)
        s, h, w, rng = self.s, height, width, self.rng(0)
        layout = self.rng(5)  # scalars apart from textures: size-independent
        shape = texture_shape(h, w, margin=32)
        coverage = min(0.11 * as_float(values, "density"), 0.6)
        self.layers: list[_Layer] = []
        for i in range(4):  # background, then three objects
            beta, smooth = layout.uniform(1.5, 3.0), layout.uniform(0.4, 1.5) * s
            tex = fractal_noise(rng, shape, beta, smooth)
            texture: NDArray[Any]
            if i == 0:
                texture = (0.5 + layout.uniform(0.08, 0.16) * tex).astype(np.float32)
            else:
                value = layout.uniform(0.15, 0.85) + layout.uniform(0.06, 0.2) * tex
                blobs = fractal_noise(rng, shape, 4.0, 5 * s)
                cut = np.quantile(blobs, 1 - coverage) if coverage > 0 else np.inf
                opacity = ndimage.gaussian_filter(
                    (blobs > cut).astype(np.float32), 0.6, mode="wrap"
                )
                texture = (value + 1j * opacity).astype(np.complex64)
            direction = layout.uniform(0, 2 * np.pi)
            speed = layout.uniform(0.2, 1.0 if i == 0 else 2.5) * s
            if i > 0 and coverage == 0:
                continue
            self.layers.append(
                _Layer(
                    texture=wrap_pad(texture),
                    centre=(h * layout.uniform(0.3, 0.7), w * layout.uniform(0.3, 0.7)),
                    velocity=(speed * math.sin(direction), speed * math.cos(direction)),
                    omega=layout.uniform(-0.01, 0.01),
                    breathe=layout.uniform(0, 0.06),
                    freq=layout.uniform(0.005, 0.03),
                    phase=layout.uniform(0, 2 * np.pi),
                )
            )
        # A smooth elastic warp of the whole view, breathing in time.
        self.warp = np.stack(
            [fractal_noise(rng, (h, w), 4.0, 12 * s) for _ in range(2)]
        )
        self.warp *= 3 * s
        self.warp_freq = layout.uniform(0.01, 0.04)
        self.warp_phase = layout.uniform(0, 2 * np.pi)
        self.yy, self.xx = np.mgrid[0:h, 0:w].astype(np.float32)

    def intensity(self, tau: float) -> Frame:
        """Return the warped composite of the moving layers at ``tau``."""
        wobble = np.float32(
            math.sin(2 * np.pi * self.warp_freq * tau + self.warp_phase)
        )
        py, px = self.yy + wobble * self.warp[0], self.xx + wobble * self.warp[1]
        image = np.zeros((self.h, self.w), np.float32)
        for layer in self.layers:
            th, tw = layer.texture.shape[0] - 1, layer.texture.shape[1] - 1
            scale = 1 + layer.breathe * math.sin(
                2 * np.pi * layer.freq * tau + layer.phase
            )
            c, s = (
                math.cos(layer.omega * tau) / scale,
                math.sin(layer.omega * tau) / scale,
            )
            cy, cx = layer.centre
            # Inverse map view -> layer; the translation wraps to keep float32 exact.
            ty = (cy - layer.velocity[0] * tau) % th
            tx = (cx - layer.velocity[1] * tau) % tw
            qy = ty + c * (py - cy) - s * (px - cx)
            qx = tx + s * (py - cy) + c * (px - cx)
            sample = sample_wrap(layer.texture, qy, qx)
            if np.iscomplexobj(sample):
                image += sample.imag * (sample.real - image)
            else:
                image = sample
        return image
