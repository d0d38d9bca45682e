"""`xfusion-bluesky demo`: a simulated dual-camera scan, then fusion of a burst.

Part 1 runs ``dual_camera_scan()`` on the simulated beamline into an embedded Tiled
catalog (SQLite + HDF5 under ``--out``) and prints the run uid and its files. Part 2
fuses a synthetic x-ray burst offline: the UHS view is the event's 4×4 binning (LR,
every frame), the HS view every 10th frame at full resolution (HR); every method is
scored against the truth and drawn. Automatic fusion of the scanned run itself
arrives with the post-run fusion worker.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``demo`` verb."""
    parser = subparsers.add_parser(
        "demo",
        help="fuse a simulated burst and print where the results are",
        description=__doc__,
    )
    parser.add_argument(
        "--out", default="demo_output", help="output folder (default: demo_output)"
    )
    parser.add_argument("--frames", type=int, default=41, help="LR frames in the burst")
    parser.add_argument(
        "--hr-every", type=int, default=10, help="LR frames between HR frames"
    )
    parser.add_argument("--seed", type=int, default=2024, help="scene seed")
    parser.set_defaults(func=run)


def _scan(data_dir: Path) -> None:
    """Run one default scan on the simulated beamline and print where it landed."""
    from xfusion_bluesky.beamline import run_demo_scan, setup

    tick = time.perf_counter()
    beamline = setup("sim", data_dir=data_dir)
    try:
        scan = run_demo_scan(beamline)
    finally:
        beamline.close()
    print(f"simulated dual-camera scan ({time.perf_counter() - tick:.1f} s):")
    print(scan.describe())
    print(f"catalog and files kept under {data_dir.resolve()}\n")


def run(args: argparse.Namespace) -> int:
    """Simulate, fuse with every available method, score, draw; print the paths."""
    import numpy as np

    from xfusion_bluesky.evaluation.figures import fusion_panel
    from xfusion_bluesky.fusion import fuse
    from xfusion_bluesky.fusion.model import default_model_path
    from xfusion_bluesky.metrics import mean_finite, psnr, ssim
    from xfusion_bluesky.synthetic.degradation import bin_frames
    from xfusion_bluesky.synthetic.scene import generate_scene

    out = Path(args.out)
    _scan(out / "beamline")
    truth = generate_scene(
        "additive_manufacturing",
        num_frames=args.frames,
        height=128,
        width=192,
        seed=args.seed,
    )
    lr = bin_frames(truth)
    hr_index = np.arange(0, args.frames, args.hr_every)
    hr = truth[hr_index]
    methods = ["bicubic"] + [
        m for m in ("edvr", "edvr_stf") if default_model_path(m).exists()
    ]
    missing = {"edvr", "edvr_stf"} - set(methods)
    if missing:
        print(
            f"no shipped weights for {sorted(missing)} yet (make them with "
            "`xfusion-bluesky train`); showing the rest"
        )
    results = {}
    print(
        f"burst: {args.frames} LR frames {lr.shape[1]}×{lr.shape[2]}, "
        f"{hr_index.size} HR frames {hr.shape[1]}×{hr.shape[2]} (every "
        f"{args.hr_every})"
    )
    print(f"{'method':10s} {'PSNR dB':>8s} {'SSIM':>6s} {'s/frame':>8s}")
    for method in methods:
        tick = time.perf_counter()
        result = fuse(lr, hr, hr_index, method, normalize=False, progress=True)
        seconds = (time.perf_counter() - tick) / args.frames
        keep = ~result.hr_at_reference  # score only instants with no HR frame
        db = mean_finite(psnr(result.frames[keep], truth[keep]))[0]
        sim = float(np.mean(ssim(result.frames[keep], truth[keep])))
        print(f"{method:10s} {db:8.2f} {sim:6.3f} {seconds:8.3f}")
        results[method] = result
    ref = args.hr_every // 2
    panel = fusion_panel(
        out / "fusion_panel.png",
        ref_index=ref,
        lr_frames=lr,
        results=dict(reversed(results.items())),
        hr_frames=hr,
        truth=truth,
        title=f"simulated laser-melting burst, frame {ref} ({ref} after an HR frame)",
    )
    print(f"panel: {panel.resolve()}")
    return 0
