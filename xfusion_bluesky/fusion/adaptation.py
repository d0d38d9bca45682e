"""Self-supervised adaptation: fine-tune a copy of the network on the run's own frames.

Every HR frame of a run is a true image of *this* sample at a known LR instant. The
LR frames around that instant are its LR window, and the neighbouring HR frames are
its HR frames before and after, so a run carries training windows of its own.
:func:`adapt_network` fine-tunes a copy of the network on them (same crops, flips
and Charbonnier loss as training), checks it on HR frames it held out, and keeps
the copy only where it helps there.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.nn import functional as F
from tqdm import tqdm

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.fusion.crops import augment, paired_crop
from xfusion_bluesky.fusion.losses import charbonnier_loss
from xfusion_bluesky.fusion.model.checkpoint import model_id
from xfusion_bluesky.fusion.model.edvr_stf import EDVR, SCALE
from xfusion_bluesky.fusion.stream import padding

__all__ = ["AdaptSettings", "AdaptationReport", "adapt_network"]

logger = logging.getLogger(__name__)

#: One window: LR frames (3, h, w), HR frames before/after (2, 4h, 4w), target (4h, 4w).
_Window = tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]


@dataclass(frozen=True)
class AdaptSettings:
    """How to adapt the network to one burst (the recipe a derived run records).

    Attributes
    ----------
    iterations : int
        Optimisation steps (fewer when ``time_budget_s`` runs out first).
    time_budget_s : float
        Wall-clock cap on the fine-tuning: it stops before a step that would
        overrun it at the mean pace so far. The held-out check comes on top.
    learning_rate : float
        Adam's step size, annealed to zero over ``iterations`` (cosine).
    batch_size : int
        Windows per step.
    lr_patch : int
        LR crop size in pixels (HR crops are 4×); frames smaller than it are used
        whole.
    holdout : int
        HR frames held out for the check; 0 picks about one in four of those
        with an HR frame on each side (at least one).
    min_gain_db : float
        The adapted copy is kept only when it beats the original on the held-out
        frames by more than this (PSNR, dB).
    seed : int
        Seeds the crops, flips and held-out choice: the same burst, settings and
        seed give the same weights on a CPU when the time budget is not what
        stopped the fine-tuning (GPU kernels may differ in the last bits).
    """

    # Chosen on held-out synthetic scenes (not the radiographs): 3e-4, about the
    # training rate, beat 5e-5 and 1e-3; 150 steps beat 60 (about 3 minutes on
    # one idle core of this CPU for 64×100 px LR frames).
    iterations: int = 150
    time_budget_s: float = 240.0
    learning_rate: float = 3e-4
    batch_size: int = 4
    lr_patch: int = 24
    holdout: int = 0
    min_gain_db: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("iterations", "batch_size", "lr_patch"):
            if getattr(self, name) < 1:
                raise InvalidInputError(
                    f"{name} must be >= 1; got {getattr(self, name)}"
                )
        if not self.learning_rate > 0 or self.time_budget_s < 0 or self.holdout < 0:
            raise InvalidInputError(
                "learning_rate must be > 0, time_budget_s and holdout >= 0; got "
                f"{self.learning_rate}, {self.time_budget_s}, {self.holdout}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as plain JSON values."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdaptSettings:
        """Build settings from :meth:`to_dict`'s output (unknown keys refused)."""
        return cls(**data)


