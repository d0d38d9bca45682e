"""Fusion speed on this machine: per method, what each change buys, scaling, memory.

Four tables (``--tables``, default all), with the machine and the date in the header:

``methods``  seconds per fused frame of bicubic, the Bayesian (Kalman + K-means)
    baseline, the small EDVR/EDVR-STF configs and (full mode) the paper-size
    EDVR-STF at the paper's frame size (LR 100×256 → HR 400×1024), random weights,
    batch 1, at fuse()'s defaults; on CUDA too where it exists. Ratios against
    bicubic in this process and against the paper's published times (EDVR-STF
    0.0665 s per frame on one A100; bicubic 0.0006 s on a CPU; Bayesian 77.4 s on
    a Xeon Gold 6334). The Bayesian baseline caches its calibration per pair of HR
    frames, so it is timed with all frames between one pair ("K=8") and with a new
    pair for every fused frame ("K=8, HR separation 2").
``path``  what each speed change buys: the default small EDVR-STF (``edvr_stf_detail``,
    shipped weights; full mode adds ``edvr_stf``) on a synthetic burst at the
    paper's frame size, HR every 8 LR frames, today's path first (no feature cache,
    the reference sampling, float32), then one change added per row: the feature
    cache, the fast sampling, the default precision, bfloat16. Each row gives its
    ratio against today's path and its max abs error and PSNR against today's
    float32 output. Every frame goes through the network (``hr_passthrough=False``).
``scaling``  s/frame against LR frame size and against windows per batch, on the
    best path available, so a CPU or GPU worker can be sized.
``memory``  peak RSS (``VmHWM``, each in a fresh process) of streaming a
    256-frame 250×400 burst (HR 1000×1600, every 16 frames) through ``fuse_iter``,
    frames dropped as a writer would drop them: bicubic over all 256 frames, the
    small model over the first ``--rss-frames`` (memory per batch does not grow
    with time); full mode adds today's ``fuse()`` holding the whole output.

    python benchmarks/bench_fusion.py --quick   # ~3 min on 2 idle cores
    python benchmarks/bench_fusion.py           # full (~15 min on 2 cores)
    python benchmarks/bench_fusion.py --tables path,memory
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from xfusion_bluesky.evaluation.timing import PAPER_SECONDS_PER_FRAME
from xfusion_bluesky.fusion import fuse, fuse_iter, precision
from xfusion_bluesky.fusion.model import (
    deform_conv,
    edvr_small,
    edvr_stf_paper,
    edvr_stf_small,
    load_network,
)

LR_SHAPE = (100, 256)  # paper frame size: LR 100×256 → HR 400×1024
HR_SEPARATION = 8  # path and scaling bursts: each HR frame serves ~2×8 windows
RSS_SHAPE, RSS_FRAMES, RSS_HR_SEPARATION = (250, 400), 256, 16
TABLES = ("methods", "path", "scaling", "memory")
TODAY_FRAMES_PER_S = 0.32  # the small model at 400×1024 before the speed work


# -- the speed switches ------------------------------------------------------------


def default_dtype(device: str) -> torch.dtype | None:
    """Return the precision fuse() takes on ``device`` when none is asked for."""
    return precision.default_dtype(torch.device(device))


def dtype_name(dtype: torch.dtype | None) -> str:
    return str(dtype or torch.float32).removeprefix("torch.")


@dataclass(frozen=True)
class FusionPath:
    """One way of running fuse(): the feature cache, the sampling, the precision.

    ``dtype`` and ``channels_last`` None: fuse()'s own defaults (the default
    precision, channels-last with it in bfloat16).
    """

    label: str
    feature_cache: bool = False
    sampling: str = "reference"
    dtype: torch.dtype | None = torch.float32
    channels_last: bool | None = False

    def kwargs(self) -> dict[str, Any]:
        """fuse() keywords of this path."""
        return {
            "dtype": self.dtype,
            "channels_last": self.channels_last,
            "feature_cache": self.feature_cache,
        }

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Select the deformable convolution's sampling for this path."""
        with deform_conv.sampling_implementation(self.sampling):  # type: ignore[arg-type]
            yield

    def key(self, device: str = "cpu") -> tuple[Any, ...]:
        """What fuse() runs: two paths with one key give the same result."""
        dtype = self.dtype or default_dtype(device) or torch.float32
        half = dtype in (torch.bfloat16, torch.float16)
        last = half if self.channels_last is None else self.channels_last
        return (self.feature_cache, self.sampling, dtype, last)

    def describe(self, device: str = "cpu") -> str:
        cache, sampling, dtype, last = self.key(device)
        return (f"{'feature cache, ' if cache else ''}{sampling} sampling, "
                f"{dtype_name(dtype)}{', channels-last' if last else ''}")  # fmt: skip


