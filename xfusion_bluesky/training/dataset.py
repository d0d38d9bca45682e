"""Training windows generated on the fly: random separations, noise, crops, flips.

Every sample is a pure function of ``(seed, index)``, so a DataLoader with several
workers yields the same stream in the same order, and a resumed run sees exactly the
batches an uninterrupted one would have (spec §7.5 for the sampling rules).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from xfusion_bluesky.fusion.crops import augment, paired_crop
from xfusion_bluesky.synthetic.degradation import add_poisson_noise, bin_frames
from xfusion_bluesky.synthetic.scene import (
    FAMILY_SPECS,
    HELD_OUT_FAMILIES,
    generate_scene,
)

# paired_crop and augment live in fusion.crops, where per-run adaptation crops the
# same way; they stay importable from here for make_window's earlier callers.

SCALE = 4


@dataclass(frozen=True)
class WindowSampling:
    """How training windows are drawn (defaults follow the paper, spec §7.5).

    Attributes
    ----------
    families : tuple of str
        Scene families to draw from (uniformly).
    lr_patch : int
        LR crop size in pixels; the HR crop is 4× larger and sits exactly over it.
    render_margin : int
        Extra LR pixels rendered around the crop, so crops vary in position.
    max_lr_separation : int
        LR separation drawn uniformly from 1..this (paper: 1–3).
    max_hr_separation : int
        Distance from the reference to each HR frame, in LR frame periods, drawn
        independently from 1..this (paper: ×1–20).
    p_hr_at_reference : float
        Probability that the HR frame "before" is at the reference instant itself,
        a case every real acquisition has (HR frames fall on LR frames).
    p_far_hr : float
        Probability that one of the two HR frames (either, at random) is moved
        to a distance drawn from ``far_hr_separation`` instead. The paper's 1–20
        stops short of the beamline's own ratio: an HPV-X2 at 5 MHz beside a
        TMX7510 at 76 kHz gives an HR separation of ~66 LR frames. 0 keeps the
        paper's rule (and the exact stream of earlier runs).
    far_hr_separation : tuple of int
        Inclusive range of those far distances, in LR frame periods.
    p_hr_decoy : float
        Probability that one of the two HR frames shows another scene of the same
        family (another seed, same instant and look), as a mistimed or foreign
        HS frame would: the network can only use it by ignoring it, which is
        what TSA's temporal gate is for. 0: never (earlier runs' stream).
    frame_step_range : tuple of float
        The scene time per LR frame is drawn log-uniformly in this range: the same
        scene family then moves slowly or fast, as with different camera rates.
    log10_b0_range : tuple of float
        Poisson noise on LR frames with ``log10 b0 ~ U[lo, hi]`` (paper: 1–7).
    vary_scene : bool
        Draw each sample's feature size, density, blur and fringe strength at
        random (see :func:`draw_scene_params`), so the network does not learn one
        look of each family.
    seed : int
        Stream seed; sample ``i`` depends only on ``(seed, i)``.
    """

    families: tuple[str, ...]
    lr_patch: int = 32
    render_margin: int = 4
    max_lr_separation: int = 3
    max_hr_separation: int = 20
    p_hr_at_reference: float = 0.05
    p_far_hr: float = 0.0
    far_hr_separation: tuple[int, int] = (21, 66)
    p_hr_decoy: float = 0.0
    frame_step_range: tuple[float, float] = (0.25, 2.0)
    log10_b0_range: tuple[float, float] = (1.0, 7.0)
    vary_scene: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        held_out = sorted(set(self.families) & set(HELD_OUT_FAMILIES))
        if held_out:
            # They measure generality on scenes no weights saw (docs/quality.md).
            raise ValueError(
                f"scene families {held_out} are held out of training "
                "(synthetic.scene.HELD_OUT_FAMILIES)"
            )
        for name in ("p_hr_at_reference", "p_far_hr", "p_hr_decoy"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1]; got {value}")
        if self.max_hr_separation < 1:
            raise ValueError(
                "max_hr_separation must be >= 1 LR frame period; got "
                f"{self.max_hr_separation}"
            )
        low, high = self.far_hr_separation
        if not 1 <= low <= high:
            raise ValueError(
                "far_hr_separation must be (low, high) LR frame periods with "
                f"1 <= low <= high; got {self.far_hr_separation}"
            )


@dataclass(frozen=True)
class TrainingWindow:
    """One sample: LR (3, 1, h, w), HR (2, 1, 4h, 4w), target (1, 4h, 4w), float32."""

    lr: torch.Tensor
    hr: torch.Tensor
    target: torch.Tensor


def draw_times(
    rng: np.random.Generator,
    sampling: WindowSampling,
    options_rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Return the scene times of [LR t−s, LR t, LR t+s, HR before, HR after, truth].

    Times are in scene frames; the reference instant is at the window's centre.
    ``options_rng`` draws the far-HR option (default: ``rng``).
    """
    s = int(rng.integers(1, sampling.max_lr_separation + 1))
    before = int(rng.integers(1, sampling.max_hr_separation + 1))
    if rng.random() < sampling.p_hr_at_reference:
        before = 0
    after = int(rng.integers(1, sampling.max_hr_separation + 1))
    options = rng if options_rng is None else options_rng
    if sampling.p_far_hr > 0 and options.random() < sampling.p_far_hr:
        low, high = sampling.far_hr_separation
        far = int(options.integers(low, high + 1))
        if options.random() < 0.5:
            before = far
        else:
            after = far
    lo, hi = np.log(sampling.frame_step_range)
    step = float(np.exp(rng.uniform(lo, hi)))
    t0 = float(max(s, before)) * step
    offsets = np.array([-s, 0, s, -before, after, 0], dtype=np.float64)
    return t0 + offsets * step


