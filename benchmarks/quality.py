"""Fusion quality of EDVR-STF against EDVR and bicubic, checked against targets.

Fuses held-out synthetic x-ray sequences and the real Diamond I13-2 radiographs
shipped in ``data/`` (skipped with a note when absent) with the three methods
and prints, per condition, mean PSNR / SSIM / AAD on the frames with no HR frame,
the Spearman ρ of the normalised attention against the offset from the preceding
HR frame, and every target with PASS/FAIL. Writes every number, the seeds and
the model ids to JSON for the model card. Pooling, targets and tables:
``benchmarks/quality_report.py``.

    python benchmarks/quality.py                          # shipped models/*.pth
    python benchmarks/quality.py --quick                  # < 2 min smoke run
    python benchmarks/quality.py --stf PATH --edvr PATH --out quality.json

Notes
-----
- Ground truth: ``generate_scene(family, num_frames=41, height=128, width=192)``
  for every x-ray family (``XRAY_FAMILIES``), seeds ``2**31 + 1 … 2**31 + 3``.
  Training draws its scene seeds with ``rng.integers(2**31)``
  (``training.dataset.make_window``), so seeds from ``2**31`` on never occur in
  training. ``--quick``: one seed, HR 64×96.
- LR: 4×4 mean binning of the truth; noise none, or Poisson with ``b0`` from
  ``b0_for_psnr(30, lr, seed=<sequence seed>)`` (LR PSNR 30 dB on that sequence;
  the achieved value is stored). LR separation 1.
- HR frames on the paper's grid ``t_a = P·⌊t/P⌋``: ``hr_index = 0, P, 2P, … < T``
  for HR separations P = 10 and 20; the last frame is an HR frame only if it falls
  on the grid (T = 41 does for both, so every scored frame lies between two HR
  frames).
- ``fuse(..., normalize=False)``: training feeds the scenes' own [0, 1]
  intensities to the network without any percentile stretch
  (``training.dataset.make_window``), so this is the input distribution the
  weights learned; ``normalize=True`` would stretch each sequence and clip its
  extreme 0.35 % before the metrics see it.
- Metrics: float mode (no quantisation, data range 1), SSIM with the Gaussian
  window (Wang et al. 2004, ``metrics.ssim(window="gaussian")``), on frames with
  no HR frame (``hr_at_reference`` False), pooled over the sequences of one
  condition; PSNR averages skip +inf frames and count them.
- Attention: EDVR-STF's normalised backward/forward scores (spec ``edvr_stf.md``
  §5) against the offset ``t − a`` from the preceding HR frame, pooled over the
  sequences of one condition; frames whose HR frame before or after is a stand-in
  (past the last HR frame) and NaN scores (normaliser ≤ 0) are left out and
  counted.
- Real radiographs (validation only, never training data):
  ``(raw − dark)/(flat − dark)`` (dead pixels filled with their 3×3 neighbours'
  median), cropped to 132×160, clipped at the 0.35 / 99.65 percentiles of the
  sequence and min-max scaled to [0, 1] (the paper's pre-processing): that is
  the truth, binned as above. All 91 frames (``--quick``: 41); with P = 20 the
  frames after 80 have no HR frame after them and are scored all the same.
- Targets are gates on the synthetic set and reported for the radiographs:
  EDVR-STF ≥ bicubic + 4 dB and ≥ EDVR + 1 dB (PSNR, HR separation 10, no
  noise); EDVR-STF's PSNR above both at every condition; ρ_backward ≤ −0.5 and
  ρ_forward > 0 at every condition.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
from quality_data import (
    CONDITIONS,
    FULL,
    LR_SEPARATION,
    NOISE_DB,
    QUICK,
    SCALE,
    SSIM_WINDOW,
    Evaluator,
    Sequence,
    Size,
    evaluate_condition,
    radiograph_sequences,
    synthetic_sequences,
)
from quality_report import HR_SEPARATIONS, METHODS, dataset_report, targets
from tqdm import tqdm

from xfusion_bluesky import __version__
from xfusion_bluesky.evaluation.config import jsonable
from xfusion_bluesky.evaluation.datasets import (
    RADIOGRAPH_FILE,
    default_radiographs,
    shown_path,
)
from xfusion_bluesky.fusion.methods import method_spec
from xfusion_bluesky.fusion.model.loader import load_network
from xfusion_bluesky.synthetic.scene import XRAY_FAMILIES

REPO = Path(__file__).resolve().parents[1]
#: The real validation radiographs (not shipped): ``XFUSION_VALIDATION``.
RADIOGRAPHS = (default_radiographs() or Path("XFUSION_VALIDATION unset")) / (
    RADIOGRAPH_FILE.parent
)
#: The option that points a network method at other weights.
WEIGHT_FLAGS = {"edvr_stf": "stf", "edvr": "edvr"}


def load_models(paths: dict[str, Path]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load each network once through the cached loader; return them and their ids."""
    models, info = {}, {}
    for method, path in paths.items():
        if not path.is_file():
            raise SystemExit(
                f"no {method} weights at {path}: train them (`xfusion-bluesky "
                f"train`) or pass --{WEIGHT_FLAGS[method]} PATH"
            )
        network, loaded = load_network(method, path)
        models[method] = network
        info[method] = {
            "path": shown_path(path),
            "model_id": loaded["sha256"],
            "file_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "class": type(network).__name__,
            "config": dict(network.config),
            "parameters": sum(p.numel() for p in network.parameters()),
        }
    return models, info


