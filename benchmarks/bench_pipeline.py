"""What post-run fusion costs beyond the model, and whether it keeps up with scans.

1. One burst (``--roi``, default the demo preset), in a child process as the
   worker runs: the model alone (``fuse_iter`` over frames already in memory)
   against the whole post-run path of ``fuse_run`` (Tiled read + registration +
   fuse + derived-run write), same loaded network, alternated ``--repeat``
   times; medians. The pipeline's overhead is bicubic's ``fuse_run`` minus its
   (~0) model time, set against EDVR-STF's model time. Target: ≤ 10 %.
2. ``--runs N`` consecutive scans, each fused by the automatic worker (separate
   process, fed by ``FusionCallback``; method ``--runs-method``, default bicubic
   so that 50 runs take minutes): derived runs per raw uid, none lost (0) and
   none duplicated (> 1).
3. ``--scans M`` back-to-back scans timed without a callback, with
   ``FusionCallback`` handing uids to a stand-in that drops them (the
   callback's own cost), with a worker fusing with bicubic, with one fusing with
   EDVR-STF (the model then competes with the next scans for the CPU), and
   without again (drift); medians.

    nice .venv/bin/python benchmarks/bench_pipeline.py [--repeat 3] [--runs 50]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roi", default="demo", help="ROI preset (default demo)")
    parser.add_argument("--methods", default="edvr_stf,bicubic")
    parser.add_argument("--repeat", type=int, default=3, help="part 1 repetitions")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--runs", type=int, default=0, help="part 2: runs (0: skip)")
    parser.add_argument("--runs-method", default="bicubic")
    parser.add_argument("--scans", type=int, default=0, help="part 3: scans (0: skip)")
    parser.add_argument("--skip-burst", action="store_true", help="skip part 1")
    return parser.parse_args()


def scan(bl: Any, method: str = "edvr_stf") -> tuple[str, float]:
    """Run one dual_camera_scan asking for ``method``; return its uid and seconds."""
    from xfusion_bluesky.plans.dual_camera import dual_camera_scan

    request = {"requested": True, "method": method, "lr_separation": 1}
    tick = time.perf_counter()
    (uid,) = bl.RE(dual_camera_scan(md={"fusion": request}))
    return uid, time.perf_counter() - tick


def model_only(
    catalogs: Any, uid: str, method: str, network: Any, *, frames: int | None = None
) -> tuple[float, float]:
    """Return (Tiled read s, model s): read + register, then fuse in memory.

    ``frames`` stops after that many fused frames (a warm-up).
    """
    from xfusion_bluesky.catalog.reader import open_raw_run
    from xfusion_bluesky.fusion import fuse_iter
    from xfusion_bluesky.fusion.alignment import align_hr_times

    tick = time.perf_counter()
    run = open_raw_run(catalogs.raw, uid)
    burst = run.burst(0)
    alignment = align_hr_times(burst.lr_times_s, burst.hr_times_s)
    registration = run.field_registration()  # as fuse_run registers the fields
    lr, hr = registration.apply(burst.lr, burst.hr)
    hr = hr[alignment.kept]
    read = time.perf_counter() - tick
    tick = time.perf_counter()
    stream = fuse_iter(lr, hr, alignment.hr_index, method, model=network)
    for t, _, _ in stream:
        if frames is not None and t + 1 >= frames:
            break
    stream.close()
    return read, time.perf_counter() - tick


def measure_burst(
    uri: str, uid: str, method: str, repeat: int, threads: int
) -> dict[str, Any]:
    """In a worker-like child process: model alone vs ``fuse_run``, ``repeat`` times.

    A child, as the fusion worker is: the embedded Tiled server lives in the
    parent, and a client in the server's own process would share its GIL.
    """
    import torch

    from xfusion_bluesky.catalog.connect import open_catalogs
    from xfusion_bluesky.fusion.model.loader import load_network
    from xfusion_bluesky.pipeline import fuse_run

    torch.set_num_threads(threads)
    catalogs = open_catalogs(uri)
    # fuse_run loads through the same cached loader: one network for both paths.
    network = load_network(method).network
    model_only(catalogs, uid, method, network, frames=2)  # warm-up: allocations
    out: dict[str, Any] = {"read": [], "model": [], "total": [], "cpu": []}
    for _ in range(repeat):
        read, model = model_only(catalogs, uid, method, network)
        cpu = time.process_time()
        tick = time.perf_counter()
        fused = fuse_run(catalogs.root, uid, method=method, force=True)
        out["total"].append(time.perf_counter() - tick)
        out["cpu"].append(time.process_time() - cpu)
        out["read"].append(read)
        out["model"].append(model)
        if fused.status != "success":
            raise RuntimeError(f"fusion failed: {fused.reason}")
        out["shape"] = tuple(fused.frames.shape)
    catalogs.root.context.close()
    return out


def part_burst(bl: Any, args: argparse.Namespace) -> None:
    """Print the per-method table, then the overhead against the model's time.

    The overhead is measured with bicubic (whose model time is ~0: its
    ``fuse_run`` is read + write), many times, and set against EDVR-STF's model
    time: on a shared CPU a direct difference of two long, separately timed
    runs is within the noise of either.
    """
    import multiprocessing

    uid, _ = scan(bl)
    print(f"\n## 1. One burst (roi {args.roi!r}, torch threads {args.threads})\n")
    print(
        "| method | frames | fused size | Tiled read s | model s | fuse_run s "
        "| fuse_run − model s |"
    )
    print("|---|---:|---|---:|---:|---:|---:|")
    medians: dict[str, dict[str, float]] = {}
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        for method in args.methods.split(","):
            # The cheap baseline measures the overhead: more repetitions.
            repeat = max(args.repeat, 5) if method == "bicubic" else args.repeat
            got = pool.apply(
                measure_burst, (bl.connection.uri, uid, method, repeat, args.threads)
            )
            medians[method] = {
                key: statistics.median(got[key]) for key in ("read", "model", "total")
            }
            read, model, total = medians[method].values()
            frames, height, width = got["shape"]
            print(
                f"| {method} | {frames} | {height}×{width} | {read:.2f} "
                f"| {model:.2f} | {total:.2f} | {total - model:.2f} |"
            )
    if "bicubic" in medians:
        overhead = medians["bicubic"]["total"] - medians["bicubic"]["model"]
        for method, values in medians.items():
            if method != "bicubic":
                print(
                    f"\npipeline overhead (bicubic fuse_run − its model): "
                    f"{overhead:.2f} s = {100 * overhead / values['model']:.1f} % of "
                    f"the {method} model time ({values['model']:.1f} s)"
                )


def subscribe_worker(bl: Any, method: str) -> tuple[Any, int]:
    """Start a process worker fusing with ``method`` and subscribe its callback."""
    from xfusion_bluesky.callbacks import FusionCallback, FusionWorker

    worker = FusionWorker(
        bl.connection.uri, mode="process", method=method, catch_up=False, poll_s=None
    ).start()
    return worker, bl.RE.subscribe(FusionCallback(worker))


def part_runs(bl: Any, args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from xfusion_bluesky.catalog import find_derived

    worker, token = subscribe_worker(bl, args.runs_method)
    uids = []
    tick = time.perf_counter()
    try:
        for _ in tqdm(range(args.runs), desc="scans", unit="run"):
            uids.append(scan(bl, args.runs_method)[0])
        scanned = time.perf_counter() - tick
        idle = worker.wait_idle(timeout=600)
        done = time.perf_counter() - tick
    finally:
        bl.RE.unsubscribe(token)
        worker.close(timeout=30)
    counts = [len(find_derived(bl.tiled, uid)) for uid in uids]
    statuses = [run.status for uid in uids for run in find_derived(bl.tiled, uid)]
    print(f"\n## 2. {args.runs} consecutive runs, fused by the worker\n")
    print("| runs | method | derived runs | lost | duplicated | failed | scans s "
          "| last fused s | worker idle |")  # fmt: skip
    print("|---:|---|---:|---:|---:|---:|---:|---:|---|")
    print(
        f"| {len(uids)} | {args.runs_method} | {sum(counts)} "
        f"| {counts.count(0)} | {sum(c > 1 for c in counts)} "
        f"| {sum(s != 'success' for s in statuses)} | {scanned:.1f} | {done:.1f} "
        f"| {idle} |"
    )


class _Discard:
    """A worker stand-in that takes uids and does nothing (callback cost alone)."""

    def submit(self, uid: str) -> None:
        pass

    def wait_idle(self, timeout: float | None = None) -> bool:
        return True

    def close(self, timeout: float = 0.0) -> None:
        pass


def part_scans(bl: Any, args: argparse.Namespace) -> None:
    from xfusion_bluesky.callbacks import FusionCallback
    from xfusion_bluesky.fusion.methods import METHODS

    configs: list[tuple[str, str | None]] = [
        ("no callback", None),
        ("FusionCallback, worker not fusing", "none"),
        ("FusionCallback + worker (bicubic)", "bicubic"),
        ("FusionCallback + worker (edvr_stf)", "edvr_stf"),
        ("no callback, again (drift check)", None),
    ]
    times: dict[str, list[float]] = {}
    scan(bl)  # warm-up: first-scan imports and allocations
    for label, method in configs:
        # One worker per block of scans: with edvr_stf it is still fusing run i
        # while run i + 1 is scanned, as at a beamline that scans back to back.
        worker: Any
        if method == "none":  # the callback's own cost: uids go nowhere
            worker, token = _Discard(), bl.RE.subscribe(FusionCallback(_Discard()))
        elif method:
            worker, token = subscribe_worker(bl, method)
        else:
            worker, token = None, None
        try:
            if worker is not None:
                worker.wait_idle(timeout=120)  # spawned and connected: not timed
            # Scans without a fusing worker still ask for the default method.
            request = method if method in METHODS else "edvr_stf"
            times[label] = [scan(bl, request)[1] for _ in range(args.scans)]
        finally:
            if worker is not None:
                bl.RE.unsubscribe(token)
                worker.close(timeout=2)
    base = statistics.median(times["no callback"])
    print(f"\n## 3. RunEngine scan time ({args.scans} scans each, roi {args.roi!r})\n")
    print("| configuration | median s | min s | max s | vs no callback |")
    print("|---|---:|---:|---:|---:|")
    for label, values in times.items():
        median = statistics.median(values)
        print(
            f"| {label} | {median:.2f} | {min(values):.2f} | {max(values):.2f} "
            f"| {100 * (median / base - 1):+.1f} % |"
        )


def main() -> None:
    args = parse_args()
    import torch

    from xfusion_bluesky.beamline import setup

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        bl = setup("sim", data_dir=Path(tmp), roi=args.roi)
        try:
            if not args.skip_burst:
                part_burst(bl, args)
            if args.runs:
                part_runs(bl, args)
            if args.scans:
                part_scans(bl, args)
        finally:
            bl.close()


if __name__ == "__main__":
    main()
