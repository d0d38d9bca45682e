"""`xfusion-bluesky demo`: scan on the simulated beamline, fused automatically.

The whole story in one command: an embedded Tiled server and a fusion worker in a
separate process start (``setup("sim")``, then ``bl.start_fusion("process")``);
``dual_camera_scan()`` records one burst of both simulated cameras; the worker
reads it back from Tiled, fuses it and writes a derived run; ``fetch_fused``
returns it. The demo then scores the fused frames against the simulation's ground
truth (:meth:`~xfusion_bluesky.catalog.burst.FusedBurst.ground_truth`) next to
bicubic upsampling of the same data, and draws the frame panel and the attention
plot.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from xfusion_bluesky.cli.options import (
    add_device_argument,
    add_method_argument,
    resolve_device,
    seconds,
)
from xfusion_bluesky.errors import InvalidInputError

#: The ROI preset of the demo: fused in well under 2 min on 2 CPU cores.
DEMO_ROI = "demo"

DESCRIPTION = """\
Run the whole chain on a simulated beamline: start an embedded Tiled server and
an automatic fusion worker (a separate process), record one dual-camera burst
with dual_camera_scan(), let the worker fuse it into a derived run, fetch it,
compare it with the simulation's ground truth (and with bicubic upsampling), and
draw the frame panel and the attention scores. Frame sizes: the "demo" ROI
preset (UHS 40×56 px at 2 MHz, 128 frames; HS 128×192 px at 200 kHz), chosen so
that scan-to-fused stays under 2 minutes on 2 CPU cores.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``demo`` verb."""
    parser = subparsers.add_parser(
        "demo",
        help="simulated scan, fused automatically; prints where the results are",
        description=DESCRIPTION,
    )
    parser.add_argument(
        "--out",
        default="demo_output",
        metavar="PATH",
        help="output folder (default demo_output)",
    )
    add_method_argument(
        parser, help="what the scan asks the worker for (default edvr_stf_detail)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fuse with bicubic (seconds; checks the chain, not the model)",
    )
    add_device_argument(parser)
    parser.add_argument(
        "--timeout-s",
        type=seconds,
        default=300.0,
        metavar="S",
        help="how long to wait for the worker (default 300 s)",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="keep the Tiled server up at the end, to browse it, until Ctrl-C",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Scan, wait for the automatic fusion, score, draw; print the paths and uids."""
    from xfusion_bluesky.beamline import run_demo_scan, setup
    from xfusion_bluesky.devices.presets import ROI_PRESETS
    from xfusion_bluesky.plans.dual_camera import FUSION_METHOD

    if args.quick and args.method not in (None, "bicubic"):
        raise InvalidInputError(
            f"--quick fuses with bicubic; it cannot be combined with --method "
            f"{args.method}"
        )
    out = Path(args.out)
    method = "bicubic" if args.quick else args.method or FUSION_METHOD
    device = resolve_device(args.device)
    print(_sizes(ROI_PRESETS[DEMO_ROI]))
    tick = time.perf_counter()
    bl = setup("sim", data_dir=out / "beamline", roi=DEMO_ROI)
    try:
        worker = bl.start_fusion("process", device=device)
        print(
            f"embedded Tiled server and fusion worker ({worker.mode}, pid "
            f"{worker.pid}, {device}) ready in {time.perf_counter() - tick:.1f} s\n"
        )
        tick = time.perf_counter()
        request = {"requested": True, "method": method, "lr_separation": 1}
        scan = run_demo_scan(bl, md={"fusion": request})
        scanned = time.perf_counter()
        print(f"simulated dual-camera scan ({scanned - tick:.1f} s):")
        print(scan.describe())
        print(f"catalog and files kept under {(out / 'beamline').resolve()}\n")
        total = int(bl.tiled[scan.uid].start["uhs"]["frames_per_burst"])
        fused = _wait_fused(bl, scan.uid, total, args.timeout_s)
        done = time.perf_counter()
        print(
            f"derived run {fused.uid} ({method}, {fused.status}"
            + (f": {fused.reason}" if fused.reason else "")
            + ")\nscan-to-fused "
            f"{done - tick:.1f} s (scan {scanned - tick:.1f} s, then the worker "
            f"{done - scanned:.1f} s)\n"
        )
        if fused.status != "success":
            return 1
        _report(fused, out, method)
        print(f"\nTiled: {bl.connection.uri}")
        print("  raw runs in container 'raw', derived runs in 'fused'; in Python:")
        print("  from xfusion_bluesky.catalog import fetch_fused")
        print(f'  run = fetch_fused("{bl.connection.uri}", "{scan.uid[:8]}")')
        if args.serve:
            _serve_until_interrupted()
        else:
            print(
                "  (the server stops with the demo: --serve keeps it up; later, "
                f"XFUSION_DATA={out / 'beamline'} ipython --profile-dir=profile "
                "opens the same catalog)"
            )
    finally:
        bl.close()
    return 0