#: Ranges drawn by :func:`draw_scene_params`: (parameter, low, high, log-uniform).
_SCENE_VARIATION = (
    ("zoom", 0.6, 2.0, True),
    ("density", 0.5, 1.5, False),
    ("blur_px", 0.3, 1.2, False),
    ("fringe", 0.0, 0.6, False),
)


def draw_scene_params(family: str, rng: np.random.Generator) -> dict[str, float]:
    """Draw the varied scene parameters that ``family`` accepts."""
    accepted = FAMILY_SPECS[family].parameters
    params = {}
    for name, low, high, log in _SCENE_VARIATION:
        if name in accepted:
            value = (
                np.exp(rng.uniform(np.log(low), np.log(high)))
                if log
                else rng.uniform(low, high)
            )
            params[name] = float(value)
    return params


def make_window(index: int, sampling: WindowSampling) -> TrainingWindow:
    """Generate training sample ``index`` of the stream defined by ``sampling``."""
    rng = np.random.default_rng([sampling.seed, index])
    # The far-HR and decoy options draw from a generator of their own, so that
    # switching them on changes nothing else in a sample (nor in earlier streams).
    options_rng = np.random.default_rng([sampling.seed, index, 1])
    family = sampling.families[int(rng.integers(len(sampling.families)))]
    times = draw_times(rng, sampling, options_rng)
    params: dict[str, Any] = (
        draw_scene_params(family, rng) if sampling.vary_scene else {}
    )
    size = sampling.lr_patch + 2 * sampling.render_margin
    hr_video = generate_scene(
        family,
        times=times,
        height=SCALE * size,
        width=SCALE * size,
        seed=int(rng.integers(2**31)),
        **params,
    )  # (6, 4·size, 4·size): 3 LR instants, 2 HR frames, the truth
    if sampling.p_hr_decoy > 0 and options_rng.random() < sampling.p_hr_decoy:
        slot = 3 + int(options_rng.integers(2))
        hr_video[slot] = generate_scene(
            family,
            times=times[slot : slot + 1],
            height=SCALE * size,
            width=SCALE * size,
            seed=int(options_rng.integers(2**31)),
            **params,
        )[0]
    lr = bin_frames(hr_video[:3], SCALE)
    b0 = 10 ** rng.uniform(*sampling.log10_b0_range)
    lr = add_poisson_noise(lr, b0, rng)
    top, left = rng.integers(0, 2 * sampling.render_margin + 1, size=2)
    lr, hr = paired_crop(lr, hr_video[3:], int(top), int(left), sampling.lr_patch)
    lr, hr = augment((lr, hr), rng)
    return TrainingWindow(
        lr=torch.from_numpy(lr).unsqueeze(1),
        hr=torch.from_numpy(hr[:2]).unsqueeze(1),
        target=torch.from_numpy(hr[2:3]),
    )


class WindowDataset(Dataset[TrainingWindow]):
    """Map-style view of the infinite window stream: item ``i`` is sample ``i``."""

    def __init__(self, sampling: WindowSampling, length: int) -> None:
        self.sampling = sampling
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> TrainingWindow:
        return make_window(index, self.sampling)


def collate_windows(batch: list[TrainingWindow]) -> TrainingWindow:
    """Stack windows into a batch: lr (b, 3, 1, h, w), hr (b, 2, 1, H, W), target."""
    return TrainingWindow(
        lr=torch.stack([w.lr for w in batch]),
        hr=torch.stack([w.hr for w in batch]),
        target=torch.stack([w.target for w in batch]),
    )
