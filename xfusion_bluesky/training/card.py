"""Ship a trained model: weights under ``models/`` and a JSON model card beside them.

The card says what a user needs to trust (or distrust) the weights: the network
configuration and size, the sha256 that provenance records carry, what it was
trained on (scene generator version, seeds, sampling), for how long on what
hardware, and the validation numbers of ``benchmarks/quality.py``.
"""

from __future__ import annotations

import csv
import json
import os
import platform
from pathlib import Path
from typing import Any

import torch

from xfusion_bluesky.fusion.model import save_model
from xfusion_bluesky.fusion.model.loader import load_network
from xfusion_bluesky.synthetic.scene import SCENE_VERSION
from xfusion_bluesky.training.config import TrainConfig
from xfusion_bluesky.training.dataset import WindowSampling


def _wall_time_s(log_path: Path) -> float:
    """Sum of the per-iteration seconds a run logged (resumed runs included)."""
    with log_path.open() as handle:
        return sum(float(row["seconds"]) for row in csv.DictReader(handle))


def _sampling_of(recipe: dict[str, Any]) -> WindowSampling:
    """Return the window sampling of a run (older recipes: see ``from_dict``)."""
    return TrainConfig.from_dict(recipe).sampling((), 0)


def export_model(
    run_dir: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    quality: dict[str, Any] | None = None,
    hardware: str | None = None,
) -> Path:
    """Copy a finished run's weights to ``dest`` and write ``dest`` with ``.json``.

    Parameters
    ----------
    run_dir : path
        A finished :func:`~xfusion_bluesky.training.trainer.train` folder.
    dest : path
        Where the shipped ``.pth`` goes, e.g. ``models/edvr_stf_small.pth``.
    quality : dict, optional
        Validation metrics (the JSON of ``benchmarks/quality.py``) for the card.
    hardware : str, optional
        Where it was trained; defaults to this machine's CPU description.

    Returns
    -------
    Path
        The card's path.
    """
    run = Path(run_dir)
    final = torch.load(run / "final.pth", map_location="cpu", weights_only=False)
    training = final["training"]
    model = load_network(training["method"], run / "final.pth").network
    if model is None:  # a final.pth holds a network: a method without one is wrong
        raise ValueError(f"{run / 'final.pth'} names method {training['method']!r}")
    dest_path = Path(dest)
    model_id = save_model(model, dest_path)
    card = {
        "name": dest_path.stem,
        "architecture": type(model).__name__,
        "config": model.config,
        "parameters": sum(p.numel() for p in model.parameters()),
        # A head-only run (edvr_stf_detail) trained only the HR detail head.
        "trained_parameters": sum(
            p.numel()
            for name, p in model.named_parameters()
            if not training.get("train_head_only") or name.startswith("detail.")
        ),
        "sha256": model_id,
        "file_bytes": dest_path.stat().st_size,
        "training": {
            "recipe": training,
            "iterations": final["iterations"],
            "wall_time_s": round(_wall_time_s(run / "log.csv")),
            "hardware": hardware
            or f"{platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} cores, torch {torch.__version__}",
            "data": {
                "generator": "xfusion_bluesky.synthetic.scene",
                "scene_version": SCENE_VERSION,
                "stream_seeds": [
                    training["seed"] + i for i in range(len(training["stages"]))
                ],
                "sampling": {
                    k: v
                    for k, v in _sampling_of(training).__dict__.items()
                    if k not in ("families", "seed")
                },
            },
        },
        "validation": quality or {},
    }
    card_path = dest_path.with_suffix(".json")
    card_path.write_text(json.dumps(card, indent=2, default=str) + "\n")
    return card_path
