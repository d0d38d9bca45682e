"""Seeded synthetic x-ray video: ground truth for sims, tests, training.

One generator, :func:`generate_scene`, renders a ground-truth HR video, float32
``(t, h, w)`` in [0, 1], from a family name, a seed and the instants asked for.
The x-ray families render a map of attenuation ``mu * thickness`` per instant and
then the imaging chain, in this order: propagation phase contrast
(:func:`phase_contrast`), the beam profile (:func:`beam_profile`), scintillator
blur (:func:`scintillator_blur`) and, only when asked, shot noise
(:func:`shot_noise`).

Families (:data:`FAMILY_SPECS` lists their parameters and defaults):

- ``additive_manufacturing``: laser powder-bed fusion seen side-on: plate, powder
  layer, a melt pool and an oscillating keyhole moving along the scan, pores,
  fast spatter with motion blur (the paper's fast "case 1" kind);
- ``friction_stir``: slow; textured plate with tracer particles stirred by a
  rotating tri-flat pin while the plate travels past it ("case 2" kind);
- ``fast_front``: a shock, crack or liquid jet crossing a textured sample;
- ``natural``: generic natural-like textures, occluding objects under affine and
  elastic motion, no x-ray effects (for pretraining);
- ``foam``: a liquid-metal foam rising through a thin cell, its cells coarsening
  and some films rupturing. Held out of training (:data:`HELD_OUT_FAMILIES`): a
  check of fusion on scenes unlike anything the weights saw.

Notes
-----
Time is counted in scene frames, the LR period the scene was designed for; every
motion is a continuous function of it, except that the laser scan and the front
restart, as a new layer or a new event would, once per pass across the field
(every ~340 and ~90 frames at 256x256, more in wider fields). Random
content (textures, particle births and paths) comes from seed-derived streams,
per 16-frame epoch for events, so it depends on the seed and the parameters
only, never on which instants are rendered.

Lengths and speeds are in output pixels (times ``zoom``), whatever the frame size:
a bigger frame is a wider field of view with the same feature sizes and motion
per frame, so training crops, evaluation frames and camera fields share one
distribution. The layout (surface height, tool position, front path) is relative
to the frame, so the event is in view at any size. Detector effects (blur,
fringe width) are in detector pixels and do not zoom. Shot noise is off by
default: the ground truth is noiseless, because fusion training and the
simulated cameras add their own noise.

Motion blur over the exposure is modelled for the spatter only, the fastest
features; everything else is rendered at the instant.

Speed, measured on the project's shared 2-core CPU host (numpy 2.4, scipy 1.17,
other jobs running; best of 3): 64 frames of 256x256 take 0.12-0.17 s for the
x-ray families and ~0.3 s for ``natural``; 32 frames of 1000x1600 take ~0.8 s
(``additive_manufacturing``; 1.1 s at ``zoom=4``), 2.2-2.4 s (``fast_front``,
``friction_stir``) and ~10 s (``natural``: four full-frame layers, meant for
training-size frames). Each call precomputes textures once, then renders frame
by frame with vectorised numpy/scipy; particles touch only their bounding boxes.

Layout: this module holds the public entry point, the family registry and the
input checks. Each family is one module of :mod:`xfusion_bluesky.synthetic.families`
(its parameters and its renderer), on top of ``families.base`` (seed streams,
events, the renderer base classes); :mod:`~xfusion_bluesky.synthetic.parameters`
defines the parameter specs, :mod:`~xfusion_bluesky.synthetic.textures` the
shared textures and sampling, :mod:`~xfusion_bluesky.synthetic.imaging` the
imaging chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xfusion_bluesky.synthetic.families import (
    additive_manufacturing,
    fast_front,
    foam,
    friction_stir,
    natural,
)
from xfusion_bluesky.synthetic.families.base import Scene
from xfusion_bluesky.synthetic.imaging import (
    beam_profile,
    phase_contrast,
    scintillator_blur,
    shot_noise,
)
from xfusion_bluesky.synthetic.parameters import (
    ParamValue,
    SceneFamily,
    SceneParameter,
)

__all__ = [
    "DEFAULT_FAMILY",
    "FAMILY_SPECS",
    "HELD_OUT_FAMILIES",
    "SCENE_FAMILIES",
    "SCENE_VERSION",
    "XRAY_FAMILIES",
    "SceneFamily",
    "SceneParameter",
    "beam_profile",
    "generate_scene",
    "phase_contrast",
    "scene_version",
    "scintillator_blur",
    "shot_noise",
]

#: Version of the generator; training records it in model cards. Bump it whenever
#: the same seed and parameters would render different pixels.
scene_version = "1.0.0"
SCENE_VERSION = scene_version

_MAX_ABS_TIME = 1e9  # frames; keeps float64 clocks and epoch indices exact enough

# In this order: it is the order of SCENE_FAMILIES.
_FAMILY_MODULES = (additive_manufacturing, friction_stir, fast_front, natural, foam)

#: Every family with its parameters and defaults.
FAMILY_SPECS: Mapping[str, SceneFamily] = MappingProxyType(
    {module.SPEC.name: module.SPEC for module in _FAMILY_MODULES}
)
SCENE_FAMILIES: tuple[str, ...] = tuple(FAMILY_SPECS)
#: Families no training draws: held-out scenes on which fusion's generality is
#: measured (``benchmarks/quality_grid.py``). Never add them to a training stage.
HELD_OUT_FAMILIES: tuple[str, ...] = ("foam",)
#: The x-ray families training fine-tunes on (``training.config``, the ``train``
#: CLI) and ``benchmarks/quality.py`` scores: every x-ray family not held out.
XRAY_FAMILIES: tuple[str, ...] = tuple(
    f for f in SCENE_FAMILIES if f != "natural" and f not in HELD_OUT_FAMILIES
)
DEFAULT_FAMILY = "additive_manufacturing"

_RENDERERS: Mapping[str, type[Scene]] = MappingProxyType(
    {
        cls.family: cls
        for cls in (
            additive_manufacturing.AdditiveManufacturingScene,
            friction_stir.FrictionStirScene,
            fast_front.FastFrontScene,
            natural.NaturalScene,
            foam.FoamScene,
        )
    }
)


def _check_times(
    num_frames: int | None, times: ArrayLike | None
) -> NDArray[np.float64]:
    if (num_frames is None) == (times is None):
        raise TypeError(
            "give exactly one of num_frames (int) or times (scene-frame instants); "
            f"got num_frames={num_frames!r}, times={'None' if times is None else '...'}"
        )
    if num_frames is not None:
        return np.arange(_check_int("num_frames", num_frames, 1), dtype=np.float64)
    instants = np.asarray(times, dtype=np.float64)
    if instants.ndim != 1 or instants.size == 0:
        raise ValueError(
            f"times must be a non-empty 1-D array; got shape {instants.shape}"
        )
    if not np.all(np.abs(instants) <= _MAX_ABS_TIME):
        raise ValueError(f"times must be finite and within +-{_MAX_ABS_TIME:g} frames")
    return instants


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return int(value)


def _check_params(
    spec: SceneFamily, params: Mapping[str, object]
) -> dict[str, ParamValue]:
    unknown = sorted(set(params) - set(spec.parameters))
    if unknown:
        raise TypeError(
            f"unknown parameter(s) {unknown} for scene family {spec.name!r}; "
            f"valid: {sorted(spec.parameters)}"
        )
    values = spec.defaults()
    for name, value in params.items():
        values[name] = spec.parameters[name].check(name, value)
    return values


def generate_scene(
    family: str = DEFAULT_FAMILY,
    *,
    num_frames: int | None = None,
    times: ArrayLike | None = None,
    height: int = 256,
    width: int = 256,
    seed: int = 0,
    **params: object,
) -> NDArray[np.float32]:
    """Render a seeded ground-truth HR video of one scene family.

    Parameters
    ----------
    family : str
        One of :data:`SCENE_FAMILIES`.
    num_frames : int, optional
        Render the instants ``0, 1, ..., num_frames - 1``. Give this or ``times``.
    times : array_like, optional
        1-D float instants in scene frames (e.g. ``[0, 0.25, 0.5]``); the same
        event is rendered at any instants, so cameras of different rates can
        sample one event.
    height, width : int
        Frame shape in pixels, each >= 8.
    seed : int
        Non-negative seed; the scene content depends on it (and on the family,
        shape and parameters) only, not on the instants asked for.
    **params
        Family parameters, see ``FAMILY_SPECS[family].parameters`` (``speed``,
        ``density``, ``photons``, ``blur_px``, ...); omitted ones take defaults.

    Returns
    -------
    ndarray, (t, height, width) float32 in [0, 1]
        Detector intensity; for the x-ray families 1 is above the open beam
        (``0.85`` at the beam centre), so phase-contrast fringes fit.

    Raises
    ------
    ValueError
        Unknown family, a parameter out of range, bad times or shape.
    TypeError
        Both or neither of ``num_frames`` and ``times``, an unknown parameter or
        a value of the wrong type.

    Examples
    --------
    >>> video = generate_scene("friction_stir", num_frames=4, height=64, width=64)
    >>> video.shape, video.dtype
    ((4, 64, 64), dtype('float32'))
    >>> same = generate_scene("friction_stir", times=[2.0], height=64, width=64)
    >>> bool((same[0] == video[2]).all())
    True
    """
    if family not in FAMILY_SPECS:
        raise ValueError(
            f"unknown scene family {family!r}; valid: {list(SCENE_FAMILIES)}"
        )
    values = _check_params(FAMILY_SPECS[family], params)
    instants = _check_times(num_frames, times)
    height = _check_int("height", height, 8)
    width = _check_int("width", width, 8)
    seed = _check_int("seed", seed, 0)
    scene = _RENDERERS[family](height, width, seed, values)
    video = np.empty((instants.size, height, width), dtype=np.float32)
    for i, t in enumerate(instants):
        video[i] = scene.frame(float(t))
    return video