def settings(size: Size) -> dict[str, Any]:
    """Return the protocol settings recorded in the JSON."""
    return {
        "frames": size.frames,
        "hr_shape": [size.height, size.width],
        "lr_shape": [size.height // SCALE, size.width // SCALE],
        "families": list(XRAY_FAMILIES),
        "seeds": list(size.seeds),
        "seed_rule": "scene seeds >= 2**31; training draws them below 2**31",
        "radiograph_frames": size.radiograph_frames,
        "binning": SCALE,
        "noise_db": list(NOISE_DB),
        "hr_separation": list(HR_SEPARATIONS),
        "hr_grid": "hr_index = 0, P, 2P, ... < T",
        "lr_separation": LR_SEPARATION,
        "normalize": False,
        "metrics": "float mode, data range 1, frames with no HR frame",
        "ssim_window": SSIM_WINDOW,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    parser.add_argument("--stf", type=Path, help="EDVR-STF weights (.pth)")
    parser.add_argument("--edvr", type=Path, help="LR-only EDVR weights (.pth)")
    parser.add_argument("--quick", action="store_true", help="smaller, < 2 min")
    parser.add_argument("--out", type=Path, help="write every number here (JSON)")
    return parser.parse_args(argv)


def json_report(
    args: argparse.Namespace,
    size: Size,
    model_info: dict[str, Any],
    datasets: dict[str, list[Sequence]],
    results: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    """Return every number, setting, seed and model id as one JSON-able dict."""
    report: dict[str, Any] = {
        "script": "benchmarks/quality.py",
        "quick": args.quick,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "versions": {"xfusion_bluesky": __version__, "torch": torch.__version__},
        "settings": settings(size),
        "models": model_info,
        "datasets": {"radiographs": {"skipped": f"{RADIOGRAPHS} missing"}},
    }
    for name, sequences in datasets.items():
        report["datasets"][name] = {
            "sequences": [
                {"name": s.name, "shape": list(s.truth.shape), **s.source}
                for s in sequences
            ],
            "conditions": results[name],
            "targets": targets(results[name]),
            "gate": name == "synthetic",
        }
    return jsonable(report)


def run(
    evaluator: Evaluator, datasets: dict[str, list[Sequence]]
) -> dict[str, list[dict[str, Any]]]:
    """Evaluate every (dataset, condition), with a progress bar over them."""
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in datasets}
    jobs = [(name, cond) for name in datasets for cond in CONDITIONS]
    for name, cond in tqdm(jobs, desc="conditions", unit="cond", file=sys.stderr):
        results[name].append(evaluate_condition(evaluator, datasets[name], cond))
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the tables, write the JSON."""
    args = parse_args(argv)
    # Errors only: the per-call warnings (pure-PyTorch deform conv, NaN attention
    # counts) would repeat for every fuse() call; the tables count NaN scores.
    logging.basicConfig(
        level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s"
    )
    size = QUICK if args.quick else FULL
    models, model_info = load_models(
        {
            method: getattr(args, WEIGHT_FLAGS[method])
            or args.models_dir / str(method_spec(method).default_weights)
            for method in METHODS
            if method_spec(method).trainable
        }
    )
    datasets = {"synthetic": synthetic_sequences(size)}
    radiographs = radiograph_sequences(size, RADIOGRAPHS)
    if radiographs is None:
        print(f"note: {RADIOGRAPHS} not found: real radiographs skipped\n")
    else:
        datasets["radiographs"] = radiographs
    start = time.perf_counter()
    results = run(Evaluator(models), datasets)
    runtime_s = time.perf_counter() - start
    print(f"## Fusion quality (SSIM: Gaussian window; float mode; {runtime_s:.0f} s)\n")
    for name, conditions in results.items():
        print(dataset_report(title(name, size), conditions, gate=name == "synthetic"))
    if args.out:
        report = json_report(args, size, model_info, datasets, results)
        report["runtime_s"] = runtime_s
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


def title(name: str, size: Size) -> str:
    """Return the heading of one dataset's section."""
    if name == "radiographs":
        return "Real radiographs, Diamond I13-2 (validation only, never trained on)"
    sequences = len(XRAY_FAMILIES) * len(size.seeds)
    return (
        f"Synthetic x-ray scenes ({sequences} held-out sequences, {size.frames} "
        f"frames, LR {size.height // SCALE}×{size.width // SCALE} → HR "
        f"{size.height}×{size.width})"
    )


if __name__ == "__main__":
    sys.exit(main())
