"""Fusion speed per method at the paper's frame size, and peak memory of a long burst.

Prints a table of seconds per fused frame (median of repeats) and frames per second for
bicubic, the Bayesian (Kalman + K-means) baseline, the small shipped EDVR-STF/EDVR
configs and the paper-size EDVR-STF, on the CPU and, where CUDA exists, on the GPU in
float32 and bfloat16. Ratios are against bicubic run in this same process and against
the paper's published times (EDVR-STF 0.0665 s per frame on one A100; bicubic 0.0006 s
on a CPU; Bayesian 77.4 s on a Xeon Gold 6334). Random weights: speed does not depend
on their values. The Bayesian baseline caches its calibration and clusters per pair
of HR frames, so it is timed twice: all frames between one pair (config "K=8") and a
new pair for every fused frame (HR separation 2, config "K=8, HR separation 2").

    python benchmarks/bench_fusion.py          # CPU table + memory of a 256-frame burst
    python benchmarks/bench_fusion.py --quick  # fewer repeats, no paper-size CPU row
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from xfusion_bluesky.evaluation.timing import PAPER_SECONDS_PER_FRAME
from xfusion_bluesky.fusion import fuse
from xfusion_bluesky.fusion.model import edvr_small, edvr_stf_paper, edvr_stf_small

LR_SHAPE = (100, 256)  # paper frame size: LR 100×256 → HR 400×1024


def _sequence(
    frames: int, lr_shape: tuple[int, int], seed: int = 0, hr_separation=None
):
    """Random LR frames; HR frames at both ends, or ``hr_separation`` apart."""
    rng = np.random.default_rng(seed)
    h, w = lr_shape
    index = np.array([0, frames - 1])
    if hr_separation:
        index = np.arange(0, frames, hr_separation)
    lr = rng.random((frames, h, w), dtype=np.float32)
    hr = rng.random((index.size, 4 * h, 4 * w), dtype=np.float32)
    return lr, hr, index


def time_method(
    method, model, *, frames, repeats, device, dtype=None, hr_separation=None
):
    """Median seconds per fused frame of fuse() over ``repeats`` runs (after a warm-up).

    Frames at an HR instant are copies of the HR frame; they are not counted.
    """
    lr, hr, index = _sequence(frames, LR_SHAPE, hr_separation=hr_separation)
    fused = frames - index.size if method == "bayesian" else frames
    kwargs = {"model": model, "device": device, "dtype": dtype, "batch_size": 1}
    fuse(lr[:2, :8, :8], hr[:2, :32, :32], [0, 1], method, **kwargs)  # warm-up
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        tick = time.perf_counter()
        fuse(lr, hr, index, method, **kwargs)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - tick) / fused)
    return statistics.median(times)


def rss_child(frames: int, lr_shape: tuple[int, int], fused: int) -> None:
    """In a fresh process: fuse the first ``fused`` frames of a long burst."""
    from xfusion_bluesky.fusion import fuse_iter

    lr, hr, _ = _sequence(frames, lr_shape)
    hr = np.repeat(hr[:1], frames // 20 + 1, axis=0)
    index = np.arange(0, frames, 20)[: hr.shape[0]]
    hr = hr[: index.size]
    # The whole output is made resident up front, as fuse() would hold it, so a
    # partial run still measures the memory of the full burst.
    out = np.zeros((frames, 4 * lr_shape[0], 4 * lr_shape[1]), dtype=np.float32)
    out.fill(0.0)
    tick = time.perf_counter()
    stream = fuse_iter(lr, hr, index, "edvr_stf", model=edvr_stf_small().eval())
    for t, frame, _ in stream:
        out[t] = frame
        if t + 1 >= fused:
            break
    stream.close()
    seconds = time.perf_counter() - tick
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(json.dumps({"peak_rss_gb": peak_gb, "seconds": seconds}))


def peak_rss(frames: int, lr_shape: tuple[int, int], fused: int) -> dict:
    """Run :func:`rss_child` in a subprocess so its peak memory is its own."""
    code = (
        "import sys; sys.path.insert(0, 'benchmarks'); import bench_fusion as b; "
        f"b.rss_child({frames}, {lr_shape}, {fused})"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _ratio(value: float) -> str:
    """Format a time ratio: whole numbers from 10 up, two significant digits below."""
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="1 repeat, no paper CPU row"
    )
    parser.add_argument(
        "--rss-frames",
        type=int,
        default=256,
        help="how many of the 256 frames to fuse in the memory test (default all)",
    )
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    torch.manual_seed(0)
    rows = []
    cases = [
        ("bicubic", "—", None, "cpu", None, 8),
        ("bayesian", "K=8", None, "cpu", None, 22),
        ("bayesian", "K=8, HR separation 2", None, "cpu", None, 21),
        ("edvr", "small", edvr_small().eval(), "cpu", None, 3),
        ("edvr_stf", "small", edvr_stf_small().eval(), "cpu", None, 3),
    ]
    if not args.quick:
        cases.append(("edvr_stf", "paper", edvr_stf_paper().eval(), "cpu", None, 2))
    if torch.cuda.is_available():
        paper = edvr_stf_paper().eval()
        cases += [
            ("edvr_stf", "small", edvr_stf_small().eval(), "cuda", None, 32),
            ("edvr_stf", "paper", paper, "cuda", None, 32),
            ("edvr_stf", "paper", paper, "cuda", torch.bfloat16, 32),
        ]
    for method, config, model, device, dtype, frames in cases:
        runs = 1 if config == "paper" and device == "cpu" else repeats  # ~45 s/frame
        seconds = time_method(
            method,
            model,
            frames=frames,
            repeats=runs,
            device=device,
            dtype=dtype,
            hr_separation=2 if "HR separation 2" in config else None,
        )
        rows.append(
            (
                method,
                config,
                device,
                str(dtype or "float32").replace("torch.", ""),
                seconds,
            )
        )
    bicubic = rows[0][-1]
    print(
        f"LR {LR_SHAPE[0]}×{LR_SHAPE[1]} → HR {4 * LR_SHAPE[0]}×{4 * LR_SHAPE[1]}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    header = ("method", "config", "device", "dtype", "s/frame", "frames/s")
    print("| " + " | ".join(header) + " | × bicubic | × paper |")
    print("|---|---|---|---|---:|---:|---:|---:|")
    for method, config, device, dtype, seconds in rows:
        paper = PAPER_SECONDS_PER_FRAME.get(method)
        vs_paper = _ratio(seconds / paper) if paper else "—"
        print(
            f"| {method} | {config} | {device} | {dtype} | {seconds:.4f} | "
            f"{1 / seconds:.2f} | {_ratio(seconds / bicubic)} | {vs_paper} |"
        )
    shape = (250, 400)
    rss = peak_rss(256, shape, args.rss_frames)
    print(
        f"\nPeak RSS, small EDVR-STF, 256-frame burst LR {shape[0]}×{shape[1]} "
        f"(whole output resident, {args.rss_frames} frames fused): "
        f"{rss['peak_rss_gb']:.2f} GB in {rss['seconds']:.0f} s (target < 4 GB)"
    )


if __name__ == "__main__":
    main()