def _sizes(preset: Any) -> str:
    """Return the line that states the demo's frame sizes and why."""
    hr_separation = preset.uhs_frame_rate_hz / preset.hs_frame_rate_hz
    return (
        f"frame sizes (ROI preset {DEMO_ROI!r}): UHS {preset.uhs_shape[0]}×"
        f"{preset.uhs_shape[1]} px at {preset.uhs_frame_rate_hz / 1e6:g} MHz, "
        f"{preset.uhs_frames} frames; HS {preset.hs_shape[0]}×{preset.hs_shape[1]} "
        f"px at {preset.hs_frame_rate_hz / 1e3:g} kHz (HR separation {hr_separation:g} "
        "UHS frames);\nchosen so that scan-to-fused stays under 2 min on 2 CPU cores"
    )


def _wait_fused(bl: Any, uid: str, total: int, timeout_s: float) -> Any:
    """Wait for the worker's derived run of ``uid``, with a bar of frames written.

    Raises
    ------
    TimeoutError
        No finished derived run within ``timeout_s``.
    RuntimeError
        The worker died.
    """
    from tqdm import tqdm

    from xfusion_bluesky.catalog import fetch_fused, find_derived

    deadline = time.monotonic() + timeout_s
    with tqdm(total=total, desc="worker fusing", unit="frame", disable=None) as bar:
        while True:
            runs = find_derived(bl.tiled, uid)
            if any(run.finished for run in runs):
                bar.update(total - bar.n)
                return fetch_fused(bl.tiled, uid)
            if runs:
                bar.update(max(_frames_written(runs[-1]) - bar.n, 0))
            worker = bl.fusion_worker
            if not worker.is_alive():
                why = worker.error or "see the log above"
                raise RuntimeError(f"the fusion worker stopped: {why}")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"raw run {uid} not fused within {timeout_s:g} s (--timeout-s)"
                )
            time.sleep(1.0)


def _frames_written(fused: Any) -> int:
    """Return how many frames a derived run being written holds so far."""
    try:
        return int(fused.frames.shape[0])
    except (KeyError, LookupError):  # no frame written yet
        return 0


def _report(fused: Any, out: Path, method: str) -> None:
    """Score against the truth next to bicubic; draw the panel and the attention."""
    from xfusion_bluesky.catalog.burst import load_burst
    from xfusion_bluesky.evaluation.panels import attention_figure, frame_panel
    from xfusion_bluesky.fusion import fuse
    from xfusion_bluesky.metrics import mean_finite, psnr, ssim

    burst = load_burst(fused, 0)
    truth = burst.ground_truth()
    full_scale = burst.full_scale
    # The worker's frames, and bicubic upsampling of the same registered data.
    results = [
        (method, burst.fused_frames().astype(np.float32)),
        (
            "bicubic",
            fuse(burst.lr, burst.hr[burst.hs_used], burst.hr_index, "bicubic").frames,
        ),
    ]
    keep = ~fused.hr_at_reference[burst.rows]  # instants with no HS frame
    print(
        f"against the simulation's ground truth ({int(keep.sum())} UHS frames "
        "without an HS frame; truth rendered noise-free at the UHS instants):"
    )
    print(f"{'method':16s} {'PSNR dB':>8s} {'SSIM':>6s}")
    for name, frames in results:
        db = mean_finite(psnr(frames[keep], truth[keep], data_range=full_scale))[0]
        similarity = float(
            np.mean(ssim(frames[keep], truth[keep], data_range=full_scale))
        )
        print(f"{name:16s} {db:8.2f} {similarity:6.3f}")
    frame = burst.default_frame()
    panel = burst.panel(frame)
    # The first column is already bicubic upsampling of the UHS frame.
    images = [*panel.images[:2], ("ground truth", truth[frame]), panel.images[2]]
    sim = burst.raw_start.get("sim") or {}
    title = f"simulated {sim.get('scene_family', 'event')}: {panel.title}".replace(
        "_", " "
    )
    paths = (
        frame_panel(
            out / "fusion_panel.png",
            images,
            series=burst.series,
            ref_time_us=panel.time_us,
            title=title,
        ),
        attention_figure(
            out / "attention.png",
            burst.series,
            ref_time_us=panel.time_us,
            title=f"{method} attention scores, raw run {fused.raw_uid[:8]}",
        ),
    )
    print(f"\npanel:     {paths[0]} (UHS bicubic | {method} | truth | nearest HS)")
    print(f"attention: {paths[1]}")


def _serve_until_interrupted() -> None:
    """Block until Ctrl-C, so the embedded server can be browsed."""
    print("  serving until Ctrl-C")
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        print()
