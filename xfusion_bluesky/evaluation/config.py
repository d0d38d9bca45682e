"""What one evaluation run covers: its configuration, JSON form and cache key.

:class:`EvaluationConfig` (the full run) and :func:`quick_config` (``--quick``)
say which sequences, sweeps, methods and timing
:func:`~xfusion_bluesky.evaluation.runner.run_evaluation` computes;
:func:`fingerprint` hashes what every cached run depends on, and :func:`jsonable`
turns settings and summaries into plain JSON.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from xfusion_bluesky.evaluation.datasets import (
    HELD_OUT_SEED,
    default_radiographs,
    shown_path,
)
from xfusion_bluesky.evaluation.sweeps import SweepPlan
from xfusion_bluesky.fusion.baselines.clustering import num_clusters
from xfusion_bluesky.fusion.methods import METHOD_NAMES, method_spec
from xfusion_bluesky.synthetic.scene import SCENE_VERSION

__all__ = [
    "METHODS",
    "PROTOCOL_VERSION",
    "EvaluationConfig",
    "UserInput",
    "fingerprint",
    "jsonable",
    "quick_config",
]

#: Methods compared, in table order: every registered method.
METHODS = METHOD_NAMES
#: Bumped whenever a cached run would no longer match what this code computes.
PROTOCOL_VERSION = 1


@dataclass(frozen=True)
class UserInput:
    """A user's recording to evaluate instead of the built-in sequences.

    Attributes
    ----------
    lr, hr : str
        Frame files (``evaluation.datasets.load_frames``).
    hr_index : list of int or str
        LR frame of each HR frame, or a file holding them.
    truth : str or None
        Optional truth at every LR instant (HR size).
    lr_separations : tuple of int
    """

    lr: str
    hr: str
    hr_index: list[int] | str
    truth: str | None = None
    lr_separations: tuple[int, ...] = (1,)


@dataclass(frozen=True)
class EvaluationConfig:
    """What to evaluate; defaults are the full run (≲ 1 h on a 2-core CPU).

    Attributes
    ----------
    families : tuple of str
        Scene families; the paper's fast "case 1" and slow "case 2" kinds are
        ``additive_manufacturing`` and ``friction_stir``.
    seeds : tuple of int
        Held-out scene seeds (≥ 2**31).
    num_frames : int
        LR instants per sequence (41: HR grids of 2, 10 and 20 all end on the
        last frame).
    hr_shape : (int, int)
        HR frame size of the synthetic sequences (LR is a quarter per axis).
    radiographs : Path or None
        Folder holding ``savu_i13_projections/`` (not shipped); default
        ``XFUSION_VALIDATION``; None or missing: skipped with a warning.
    radiograph_sequences : int
    methods : tuple of str
    plan : SweepPlan
    timing_lr_shape : (int, int) or None
        LR size of the speed comparison (paper 100×256); None: no timing.
    timing_network_frames, timing_repeats : int
    device : str
    user : UserInput or None
        Evaluate this recording only.
    """

    families: tuple[str, ...] = (
        "additive_manufacturing",
        "friction_stir",
        "fast_front",
    )
    seeds: tuple[int, ...] = (HELD_OUT_SEED + 1, HELD_OUT_SEED + 2, HELD_OUT_SEED + 3)
    num_frames: int = 41
    hr_shape: tuple[int, int] = (128, 192)
    radiographs: Path | None = field(default_factory=default_radiographs)
    radiograph_sequences: int = 2
    methods: tuple[str, ...] = METHODS
    plan: SweepPlan = field(default_factory=SweepPlan)
    timing_lr_shape: tuple[int, int] | None = (100, 256)
    timing_network_frames: int = 3
    timing_repeats: int = 3
    device: str = "cpu"
    user: UserInput | None = None

    def __post_init__(self) -> None:
        for method in self.methods:
            method_spec(method)  # an unknown name fails here, listing the choices

    def settings(self) -> dict[str, Any]:
        """Return the configuration as JSON-serialisable settings."""
        out = jsonable(dataclasses.asdict(self))
        if self.radiographs is not None:
            out["radiographs"] = shown_path(self.radiographs)
        h, w = (n // 4 for n in self.hr_shape)
        out["bayesian_k"] = num_clusters(h, w)
        out["scene_version"] = SCENE_VERSION
        return out


def quick_config(**overrides: Any) -> EvaluationConfig:
    """Return the ``--quick`` configuration (a few minutes on a 2-core CPU).

    One seed of the fast and the slow family, 21 frames of HR 64×96, one
    radiograph sequence cropped to the same size, and the timing on one run of
    two network frames; every sweep and figure as in the full run.
    """
    quick = EvaluationConfig(
        families=("additive_manufacturing", "friction_stir"),
        seeds=(HELD_OUT_SEED + 1,),
        num_frames=21,
        hr_shape=(64, 96),
        radiograph_sequences=1,
        timing_network_frames=2,
        timing_repeats=1,
    )
    return replace(quick, **overrides)


def jsonable(value: Any) -> Any:
    """Return ``value`` with paths as str, tuples as lists, NaN/inf as None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def fingerprint(config: EvaluationConfig) -> str:
    """Hash of what every cached run depends on besides its condition and weights.

    The weights are not in it: each run file names its method's weights
    (:meth:`~xfusion_bluesky.evaluation.sweeps.Evaluator.run_path`), so new
    weights of one network recompute only that network's runs.

    Parameters
    ----------
    config : EvaluationConfig

    Returns
    -------
    str
        12 hex digits; the name of the run's cache folder.
    """
    key: dict[str, Any] = {
        "protocol": PROTOCOL_VERSION,
        "frames": config.num_frames,
        "hr_shape": list(config.hr_shape),
        "scene_version": SCENE_VERSION,
        "metrics": "8-bit; ssim uniform 7x7",
        "radiographs": config.radiograph_sequences,
    }
    if config.user is not None:
        files = [config.user.lr, config.user.hr, config.user.truth]
        key["user"] = [
            [f, os.path.getsize(f), os.path.getmtime(f)] for f in files if f
        ] + [str(config.user.hr_index)]
    text = json.dumps(key, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