@dataclass(frozen=True)
class AdaptationReport:
    """What one adaptation did, for the derived run's provenance.

    Attributes
    ----------
    settings : AdaptSettings
    kept : bool
        The adapted copy fused the burst (else the original network did).
    reason : str
        Why it was kept or not, in one line.
    iterations : int
        Steps actually taken.
    seconds : float
        Wall time of fine-tuning and check.
    train_hr, holdout_hr : list of int
        Indices into the HR stack of the training targets and the held-out frames.
    holdout_psnr_db, adapted_holdout_psnr_db : float or None
        PSNR on the held-out frames before / after (normalised [0, 1] scale).
    gain_db : float or None
        ``adapted_holdout_psnr_db − holdout_psnr_db``.
    base_model_id : str
        sha256 of the original weights.
    adapted_model_id : str or None
        sha256 of the adapted weights (None when none were trained).
    """

    settings: AdaptSettings
    kept: bool
    reason: str
    iterations: int = 0
    seconds: float = 0.0
    train_hr: list[int] = field(default_factory=list)
    holdout_hr: list[int] = field(default_factory=list)
    holdout_psnr_db: float | None = None
    adapted_holdout_psnr_db: float | None = None
    gain_db: float | None = None
    base_model_id: str = ""
    adapted_model_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the report as plain JSON values (settings under ``recipe``)."""
        data = asdict(self)
        data["recipe"] = data.pop("settings")
        return data


def adapt_network(
    network: EDVR,
    lr: NDArray[np.float32],
    hr: NDArray[np.float32],
    hr_index: NDArray[np.int64],
    *,
    settings: AdaptSettings,
    lr_separation: int,
    device: torch.device,
    progress: bool = False,
) -> tuple[EDVR, AdaptationReport]:
    """Fine-tune a copy of ``network`` on the run's own HR frames; keep it if it helps.

    Each HR frame k not held out is a training target at its LR instant ``i_k``:
    its window is the LR frames ``i_k − s, i_k, i_k + s`` (clamped) and the
    nearest other training HR frames before and after (where one side has none,
    the other side's nearest stands in). Crops, flips and loss are training's.
    Held-out HR frames are neither targets nor inputs; afterwards each is fused
    from its full-frame window (HR neighbours among all other HR frames, as
    inference has them) by the original and by the copy, and the copy is kept
    only when its pooled PSNR is higher by more than ``settings.min_gain_db``.

    Parameters
    ----------
    network : EDVR or EDVRSTF
        Never modified; LR-only EDVR ignores the HR frames.
    lr : ndarray, (T, h, w) float32
        LR frames in [0, 1].
    hr : ndarray, (K, 4h, 4w) float32
        HR frames in [0, 1].
    hr_index : ndarray, (K,) int
        Sorted LR frame index of each HR frame.
    settings : AdaptSettings
        The recipe.
    lr_separation : int
        s, as the fusion uses it.
    device : torch.device
        Where the copy is trained (and returned).
    progress : bool
        Show a tqdm bar of the steps on stderr.

    Returns
    -------
    network_used : EDVR
        The adapted copy (eval mode, on ``device``) when kept, else ``network``.
    report : AdaptationReport
        What was done and why. Too few HR frames is no error: the original
        network comes back with ``kept=False``.
    """
    start = time.perf_counter()
    index = np.asarray(hr_index, dtype=np.int64)
    holdout = _pick_holdout(index.size, settings.holdout, settings.seed)
    train = [k for k in range(index.size) if k not in holdout]
    report = AdaptationReport(
        settings,
        False,
        "",
        train_hr=train,
        holdout_hr=holdout,
        base_model_id=model_id(network),
    )
    if not holdout:
        reason = (
            "needs at least 3 HR frames (one held out between two others, which "
            f"train); got {index.size}: kept the original network"
        )
        return network, _finish(report, start, reason=reason)
    dtype = next(network.parameters()).dtype
    # Trained in float32 whatever the caller's dtype (Adam in float16 is fragile);
    # checked in the caller's dtype, as the fusion will run it.
    adapted = copy.deepcopy(network).to(device=device)
    checks = [
        _window(lr, hr, index, k, range(index.size), lr_separation) for k in holdout
    ]
    before = _holdout_psnr(adapted, checks, device)
    windows = [_window(lr, hr, index, k, train, lr_separation) for k in train]
    adapted.to(dtype=torch.float32).train()
    steps, bad_step = _fine_tune(adapted, windows, settings, device, progress)
    adapted.to(dtype=dtype).eval()
    if steps == 0 and bad_step is None:
        reason = "time budget spent before the first step: kept the original network"
        return network, _finish(report, start, reason=reason, holdout_psnr_db=before)
    adapted.model_id = model_id(adapted)
    after = _holdout_psnr(adapted, checks, device) if bad_step is None else math.nan
    gain = after - before
    kept = math.isfinite(gain) and gain > settings.min_gain_db
    if bad_step is not None:
        reason = f"loss not finite at step {bad_step + 1}: kept the original network"
    elif not math.isfinite(gain):
        reason = "held-out PSNR not finite: kept the original network"
    else:
        reason = (
            f"held-out gain {gain:+.2f} dB {'>' if kept else '<='} "
            f"{settings.min_gain_db:g} dB: kept the "
            f"{'adapted copy' if kept else 'original network'}"
        )
    report = _finish(
        report,
        start,
        kept=kept,
        reason=reason,
        iterations=steps,
        holdout_psnr_db=before,
        adapted_holdout_psnr_db=after,
        gain_db=gain,
        adapted_model_id=adapted.model_id,
    )
    logger.info("adaptation: %s (%d steps, %.1f s)", reason, steps, report.seconds)
    return (adapted if kept else network), report


def _finish(report: AdaptationReport, start: float, **changes: Any) -> AdaptationReport:
    """Return ``report`` with ``changes`` and the seconds since ``start``."""
    for name in ("holdout_psnr_db", "adapted_holdout_psnr_db", "gain_db"):
        if name in changes and not math.isfinite(changes[name]):
            changes[name] = None  # JSON has no inf or NaN
    return replace(report, seconds=time.perf_counter() - start, **changes)


def _pick_holdout(num_hr: int, holdout: int, seed: int) -> list[int]:
    """Return the held-out HR frames, spread evenly (seeded offset) over the interior.

    Only HR frames with another on each side qualify, so the first and last always
    train: ``holdout`` of them, or for 0 about one in four (at least one).
    """
    interior = np.arange(1, num_hr - 1)
    if interior.size == 0:
        return []
    count = min(holdout or max(1, round(interior.size / 4)), interior.size)
    offset = np.random.default_rng([seed, 0]).random()
    picks = np.floor((np.arange(count) + offset) * interior.size / count)
    return sorted(int(interior[int(p)]) for p in picks)


def _window(
    lr: NDArray[np.float32],
    hr: NDArray[np.float32],
    index: NDArray[np.int64],
    k: int,
    others: Iterable[int],
    lr_separation: int,
) -> _Window:
    """Return HR frame k's full-frame window; its HR frames come from ``others``."""
    i = int(index[k])
    rows = np.clip([i - lr_separation, i, i + lr_separation], 0, lr.shape[0] - 1)
    earlier = [j for j in others if j < k]
    later = [j for j in others if j > k]
    before = earlier[-1] if earlier else later[0]
    after = later[0] if later else earlier[-1]
    return lr[rows], hr[[before, after]], hr[k]


def _forward(
    network: EDVR,
    lr: NDArray[np.float32],
    hr: NDArray[np.float32],
    device: torch.device,
) -> torch.Tensor:
    """Fuse windows lr (b, 3, h, w), hr (b, 2, 4h, 4w) into (b, 4h, 4w).

    Pads to the network's multiple of 4 as the fusion stream does, and crops back.
    """
    b, _, h, w = lr.shape
    dtype = next(network.parameters()).dtype
    lr_t = torch.from_numpy(lr).to(device, dtype).reshape(b * 3, 1, h, w)
    hr_t = torch.from_numpy(hr).to(device, dtype).reshape(b * 2, 1, SCALE * h, -1)
    pad_h, pad_w, mode = padding(h, w, SCALE)
    if pad_h or pad_w:
        lr_t = F.pad(lr_t, (0, pad_w, 0, pad_h), mode=mode)
        hr_t = F.pad(hr_t, (0, SCALE * pad_w, 0, SCALE * pad_h), mode=mode)
    lr_t = lr_t.view(b, 3, 1, *lr_t.shape[-2:])
    hr_t = hr_t.view(b, 2, 1, *hr_t.shape[-2:])
    return network(lr_t, hr_t).fused[:, 0, : SCALE * h, : SCALE * w]


def _holdout_psnr(network: EDVR, checks: list[_Window], device: torch.device) -> float:
    """Return the PSNR (dB, range 1, fused clipped to it) of the pooled MSE."""
    network.eval()
    errors = []
    with torch.inference_mode():
        for lr, hr, target in checks:
            fused = _forward(network, lr[None], hr[None], device)[0]
            estimate = fused.float().clamp(0, 1).cpu().numpy().astype(np.float64)
            errors.append(np.mean((estimate - target.astype(np.float64)) ** 2))
    mse = float(np.mean(errors))
    return 10 * math.log10(1 / mse) if mse > 0 else math.inf


def _fine_tune(
    network: EDVR,
    windows: list[_Window],
    settings: AdaptSettings,
    device: torch.device,
    progress: bool,
) -> tuple[int, int | None]:
    """Train ``network`` in place; return (steps taken, step of a non-finite loss)."""
    rng = np.random.default_rng([settings.seed, 1])
    h, w = windows[0][0].shape[-2:]
    size = (min(settings.lr_patch, h), min(settings.lr_patch, w))
    optimiser = torch.optim.Adam(
        network.parameters(), lr=settings.learning_rate, betas=(0.9, 0.99)
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimiser, T_max=settings.iterations, eta_min=0.0
    )
    order: list[int] = []
    bar = tqdm(
        total=settings.iterations, desc="adapt", unit="step", disable=not progress
    )
    start, step = time.perf_counter(), 0
    with bar:
        while step < settings.iterations:
            elapsed = time.perf_counter() - start
            # Stop before a step that would overrun the budget at the mean pace.
            if elapsed + (elapsed / step if step else 0.0) >= settings.time_budget_s:
                break
            batch = []
            for _ in range(settings.batch_size):
                order = order or rng.permutation(len(windows)).tolist()
                batch.append(_crop(windows[order.pop()], size, rng))
            lr, hr, target = (np.stack(part) for part in zip(*batch, strict=True))
            fused = _forward(network, lr, hr, device)
            loss = charbonnier_loss(fused, torch.from_numpy(target).to(fused))
            if not torch.isfinite(loss):
                return step, step
            optimiser.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            schedule.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3g}", refresh=False)
    return step, None


def _crop(window: _Window, size: tuple[int, int], rng: np.random.Generator) -> _Window:
    """Return a random paired crop of ``window``, randomly flipped (training's code)."""
    lr, hr, target = window
    top = int(rng.integers(0, lr.shape[-2] - size[0] + 1))
    left = int(rng.integers(0, lr.shape[-1] - size[1] + 1))
    lr, stack = paired_crop(lr, np.concatenate([hr, target[None]]), top, left, size)
    # A transposed non-square crop would not stack with the others.
    lr, stack = augment((lr, stack), rng, transpose=size[0] == size[1])
    return lr, stack[:2], stack[2]
