"""Resumable two-stage training: pretrain on generic video, fine-tune on x-ray scenes.

Follows the authors' recipe (spec §8): Charbonnier loss, Adam (0.9, 0.99), cosine
annealing to 1e-7 within each stage, a fresh optimiser for the fine-tuning stage.
A run lives in one folder: ``checkpoint.pth`` (weights, optimiser, scheduler and
iteration, written atomically), ``log.csv``, ``loss.png`` and ``final.pth``. Killing
the process and calling :func:`train` again on the same folder continues where it
stopped and gives the same weights as an uninterrupted run, because every batch is
a pure function of the seed and the iteration.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from xfusion_bluesky.fusion.methods import METHODS, MethodSpec
from xfusion_bluesky.fusion.model import EDVR, save_model
from xfusion_bluesky.fusion.model.edvr_stf import FusionOutput
from xfusion_bluesky.metrics import mean_finite, psnr
from xfusion_bluesky.training.config import Stage, TrainConfig, build_model
from xfusion_bluesky.training.dataset import (
    TrainingWindow,
    WindowDataset,
    WindowSampling,
    collate_windows,
    make_window,
)
from xfusion_bluesky.training.losses import attention_loss, charbonnier_loss

# Stage, TrainConfig and build_model live in training.config; they are imported
# from here too, as before the split.
__all__ = [
    "VALIDATION_SEED",
    "Stage",
    "TrainConfig",
    "build_model",
    "plot_log",
    "train",
    "validate",
    "validation_windows",
]

logger = logging.getLogger(__name__)

#: Seed of the validation windows: disjoint from every training stream seed.
VALIDATION_SEED = 999_983

_LOG_FIELDS = (
    "iteration",
    "stage",
    "loss",
    "learning_rate",
    "seconds",
    "val_psnr_db",
    "val_bicubic_psnr_db",
    "attention_loss",
)


def _spec_of(model: EDVR) -> MethodSpec:
    """Return the registered method whose network class ``model`` is."""
    for spec in METHODS.values():
        if spec.network is type(model):
            return spec
    raise TypeError(f"{type(model).__name__} is no registered method's network")


def _forward(model: EDVR, batch: TrainingWindow) -> FusionOutput:
    """Run the network on a batch; a method without HR frames gets only the LR."""
    if _spec_of(model).uses_hr:
        return model(batch.lr, batch.hr)
    return model(batch.lr)


def _step(
    model: EDVR,
    optimiser: torch.optim.Optimizer,
    batch: TrainingWindow,
    device: str,
    attention_weight: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step on one batch; return the total and attention losses."""
    on_device = TrainingWindow(
        lr=batch.lr.to(device), hr=batch.hr.to(device), target=batch.target.to(device)
    )
    out = _forward(model, on_device)
    loss = charbonnier_loss(out.fused, on_device.target)
    attention_term = torch.zeros((), device=device)
    # The term scores the HR frames: methods without them have nothing to learn.
    if attention_weight > 0 and _spec_of(model).uses_hr:
        attention_term = attention_loss(out.attention, on_device.hr, on_device.target)
        loss = loss + attention_weight * attention_term
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return loss.detach(), attention_term.detach()


def _stage_at(config: TrainConfig, iteration: int) -> tuple[int, int]:
    """Return (stage index, iteration within that stage) for a global iteration."""
    start = 0
    for index, stage in enumerate(config.stages):
        if iteration < start + stage.iterations:
            return index, iteration - start
        start += stage.iterations
    return len(config.stages), 0


def _optimiser(
    model: EDVR, stage: Stage, eta_min: float
) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.CosineAnnealingLR]:
    # Frozen weights (a head-only run) get no optimiser state.
    trained = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(trained, lr=stage.learning_rate, betas=(0.9, 0.99))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimiser, T_max=stage.iterations, eta_min=eta_min
    )
    return optimiser, schedule


def validation_windows(config: TrainConfig) -> list[TrainingWindow]:
    """Held-out x-ray windows (fixed seed, never drawn in training)."""
    sampling = WindowSampling(
        families=config.stages[-1].families,
        lr_patch=config.lr_patch,
        seed=VALIDATION_SEED,
    )
    return [make_window(i, sampling) for i in range(config.validation_windows)]


