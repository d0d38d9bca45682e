"""Scene-family parameters: their specs, validation, and the ones families share.

Every family declares a :class:`SceneFamily` (what it shows and the keyword
parameters :func:`~xfusion_bluesky.synthetic.scene.generate_scene` accepts for
it); each parameter is a :class:`SceneParameter` with a default and a valid range
or set of choices. The parameters several families share (``zoom``, ``speed``
and the x-ray imaging ones) are defined once here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

__all__ = [
    "BLUR",
    "PHOTONS",
    "SPEED",
    "XRAY",
    "ZOOM",
    "ParamValue",
    "SceneFamily",
    "SceneParameter",
    "as_float",
    "define_family",
]

ParamValue = float | str | None


@dataclass(frozen=True)
class SceneParameter:
    """One tunable of a scene family.

    Attributes
    ----------
    default : float, str or None
        Value used when the caller does not give one.
    doc : str
        Meaning and unit.
    low, high : float or None
        Inclusive range of a numeric parameter.
    choices : tuple of str
        Valid values of a text parameter (empty for numeric ones).
    """

    default: ParamValue
    doc: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()

    def check(self, name: str, value: object) -> ParamValue:
        """Return ``value`` if valid for this parameter, else raise ValueError."""
        if self.choices:
            if value not in self.choices:
                raise ValueError(f"{name} must be one of {self.choices}; got {value!r}")
            return str(value)
        if value is None and self.default is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            raise TypeError(f"{name} must be a number; got {value!r}")
        number = float(value)
        low = -math.inf if self.low is None else self.low
        high = math.inf if self.high is None else self.high
        if not low <= number <= high:
            raise ValueError(f"{name} must be in [{low}, {high}]; got {number}")
        return number


@dataclass(frozen=True)
class SceneFamily:
    """A scene family: what it shows and its parameters with defaults.

    Attributes
    ----------
    name : str
        Family name as passed to :func:`generate_scene`.
    summary : str
        One line on what it shows.
    pace : str
        ``"fast"`` (paper case 1), ``"slow"`` (case 2) or ``"pretraining"``.
    parameters : Mapping[str, SceneParameter]
        The keyword parameters :func:`generate_scene` accepts for this family.
    """

    name: str
    summary: str
    pace: str
    parameters: Mapping[str, SceneParameter]

    def defaults(self) -> dict[str, ParamValue]:
        """Return the default value of every parameter."""
        return {name: p.default for name, p in self.parameters.items()}


#: Parameters every family has.
ZOOM = SceneParameter(
    1.0, "output pixels per design pixel: scales every length and speed", 0.25, 8
)
SPEED = SceneParameter(
    1.0,
    "multiplies the scene clock: all velocities and frequencies (0 = frozen)",
    0,
    50,
)
#: Noise and blur, shared by the x-ray families; ``natural`` has its own blur.
PHOTONS = SceneParameter(
    None, "photons per pixel at intensity 1 for shot noise; None or 0 = noiseless", 0
)
BLUR = SceneParameter(
    0.7, "scintillator blur, Gaussian sigma in detector pixels", 0, 20
)
#: Parameters of the imaging chain, shared by the x-ray families.
XRAY: Mapping[str, SceneParameter] = MappingProxyType(
    {
        "photons": PHOTONS,
        "blur_px": BLUR,
        "flat_field": SceneParameter(
            1.0,
            "beam-profile strength: 0 uniform, 1 corners ~0.7 of the centre",
            0,
            1.5,
        ),
        "fringe": SceneParameter(
            0.3, "phase-contrast fringe strength (propagation x delta/mu), px^2", 0, 5
        ),
    }
)


def define_family(
    name: str, summary: str, pace: str, **params: SceneParameter
) -> SceneFamily:
    """Return a :class:`SceneFamily` whose parameters are ``params``, read-only."""
    return SceneFamily(name, summary, pace, MappingProxyType(params))


def as_float(values: Mapping[str, ParamValue], name: str) -> float:
    """Return the numeric parameter ``name`` of ``values``; ``None`` counts as 0."""
    value = values[name]
    return 0.0 if value is None else float(value)
