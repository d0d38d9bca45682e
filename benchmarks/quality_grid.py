"""Quality targets on scenes no training saw: every fusion method, across the grid.

Fuses held-out sequences with every method of the registry
(``xfusion_bluesky.fusion.METHODS``; a network method whose weights are missing
is skipped with a note) and, optionally, the default method with self-supervised
adaptation (``fuse(..., adapt=AdaptSettings())``), across LR noise (none, 40, 30,
20 dB LR PSNR) × HR every (2, 10, 20 LR frames, and "ends": HR frames at the
first and the last frame only) at LR separation 1. Prints, per dataset, mean
PSNR / SSIM on the frames without an HR frame, the attention ρ, and every target
with PASS/FAIL; writes every number to JSON (``--out``).

    python benchmarks/quality_grid.py --radiographs DIR --no-adapt --out grid.json
    python benchmarks/quality_grid.py --quick --no-adapt          # < 2 min smoke run
    python benchmarks/quality_grid.py --tables grid.json          # its tables again

Notes
-----
- Datasets: ``held_out``: the scene families no training draws
  (``synthetic.scene.HELD_OUT_FAMILIES``); ``seen``: the x-ray families the
  weights were fine-tuned on (``XRAY_FAMILIES``), for reference. Seeds from
  ``2**31`` on: training draws scene seeds below ``2**31``. ``radiographs``: the
  real Diamond I13-2 radiographs under ``--radiographs DIR`` or
  ``$XFUSION_VALIDATION`` (``DIR/savu_i13_projections/...npz``), pre-processed
  as ``benchmarks/quality.py`` does; skipped with a note when absent.
- LR: 4×4 mean binning of the truth, Poisson noise calibrated per sequence to the
  LR PSNR of the condition (``quality_data.degrade_lr``; the achieved value is
  stored). HR frames at ``0, P, 2P, … < T``, or at ``0`` and ``T − 1`` ("ends").
- ``fuse(..., normalize=False)``: the truth is already in [0, 1] (scenes by
  construction, radiographs by the paper's percentile scaling), and training fed
  the network such [0, 1] intensities without a stretch; ``normalize=True`` would
  re-stretch LR and HR separately and clip their extreme 0.35 % before scoring,
  so the metrics would no longer compare the fused frame with the truth.
- Metrics: float mode (data range 1), SSIM with a Gaussian window, on frames
  without an HR frame, pooled over the sequences of a dataset; ρ is the Spearman
  correlation of the default method's normalised backward attention with the
  offset from the preceding HR frame (``quality_data.attention_samples``),
  undefined (n/a) at HR every 2 where every offset is 1.
- Adaptation costs about a minute per sequence, so it runs only at
  ``--adapt-conditions`` (default: HR every 10 and 20 × no noise and 30 dB, the
  adaptation targets); it is skipped with a note while ``adapt_network`` raises
  NotImplementedError.
- Torch runs one thread per process by default: on the shared 2-core host one
  thread was faster than two (``--threads`` to change).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from quality_data import (
    SEEDS,
    Sequence,
    Size,
    attention_samples,
    degrade_lr,
    frame_scores,
    radiograph_sequences,
    synthetic_sequences,
)
from quality_grid_report import (
    ADAPTED,
    DEFAULT,
    hr_label,
    markdown,
    noise_label,
    targets,
)
from quality_report import attention_summary, summarise
from tqdm import tqdm

from xfusion_bluesky import __version__
from xfusion_bluesky.evaluation.config import jsonable
from xfusion_bluesky.evaluation.datasets import (
    RADIOGRAPH_FILE,
    default_radiographs,
    shown_path,
)
from xfusion_bluesky.evaluation.sweeps import HR_ENDS, hr_grid
from xfusion_bluesky.fusion import METHODS, AdaptSettings, fuse, method_spec
from xfusion_bluesky.fusion.model.loader import load_network
from xfusion_bluesky.metrics import mean_finite
from xfusion_bluesky.synthetic.scene import HELD_OUT_FAMILIES, XRAY_FAMILIES

REPO = Path(__file__).resolve().parents[1]
NOISE_DB = (None, 40.0, 30.0, 20.0)
HR_EVERY = (2, 10, 20, HR_ENDS)


@dataclass(frozen=True)
class Grid:
    """How much a run fuses: frames, shape, seeds and the conditions."""

    frames: int
    height: int
    width: int
    held_out_seeds: tuple[int, ...]
    seen_seeds: tuple[int, ...]
    radiograph_crop: tuple[int, int] | None  # centre crop; None: the whole frame
    noise_db: tuple[float | None, ...] = NOISE_DB
    hr_every: tuple[int, ...] = HR_EVERY


FULL = Grid(41, 96, 128, SEEDS[:2], SEEDS[:1], None)
QUICK = Grid(21, 48, 64, SEEDS[:1], SEEDS[:1], (48, 64), (None, 30.0), (2, 20, 0))


def load_datasets(
    grid: Grid, radiographs: Path | None
) -> tuple[dict[str, list[Sequence]], str | None]:
    """Return the held-out, seen and (when found) radiograph sequences, and a note."""
    size = Size(grid.frames, grid.height, grid.width, grid.held_out_seeds, None)
    datasets = {
        "held_out": synthetic_sequences(size, HELD_OUT_FAMILIES),
        "seen": synthetic_sequences(replace(size, seeds=grid.seen_seeds)),
    }
    path = None if radiographs is None else radiographs / RADIOGRAPH_FILE
    if path is None or not path.is_file():
        return (
            datasets,
            f"no {RADIOGRAPH_FILE} under {radiographs}: radiographs skipped",
        )
    found = (
        radiograph_sequences(replace(size, radiograph_frames=grid.frames), path.parent)
        or []
    )
    if grid.radiograph_crop is not None:
        found = [
            replace(s, truth=_centre(s.truth, grid.radiograph_crop)) for s in found
        ]
    datasets["radiographs"] = found
    return datasets, None


def _centre(video: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Centre crop of ``video`` (T, H, W) to ``shape``."""
    top, left = ((n - m) // 2 for n, m in zip(video.shape[1:], shape, strict=True))
    return np.ascontiguousarray(video[:, top : top + shape[0], left : left + shape[1]])


def load_models(models_dir: Path) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Load every registered network once; skip (with a note) those without weights."""
    models, info, notes = {}, {}, []
    for name, spec in METHODS.items():
        if not spec.trainable:
            continue
        path = models_dir / str(spec.default_weights)
        if not path.is_file():
            notes.append(f"{name} skipped: no weights at {shown_path(path)}")
            continue
        network, loaded = load_network(name, path)
        models[name] = network
        info[name] = {"path": shown_path(path), "model_id": loaded["sha256"]}
    return models, info, notes


class Runner:
    """Fuse every sequence under every condition; pool per-frame scores."""

    def __init__(
        self,
        models: dict[str, Any],
        methods: list[str],
        adapt: AdaptSettings | None,
        adapt_at: set[tuple[float | None, int]],
    ) -> None:
        self.models, self.methods = models, methods
        self.adapt, self.adapt_at = adapt, adapt_at
        self.notes: list[str] = []
        # [dataset][(noise, hr)][method] -> {"psnr": [...], "ssim": [...], ...}
        self.pooled: dict[str, Any] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
        )
        self.attention: dict[str, Any] = defaultdict(lambda: defaultdict(list))
        self.per_sequence: dict[str, Any] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(dict))
        )
        self.lr_noise: dict[str, Any] = defaultdict(dict)
        self.adaptations: list[dict[str, Any]] = []

    def _fuse(
        self,
        lr: np.ndarray,
        seq: Sequence,
        hr_index: np.ndarray,
        method: str,
        **kw: Any,
    ) -> Any:
        return fuse(
            lr,
            seq.truth[hr_index],
            hr_index,
            method,
            model=self.models.get(method),
            lr_separation=1,
            normalize=False,
            **kw,
        )

    def run_sequence(self, dataset: str, seq: Sequence, grid: Grid, bar: Any) -> None:
        """Fuse ``seq`` at every condition of ``grid``, advancing ``bar``."""
        t = seq.truth.shape[0]
        for noise in grid.noise_db:
            lr, info = degrade_lr(seq.truth, noise, seq.seed)
            self.lr_noise[dataset][f"{seq.name}|{noise_label(noise)}"] = info
            # Methods without HR frames give the same frames at every HR setting.
            fixed = {
                m: frame_scores(self._fuse(lr, seq, np.array([0]), m).frames, seq.truth)
                for m in self.methods
                if not method_spec(m).uses_hr
            }
            for hr_every in grid.hr_every:
                key = (noise, hr_every)
                hr_index = hr_grid(t, hr_every)
                scored = ~np.isin(np.arange(t), hr_index)
                scores = dict(fixed)
                for m in self.methods:
                    if method_spec(m).uses_hr:
                        result = self._fuse(lr, seq, hr_index, m)
                        scores[m] = frame_scores(result.frames, seq.truth)
                        if m == DEFAULT:
                            samples = attention_samples(result, hr_index)
                            samples["family"] = seq.source.get("family", seq.name)
                            self.attention[dataset][key].append(samples)
                if self.adapt is not None and key in self.adapt_at:
                    adapted = self._adapted(lr, seq, hr_index, key)
                    if adapted is not None:
                        scores[ADAPTED] = adapted
                for m, values in scores.items():
                    self._add(dataset, key, m, seq.name, values, scored)
                bar.update()

    def _adapted(
        self,
        lr: np.ndarray,
        seq: Sequence,
        hr_index: np.ndarray,
        key: tuple[float | None, int],
    ) -> dict[str, np.ndarray] | None:
        """Fuse with adaptation; None (and adaptation off) where it is not there."""
        # Adaptation is new (NotImplementedError until it lands): a failure turns
        # it off for the rest of the run rather than losing the whole grid.
        try:
            result = self._fuse(lr, seq, hr_index, DEFAULT, adapt=self.adapt)
        except Exception as err:
            self.notes.append(f"adaptation off: {type(err).__name__}: {err}")
            self.adapt = None
            return None
        report = result.params.get("adaptation", {})
        self.adaptations.append(
            {
                "sequence": seq.name,
                "noise": noise_label(key[0]),
                "hr_every": hr_label(key[1]),
                **report,
            }
        )
        return frame_scores(result.frames, seq.truth)

    def _add(
        self,
        dataset: str,
        key: tuple[float | None, int],
        method: str,
        name: str,
        values: dict[str, np.ndarray],
        scored: np.ndarray,
    ) -> None:
        for metric, per_frame in values.items():
            self.pooled[dataset][key][method][metric].append(per_frame[scored])
        psnr_db = mean_finite(values["psnr"][scored])[0]
        self.per_sequence[dataset][key][method][name] = psnr_db

    def conditions(self, dataset: str, grid: Grid) -> list[dict[str, Any]]:
        """Return the pooled numbers of every condition of ``dataset``."""
        rows = []
        for noise in grid.noise_db:
            for hr_every in grid.hr_every:
                key = (noise, hr_every)
                methods = self.pooled[dataset][key]
                samples = self.attention[dataset][key]
                span = grid.frames - 1 if hr_every == HR_ENDS else hr_every
                rows.append(
                    {
                        "noise_db": noise,
                        "hr_every": hr_label(hr_every),
                        "label": f"{noise_label(noise)}, HR every {hr_label(hr_every)}",
                        "methods": {
                            m: summarise(p)
                            | {
                                "per_sequence_psnr_db": self.per_sequence[dataset][key][
                                    m
                                ]
                            }
                            for m, p in methods.items()
                        },
                        "attention": attention_summary(samples, span)
                        if samples
                        else None,
                    }
                )
        return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    parser.add_argument(
        "--radiographs",
        type=Path,
        metavar="DIR",
        default=default_radiographs(),
        help=f"folder holding {RADIOGRAPH_FILE} (default: $XFUSION_VALIDATION)",
    )
    parser.add_argument(
        "--adapt",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"also fuse with {ADAPTED}",
    )
    parser.add_argument(
        "--adapt-conditions",
        default="none@10,none@20,30@10,30@20",
        help="NOISE@HR pairs where adaptation runs, NOISE 'none' or dB, HR a "
        "separation or 'ends' (default: where the adaptation targets are)",
    )
    parser.add_argument(
        "--datasets",
        type=lambda text: text.split(","),
        help="comma-separated subset of held_out, seen, radiographs (default: all)",
    )
    parser.add_argument(
        "--methods",
        type=lambda text: text.split(","),
        help="comma-separated subset of the registered methods (default: all), e.g. "
        "only the default with --adapt, in a second process beside a --no-adapt run",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--quick", action="store_true", help="tiny grid, < 2 min")
    parser.add_argument("--out", type=Path, help="write every number here (JSON)")
    parser.add_argument(
        "--tables", type=Path, metavar="JSON", help="print the tables of a --out file"
    )
    return parser.parse_args(argv)


def parse_pairs(text: str) -> set[tuple[float | None, int]]:
    """Parse ``--adapt-conditions`` into (noise dB or None, HR every) pairs."""
    pairs = set()
    for item in filter(None, text.split(",")):
        noise, hr = item.strip().split("@")
        pairs.add(
            (
                None if noise == "none" else float(noise),
                HR_ENDS if hr == "ends" else int(hr),
            )
        )
    return pairs


def run(args: argparse.Namespace, grid: Grid) -> dict[str, Any]:
    """Fuse every dataset at every condition; return every number as a JSON dict."""
    models, model_info, notes = load_models(args.models_dir)
    methods = [
        m
        for m in METHODS
        if (not METHODS[m].trainable or m in models)
        and (args.methods is None or m in args.methods)
    ]
    adapt = AdaptSettings() if args.adapt and DEFAULT in models else None
    runner = Runner(models, methods, adapt, parse_pairs(args.adapt_conditions))
    datasets, note = load_datasets(grid, args.radiographs)
    notes += [note] if note else []
    if args.datasets is not None:
        datasets = {k: v for k, v in datasets.items() if k in args.datasets}
    jobs = sum(map(len, datasets.values())) * len(grid.noise_db) * len(grid.hr_every)
    start = time.perf_counter()
    with tqdm(total=jobs, desc="fusions", unit="cond", file=sys.stderr) as bar:
        for name, sequences in datasets.items():
            for seq in sequences:
                runner.run_sequence(name, seq, grid, bar)
    results = {}
    for name, sequences in datasets.items():
        conditions = runner.conditions(name, grid)
        results[name] = {
            "sequences": [{"name": s.name, **s.source} for s in sequences],
            "shape": list(sequences[0].truth.shape),
            "conditions": conditions,
            "targets": targets(name, conditions),
            "lr_noise": runner.lr_noise[name],
        }
    return {
        "script": "benchmarks/quality_grid.py",
        "argv": sys.argv[1:],
        "quick": args.quick,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "runtime_s": time.perf_counter() - start,
        "host": {
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "versions": {"xfusion_bluesky": __version__, "torch": torch.__version__},
        "grid": asdict(grid),
        "families": {"held_out": HELD_OUT_FAMILIES, "seen": XRAY_FAMILIES},
        "methods": methods,
        "models": model_info,
        "notes": notes + runner.notes,
        "adapt": adapt.to_dict() if adapt else None,
        "adaptations": runner.adaptations,
        "datasets": results,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the grid, print the tables, write the JSON."""
    args = parse_args(argv)
    # Errors only: per-call warnings (pure-PyTorch deform conv, NaN attention)
    # would repeat for every fuse() call.
    logging.basicConfig(
        level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s"
    )
    if args.tables:
        report = json.loads(args.tables.read_text())
        print(markdown(report["datasets"], report["methods"], report["notes"]))
        return 0
    torch.set_num_threads(args.threads)
    report = run(args, QUICK if args.quick else FULL)
    print(
        f"## Held-out grid ({report['runtime_s']:.0f} s, "
        f"{args.threads} torch thread(s))\n"
    )
    print(markdown(report["datasets"], report["methods"], report["notes"]))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(jsonable(report), indent=1) + "\n")
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