TODAY = FusionPath("today's path (no cache, reference sampling, float32)")


def path_steps(device: str = "cpu") -> list[FusionPath]:
    """Return today's path, then one change added per row."""
    best = dtype_name(default_dtype(device))
    changes: list[tuple[str, dict[str, Any]]] = [
        ("+ feature cache", {"feature_cache": True}),
        ("+ fast sampling", {"sampling": "fast"}),
        (f"+ default precision ({best})", {"dtype": None, "channels_last": None}),
        ("+ bfloat16", {"dtype": torch.bfloat16, "channels_last": None}),
    ]
    steps = [TODAY]
    for label, change in changes:
        steps.append(replace(steps[-1], label=label, **change))
    return steps


def best_path(device: str = "cpu") -> FusionPath:
    """The last available row of :func:`path_steps` before bfloat16 (the default)."""
    return replace(path_steps(device)[-2], label="default path")


# -- machine and measurements ---------------------------------------------------


def machine() -> dict[str, Any]:
    """CPU model, cores, bf16 units (AMX, AVX-512 BF16), load, torch, threads, date."""
    model, flags = platform.processor() or "unknown", ""
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo", encoding="utf-8"):  # noqa: SIM115
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = value
                break
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": model,
        "cores": len(os.sched_getaffinity(0)),
        "bf16_units": sorted({f for f in flags.split() if "amx" in f or "bf16" in f}),
        "load_1min": round(os.getloadavg()[0], 2),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "torchvision_deform_op": deform_conv.torchvision_available(),
    }