@torch.inference_mode()
def validate(model: EDVR | None, windows: list[TrainingWindow]) -> float:
    """Return the mean PSNR (dB, data range 1) on ``windows``; None: bicubic."""
    batch = collate_windows(windows)
    if model is None:
        fused = F.interpolate(
            batch.lr[:, 1], scale_factor=4, mode="bicubic", align_corners=False
        )
    else:
        device = next(model.parameters()).device
        model.eval()
        on_device = TrainingWindow(
            batch.lr.to(device), batch.hr.to(device), batch.target
        )
        fused = _forward(model, on_device).fused.cpu()
        model.train()
    values = psnr(fused.clamp(0, 1)[:, 0].numpy(), batch.target[:, 0].numpy())
    return mean_finite(values)[0]


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically, so a run killed mid-write keeps its previous checkpoint."""
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _append_log(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=_LOG_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def train(
    config: TrainConfig,
    out_dir: str | os.PathLike[str],
    *,
    device: str = "cpu",
    progress: bool = True,
    stop_after: int | None = None,
) -> Path:
    """Train (or resume training) into ``out_dir``; return the final weights' path.

    Parameters
    ----------
    config : TrainConfig
        Must equal the config stored in an existing checkpoint there.
    out_dir : path
        Run folder; created if missing.
    device : str
        ``"cpu"`` or ``"cuda"``.
    progress : bool
        Show a tqdm bar with loss and it/s.
    stop_after : int, optional
        Stop (with a checkpoint) after this global iteration — for tests and for
        splitting a long run over sessions.

    Returns
    -------
    Path
        ``out_dir/final.pth`` once all stages are done, else the checkpoint.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path, log_path = out / "checkpoint.pth", out / "log.csv"
    model = build_model(config).to(device)
    iteration = 0
    state: dict[str, Any] | None = None
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        if TrainConfig.from_dict(state["config"]) != config:
            raise ValueError(
                f"{ckpt_path} was written by a different config; use a new out_dir "
                "or delete the checkpoint"
            )
        model.load_state_dict(state["params"])
        iteration = int(state["iteration"])
        logger.info("resuming %s at iteration %d", out, iteration)
    end = min(config.total_iterations, stop_after or config.total_iterations)
    windows = validation_windows(config)
    bicubic_db = f"{validate(None, windows):.3f}"
    model.train()
    bar = tqdm(total=end, initial=iteration, disable=not progress, unit="it")
    while iteration < end:
        stage_index, local = _stage_at(config, iteration)
        stage = config.stages[stage_index]
        optimiser, schedule = _optimiser(model, stage, config.eta_min)
        if state is not None and state["stage"] == stage_index and local > 0:
            optimiser.load_state_dict(state["optimiser"])
            schedule.load_state_dict(state["schedule"])
        sampling = config.sampling(stage.families, config.seed + stage_index)
        stage_end = min(stage.iterations, local + end - iteration)
        loader = DataLoader(
            WindowDataset(sampling, stage.iterations * config.batch_size),
            batch_size=config.batch_size,
            sampler=range(local * config.batch_size, stage_end * config.batch_size),
            collate_fn=collate_windows,
            num_workers=config.num_workers,
        )
        bar.set_description(stage.name)
        tick = time.perf_counter()
        for batch in loader:
            loss, attention_term = _step(
                model, optimiser, batch, device, config.attention_loss_weight
            )
            schedule.step()
            iteration += 1
            local += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4g}")
            row: dict[str, Any] = {
                "iteration": iteration,
                "stage": stage.name,
                "loss": f"{loss.item():.6g}",
                "learning_rate": f"{schedule.get_last_lr()[0]:.4g}",
                "seconds": f"{time.perf_counter() - tick:.3f}",
                "val_psnr_db": "",
                "val_bicubic_psnr_db": "",
                "attention_loss": f"{attention_term.item():.4g}",
            }
            tick = time.perf_counter()
            if iteration % config.validate_every == 0 or iteration == end:
                row["val_psnr_db"] = f"{validate(model, windows):.3f}"
                row["val_bicubic_psnr_db"] = bicubic_db
                logger.info("iteration %d: %s dB", iteration, row["val_psnr_db"])
            _append_log(log_path, row)
            if (
                iteration % config.checkpoint_every == 0
                or iteration == end
                or local == stage.iterations
            ):
                state = {
                    "params": model.state_dict(),
                    "optimiser": optimiser.state_dict(),
                    "schedule": schedule.state_dict(),
                    "iteration": iteration,
                    "stage": stage_index,
                    "config": config.to_dict(),
                }
                _save_checkpoint(ckpt_path, state)
    bar.close()
    plot_log(log_path, out / "loss.png")
    if iteration < config.total_iterations:
        return ckpt_path
    final = out / "final.pth"
    save_model(model, final, training=config.to_dict(), iterations=iteration)
    return final


def plot_log(log_path: Path, png_path: Path) -> None:
    """Plot the training loss (smoothed) and validation PSNR of a run to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with log_path.open() as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return
    its = np.array([int(r["iteration"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    window = max(1, len(loss) // 50)
    smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax_loss.semilogy(its, loss, alpha=0.3, label="per batch")
    ax_loss.semilogy(its[window - 1 :], smooth, label=f"mean of {window}")
    ax_loss.set(xlabel="iteration", ylabel="Charbonnier loss (sum)", title="training")
    ax_loss.legend()
    val = [
        (int(r["iteration"]), float(r["val_psnr_db"])) for r in rows if r["val_psnr_db"]
    ]
    # (iteration, dB) pairs of the rows where validation ran
    if val:
        ax_val.plot(*zip(*val, strict=True), marker="o", label="model")
        bicubic = float(
            next(r["val_bicubic_psnr_db"] for r in rows if r["val_psnr_db"])
        )
        ax_val.axhline(bicubic, color="gray", linestyle="--", label="bicubic")
        ax_val.legend()
    ax_val.set(xlabel="iteration", ylabel="PSNR (dB)", title="validation, held out")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