def print_machine(info: dict[str, Any]) -> None:
    print(
        f"# bench_fusion, {info['date']}\n\n{info['cpu']}, {info['cores']} cores "
        f"(bf16 units: {', '.join(info['bf16_units']) or 'none'}), "
        f"load {info['load_1min']} at start; torch {info['torch']}, "
        f"{info['threads']} threads; deformable conv: "
        f"{'torchvision' if info['torchvision_deform_op'] else 'pure PyTorch'}"
    )


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def burst(
    frames: int, lr_shape: tuple[int, int], *, scene: bool, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LR frames in [0, 1], the HR frames every HR_SEPARATION and their index.

    ``scene``: a synthetic additive-manufacturing scene binned 4× (real-like, for
    the accuracy columns); otherwise uniform noise (speed only).
    """
    h, w = lr_shape
    index = np.arange(0, frames, HR_SEPARATION)
    if scene:
        from xfusion_bluesky.synthetic.degradation import bin_frames
        from xfusion_bluesky.synthetic.scene import generate_scene

        truth = generate_scene(
            "additive_manufacturing",
            num_frames=frames,
            height=4 * h,
            width=4 * w,
            seed=seed,
        )
        return np.asarray(bin_frames(truth), np.float32), truth[index], index
    rng = np.random.default_rng(seed)
    lr = rng.random((frames, h, w), dtype=np.float32)
    return lr, rng.random((index.size, 4 * h, 4 * w), dtype=np.float32), index


def timed_fuse(
    path: FusionPath,
    method: str,
    network: Any,
    data: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    batch_size: int | None = None,
    device: str = "cpu",
) -> tuple[float, np.ndarray, int]:
    """Return (s per fused frame, frames, batch used) of one fuse() on ``path``.

    A small warm-up first (allocations); every frame is counted.
    """
    lr, hr, index = data
    kwargs = {
        "model": network,
        "normalize": False,
        "device": device,
        "batch_size": batch_size,
        "hr_passthrough": False,
        **path.kwargs(),
    }
    with path.active():
        fuse(lr[:2, :16, :16], hr[:1, :64, :64], [0], method, **kwargs)
        _sync(device)
        tick = time.perf_counter()
        result = fuse(lr, hr, index, method, **kwargs)
        _sync(device)
    seconds = (time.perf_counter() - tick) / lr.shape[0]
    return seconds, result.frames, int(result.params["batch_size"])


def accuracy(frames: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """Max abs error and PSNR (dB, peak 1, MSE over the whole burst)."""
    diff = frames.astype(np.float64) - reference
    mse = float(np.mean(diff**2))
    return float(np.abs(diff).max()), 10 * np.log10(1 / mse) if mse else float("inf")


def _ratio(value: float) -> str:
    """Format a ratio: whole numbers from 10 up, two significant digits below."""
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def _db(value: float) -> str:
    return "exact" if value == float("inf") else f"{value:.1f}"


# -- tables ---------------------------------------------------------------------


def time_method(
    method, model, *, frames, repeats, device, dtype=None, hr_separation=None
):
    """Median seconds per fused frame of fuse() at defaults over ``repeats`` runs."""
    rng = np.random.default_rng(0)
    h, w = LR_SHAPE
    index = np.arange(0, frames, hr_separation or frames - 1)
    lr = rng.random((frames, h, w), dtype=np.float32)
    hr = rng.random((index.size, 4 * h, 4 * w), dtype=np.float32)
    fused = frames - index.size if method == "bayesian" else frames
    kwargs = {"model": model, "device": device, "dtype": dtype, "batch_size": 1}
    fuse(lr[:2, :8, :8], hr[:2, :32, :32], [0, 1], method, **kwargs)  # warm-up
    times = []
    for _ in range(repeats):
        _sync(device)
        tick = time.perf_counter()
        fuse(lr, hr, index, method, **kwargs)
        _sync(device)
        times.append((time.perf_counter() - tick) / fused)
    return statistics.median(times)


def table_methods(quick: bool) -> list[dict[str, Any]]:
    repeats = 1 if quick else 3
    cases = [
        ("bicubic", "—", None, "cpu", None, 8),
        ("bayesian", "K=8", None, "cpu", None, 22),
        ("bayesian", "K=8, HR separation 2", None, "cpu", None, 21),
        ("edvr", "small", edvr_small().eval(), "cpu", None, 3),
        ("edvr_stf", "small", edvr_stf_small().eval(), "cpu", None, 3),
    ]
    if not quick:
        cases.append(("edvr_stf", "paper", edvr_stf_paper().eval(), "cpu", None, 2))
    if torch.cuda.is_available():
        paper = edvr_stf_paper().eval()
        cases += [
            ("edvr_stf", "small", edvr_stf_small().eval(), "cuda", None, 32),
            ("edvr_stf", "paper", paper, "cuda", None, 32),
            ("edvr_stf", "paper", paper, "cuda", torch.bfloat16, 32),
        ]
    rows = []
    for method, config, model, device, dtype, frames in cases:
        runs = 1 if config == "paper" and device == "cpu" else repeats  # ~16 s/frame
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
            {"method": method, "config": config, "device": device}
            | {
                "dtype": dtype_name(dtype or (model and default_dtype(device))),
                "s_per_frame": seconds,
            }
        )
    bicubic = rows[0]["s_per_frame"]
    print(f"\n## Methods at defaults, LR {LR_SHAPE[0]}×{LR_SHAPE[1]}, batch 1\n")
    print(
        "| method | config | device | dtype | s/frame | frames/s | × bicubic "
        "| × paper |\n|---|---|---|---|---:|---:|---:|---:|"
    )
    for row in rows:
        seconds, paper = row["s_per_frame"], PAPER_SECONDS_PER_FRAME.get(row["method"])
        print(
            f"| {row['method']} | {row['config']} | {row['device']} | {row['dtype']} "
            f"| {seconds:.4f} | {1 / seconds:.2f} | {_ratio(seconds / bicubic)} "
            f"| {_ratio(seconds / paper) if paper else '—'} |"
        )
    return rows


def table_path(quick: bool) -> list[dict[str, Any]]:
    frames = 2 * HR_SEPARATION + 1 - (HR_SEPARATION if quick else 0)  # 9 or 17
    methods = ("edvr_stf_detail",) if quick else ("edvr_stf_detail", "edvr_stf")
    data = burst(frames, LR_SHAPE, scene=True)
    print(
        f"\n## What each change buys: LR {LR_SHAPE[0]}×{LR_SHAPE[1]} → "
        f"{4 * LR_SHAPE[0]}×{4 * LR_SHAPE[1]}, shipped weights\n\n{frames}-frame "
        f"synthetic burst (additive_manufacturing), HR frames every {HR_SEPARATION} "
        f"LR frames (at {data[2].tolist()}), every frame fused by the network, "
        f"default batch; errors against today's float32 output, peak 1.\n"
    )
    print(
        "| method | path | batch | s/frame | frames/s | × today | max abs error "
        "| PSNR dB |\n|---|---|---:|---:|---:|---:|---:|---:|"
    )
    rows = []
    for method in methods:
        network = load_network(method).network
        done: dict[tuple[Any, ...], tuple[float, np.ndarray, int]] = {}
        reference, today = None, None
        for path in path_steps():
            key = path.key()
            if key not in done:  # a default equal to the row above: not rerun
                done[key] = timed_fuse(path, method, network, data)
            seconds, frames_out, batch = done[key]
            if reference is None:
                reference, today = frames_out.astype(np.float64), seconds
            err, db = accuracy(frames_out, reference)
            rows.append(
                {"method": method, "path": path.label, "batch": batch}
                | {"s_per_frame": seconds, "max_abs_error": err, "psnr_db": db}
            )
            print(
                f"| {method} | {path.label} | {batch} | {seconds:.3f} "
                f"| {1 / seconds:.2f} | {_ratio(today / seconds)} | {err:.2g} "
                f"| {_db(db)} |"
            )
    default = [r for r in rows if r["path"].startswith("+ default precision")]
    for row in default:
        rate = 1 / row["s_per_frame"]
        print(
            f"\n{row['method']} at the default precision: {rate:.2f} frames/s, "
            f"{rate / TODAY_FRAMES_PER_S:.1f}× the issue's 0.32 (target ≥ 1 frame/s: "
            f"{'met' if rate >= 1 else 'not met'})"
        )
    return rows


def table_scaling(quick: bool) -> list[dict[str, Any]]:
    path, method = best_path(), "edvr_stf_detail"
    network = load_network(method).network
    sizes = [(100, 256), (250, 400)] + ([] if quick else [(400, 640)])
    frames = 3 if quick else HR_SEPARATION + 1
    print(
        f"\n## Scaling: {method}, {path.describe()}\n\n"
        f"Frame size ({frames}-frame bursts, HR at "
        f"{np.arange(0, frames, HR_SEPARATION).tolist()}, noise, default batch):\n"
    )
    print("| LR | HR | batch | s/frame | frames/s | time × 100×256 | s per HR Mpx |")
    print("|---|---|---:|---:|---:|---:|---:|")
    rows: list[dict[str, Any]] = []
    for h, w in sizes:
        data = burst(frames, (h, w), scene=False)
        seconds, _, batch = timed_fuse(path, method, network, data)
        rows.append({"lr": [h, w], "batch": batch, "s_per_frame": seconds})
        print(
            f"| {h}×{w} | {4 * h}×{4 * w} | {batch} | {seconds:.3f} | "
            f"{1 / seconds:.2f} | {_ratio(seconds / rows[0]['s_per_frame'])} | "
            f"{seconds / (16 * h * w / 1e6):.3f} |"
        )
    frames = 2 * HR_SEPARATION + 1 - (HR_SEPARATION if quick else 0)
    data = burst(frames, LR_SHAPE, scene=False)
    print(f"\nWindows per batch (LR {LR_SHAPE[0]}×{LR_SHAPE[1]}, {frames} frames):\n")
    print("| batch | s/frame | frames/s | speed-up vs batch 1 |\n|---:|---:|---:|---:|")
    first = None
    for batch in (1, 2, 4, 8):
        seconds, _, used = timed_fuse(path, method, network, data, batch_size=batch)
        first = first or seconds
        rows.append({"lr": list(LR_SHAPE), "batch": used, "s_per_frame": seconds})
        print(
            f"| {used} | {seconds:.3f} | {1 / seconds:.2f} "
            f"| {_ratio(first / seconds)} |"
        )
    return rows


def peak_rss_kib() -> int:
    """Peak RSS of this process's own memory, KiB.

    ``VmHWM``, not ``getrusage().ru_maxrss``: Linux carries the forking parent's
    peak through ``fork`` + ``exec`` into the child's ``ru_maxrss``, so a child
    started after a big table would report the parent's memory.
    """
    with contextlib.suppress(OSError):
        for line in open("/proc/self/status", encoding="utf-8"):  # noqa: SIM115
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def rss_child(spec: dict[str, Any]) -> None:
    """In a fresh process: stream a long burst through fuse_iter; print peak RSS."""
    torch.set_num_threads(spec.get("threads") or torch.get_num_threads())
    h, w = spec["lr_shape"]
    rng = np.random.default_rng(0)
    lr = rng.random((RSS_FRAMES, h, w), dtype=np.float32)
    index = np.arange(0, RSS_FRAMES, RSS_HR_SEPARATION)
    hr = rng.random((index.size, 4 * h, 4 * w), dtype=np.float32)
    out = None
    if spec["resident"]:  # today's fuse(): the whole output held
        out = np.zeros((RSS_FRAMES, 4 * h, 4 * w), dtype=np.float32)
    path = TODAY if spec["path"] == "today" else best_path()
    network, kwargs = None, {}
    if spec["method"] != "bicubic":  # bicubic has no network to cache or cast
        network, kwargs = load_network(spec["method"]).network, path.kwargs()
    tick = time.perf_counter()
    with path.active():
        stream = fuse_iter(lr, hr, index, spec["method"], model=network, **kwargs)
        for t, frame, _ in stream:
            if out is not None:
                out[t] = frame
            if t + 1 >= spec["fused"]:
                break
        stream.close()
    peak_gb = peak_rss_kib() / 1024**2
    seconds = time.perf_counter() - tick
    print(json.dumps({"peak_rss_gb": peak_gb, "seconds": seconds}))


def peak_rss(spec: dict[str, Any]) -> dict[str, Any]:
    """Run :func:`rss_child` in a subprocess so its peak memory is its own."""
    spec = spec | {"threads": torch.get_num_threads()}
    command = [sys.executable, __file__, "--rss-child", json.dumps(spec)]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"memory child failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def table_memory(quick: bool, rss_frames: int) -> list[dict[str, Any]]:
    h, w = RSS_SHAPE
    cases = [
        ("bicubic", "default", RSS_FRAMES, False),
        ("edvr_stf_detail", "default", rss_frames, False),
    ]
    if not quick:
        cases.append(("edvr_stf_detail", "today", rss_frames, True))
    print(
        f"\n## Memory: {RSS_FRAMES}-frame burst LR {h}×{w} → {4 * h}×{4 * w} "
        f"(HR every {RSS_HR_SEPARATION}), fuse_iter, each in a fresh process\n"
    )
    print("| method | path | output | frames fused | peak RSS GB | s |")
    print("|---|---|---|---:|---:|---:|")
    rows = []
    for method, path, fused, resident in cases:
        spec = {"method": method, "path": path, "fused": fused, "resident": resident}
        got = peak_rss(spec | {"lr_shape": [h, w]})
        rows.append(spec | got)
        output = "whole burst held (fuse())" if resident else "streamed, dropped"
        label = TODAY.label if path == "today" else best_path().describe()
        label = "—" if method == "bicubic" else label  # no network: no path
        print(
            f"| {method} | {label} | {output} | {fused} of {RSS_FRAMES} "
            f"| {got['peak_rss_gb']:.2f} | {got['seconds']:.0f} |"
        )
    print("\nTarget: peak RSS < 2 GB streaming (today fuse() holds 1.6 GB of output).")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~3 min on 2 cores")
    parser.add_argument("--tables", default=",".join(TABLES), help="comma list")
    parser.add_argument(
        "--rss-frames",
        type=int,
        default=None,
        help="frames of the small model in the memory table (default 3 quick, 20)",
    )
    parser.add_argument("--threads", type=int, help="torch threads (default torch's)")
    parser.add_argument("--json", help="also write every row to this JSON file")
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(json.loads(args.rss_child))
        return
    tables = args.tables.split(",")
    unknown = set(tables) - set(TABLES)
    if unknown:
        parser.error(f"unknown tables {sorted(unknown)}; choose from {TABLES}")
    rss_frames = args.rss_frames or (3 if args.quick else 20)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    info = machine()
    print_machine(info)
    tick = time.perf_counter()
    results: dict[str, Any] = {"machine": info, "quick": args.quick}
    if "methods" in tables:
        results["methods"] = table_methods(args.quick)
    if "path" in tables:
        results["path"] = table_path(args.quick)
    if "scaling" in tables:
        results["scaling"] = table_scaling(args.quick)
    if "memory" in tables:
        results["memory"] = table_memory(args.quick, rss_frames)
    results["seconds"] = time.perf_counter() - tick
    print(f"\n{results['seconds']:.0f} s in all; load {os.getloadavg()[0]:.2f} at end")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1, default=str)


if __name__ == "__main__":
    main()
