"""What post-run fusion costs beyond the model, and whether it keeps up with scans.

1. One burst (``--roi``, default the demo preset), in a child process as the
   worker runs: the model alone (``fuse_iter`` over frames already in memory)
   against the whole post-run path of ``fuse_run`` (Tiled read + registration +
   fuse + derived-run write), same loaded network, alternated ``--repeat``
   times; medians. ``fuse_run`` runs twice each time: sequential (every stage
   in turn, ``pipeline.overlap.OVERLAP = False``, as before read-ahead /
   write-behind) and overlapped (the default). The overhead is ``fuse_run``
   minus the model's time, against the model's time (target ≤ 5 %), measured
   three ways: bicubic's ``fuse_run`` minus its (~0) model time (the former
   measure: what the stages cost one after another, nothing to hide behind);
   EDVR-STF's ``fuse_run`` minus its model time (the target's own measure, noisy
   on a shared CPU); and the time ``fuse_run``'s thread spent outside the
   fusion stream (waiting on Tiled: the critical path).
2. ``--runs N`` consecutive scans, each fused by the automatic worker (separate
   process, fed by ``FusionCallback``; method ``--runs-method``, default bicubic
   so that 50 runs take minutes): derived runs per raw uid, none lost (0) and
   none duplicated (> 1).
3. ``--scans M`` back-to-back scans timed without a callback, with
   ``FusionCallback`` handing uids to a stand-in that drops them (the
   callback's own cost), with a worker fusing with bicubic, with one fusing with
   EDVR-STF (the model then competes with the next scans for the CPU), and
   without again (drift); medians.

4. ``--stream``: peak RSS of a worker-like child fusing a 256-frame 250×400 UHS
   burst (HS 1000×1600 every 16 frames, ingested from HDF5) into a derived run
   with ``--stream-method`` (default bicubic: the pipeline's own memory),
   sequential and overlapped, each in a fresh child. Target: < 2 GB.

    nice .venv/bin/python benchmarks/bench_pipeline.py [--repeat 3] [--runs 50]
    nice .venv/bin/python benchmarks/bench_pipeline.py --skip-burst --stream
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
    parser.add_argument("--stream", action="store_true", help="part 4: peak RSS")
    parser.add_argument("--stream-method", default="bicubic")
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


def timed_fuse_run(
    catalogs: Any, uid: str, method: str, overlap: bool
) -> tuple[list[float], tuple[int, ...]]:
    """Return [fuse_run s, of which in the fusion s, CPU s] and the shape.

    "In the fusion": in ``fuse_iter`` (the input's percentiles) and in the
    stream's ``__next__``, what :func:`model_only` times as the model.
    """
    from xfusion_bluesky.fusion.stream import FusionStream
    from xfusion_bluesky.pipeline import burst as pipeline_burst
    from xfusion_bluesky.pipeline import fuse_run
    from xfusion_bluesky.pipeline import overlap as pipeline_overlap

    in_stream = [0.0]
    original, original_iter = FusionStream.__next__, pipeline_burst.fuse_iter

    def timed(fn: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            tick = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                in_stream[0] += time.perf_counter() - tick

        return call

    FusionStream.__next__ = timed(original)  # type: ignore[method-assign]
    pipeline_burst.fuse_iter = timed(original_iter)
    pipeline_overlap.OVERLAP = overlap
    try:
        cpu = time.process_time()
        tick = time.perf_counter()
        fused = fuse_run(catalogs.root, uid, method=method, force=True)
        total = time.perf_counter() - tick
        cpu = time.process_time() - cpu
    finally:
        FusionStream.__next__ = original  # type: ignore[method-assign]
        pipeline_burst.fuse_iter = original_iter
        pipeline_overlap.OVERLAP = True
    if fused.status != "success":
        raise RuntimeError(f"fusion failed: {fused.reason}")
    return [total, in_stream[0], cpu], tuple(fused.frames.shape)


def measure_burst(
    uri: str, uid: str, method: str, repeat: int, threads: int
) -> dict[str, Any]:
    """In a worker-like child process: model alone vs ``fuse_run``, ``repeat`` times.

    A child, as the fusion worker is: the embedded Tiled server lives in the
    parent, and a client in the server's own process would share its GIL. Each
    repetition times the model, then both pipelines (their order alternating).
    """
    import torch

    from xfusion_bluesky.catalog.connect import open_catalogs
    from xfusion_bluesky.fusion.model.loader import load_network

    torch.set_num_threads(threads)
    catalogs = open_catalogs(uri)
    # fuse_run loads through the same cached loader: one network for both paths.
    network = load_network(method).network
    model_only(catalogs, uid, method, network, frames=2)  # warm-up: allocations
    out: dict[str, Any] = {"read": [], "model": []}
    for mode in ("sequential", "overlapped"):
        out.update({mode: [], f"{mode} stream": [], f"{mode} cpu": []})
    for i in range(repeat):
        read, model = model_only(catalogs, uid, method, network)
        out["read"].append(read)
        out["model"].append(model)
        modes = (
            ("sequential", "overlapped") if i % 2 == 0 else ("overlapped", "sequential")
        )
        for mode in modes:
            (total, in_stream, cpu), out["shape"] = timed_fuse_run(
                catalogs, uid, method, mode == "overlapped"
            )
            out[mode].append(total)
            out[f"{mode} stream"].append(in_stream)
            out[f"{mode} cpu"].append(cpu)
    catalogs.root.context.close()
    return out


def part_burst(bl: Any, args: argparse.Namespace) -> None:
    """Print the per-method table, then the overhead against the model's time.

    The former measure of the overhead is bicubic's (model time ~0) ``fuse_run``,
    many times, set against EDVR-STF's model time: on a shared CPU a direct
    difference of two long, separately timed runs is within the noise of either.
    With the stages overlapped, bicubic has nothing to hide them behind, so the
    direct difference and the time off the fusion stream are printed too.
    """
    import multiprocessing

    uid, _ = scan(bl)
    print(f"\n## 1. One burst (roi {args.roi!r}, torch threads {args.threads})\n")
    print(
        "| method | frames | fused size | Tiled read s | model s "
        "| fuse_run sequential s | fuse_run overlapped s | overlapped / sequential "
        "| off the fusion sequential s | off the fusion overlapped s |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    medians: dict[str, dict[str, float]] = {}
    keys = ("read", "model", "sequential", "overlapped")
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        for method in args.methods.split(","):
            # The cheap baseline measures the overhead: more repetitions.
            repeat = max(args.repeat, 5) if method == "bicubic" else args.repeat
            got = pool.apply(
                measure_burst, (bl.connection.uri, uid, method, repeat, args.threads)
            )
            m = {key: statistics.median(got[key]) for key in keys}
            for mode in ("sequential", "overlapped"):
                m[f"{mode} off"] = statistics.median(
                    t - s for t, s in zip(got[mode], got[f"{mode} stream"], strict=True)
                )
            medians[method] = m
            frames, height, width = got["shape"]
            print(
                f"| {method} | {frames} | {height}×{width} | {m['read']:.2f} "
                f"| {m['model']:.2f} | {m['sequential']:.2f} | {m['overlapped']:.2f} "
                f"| {m['overlapped'] / m['sequential']:.2f} "
                f"| {m['sequential off']:.2f} | {m['overlapped off']:.2f} |"
            )
    for method, m in medians.items():
        if method == "bicubic":
            continue
        model = m["model"]
        print(f"\npipeline overhead over the {method} model time ({model:.1f} s):\n")
        print("| pipeline | measure | overhead s | of the model time |")
        print("|---|---|---:|---:|")
        rows = []
        if "bicubic" in medians:
            b = medians["bicubic"]
            rows += [
                (mode, "bicubic fuse_run − its model", b[mode] - b["model"])
                for mode in ("sequential", "overlapped")
            ]
        for mode in ("sequential", "overlapped"):
            rows.append((mode, f"{method} fuse_run − its model", m[mode] - model))
            rows.append((mode, f"{method} fuse_run off the fusion", m[f"{mode} off"]))
        for mode, measure, seconds in rows:
            share = f"{100 * seconds / model:.1f} %"
            print(f"| {mode} | {measure} | {seconds:.2f} | {share} |")
        off = m["overlapped off"] / max(m["sequential off"], 1e-9)
        print(f"\noverlapped / sequential time off the fusion: {off:.2f}")


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


def stream_child(uri: str, uid: str, method: str, overlap: bool) -> dict[str, Any]:
    """In a fresh child: fuse ``uid`` once; return peak RSS (GiB) and seconds."""
    import torch

    from xfusion_bluesky.catalog.connect import open_catalogs
    from xfusion_bluesky.pipeline import fuse_run
    from xfusion_bluesky.pipeline import overlap as pipeline_overlap

    torch.set_num_threads(1)
    pipeline_overlap.OVERLAP = overlap
    catalogs = open_catalogs(uri)
    before = _memory_gib("VmRSS")
    tick = time.perf_counter()
    fused = fuse_run(catalogs.root, uid, method=method, force=True)
    seconds = time.perf_counter() - tick
    peak = _memory_gib("VmHWM")
    if fused.status != "success":
        raise RuntimeError(f"fusion failed: {fused.reason}")
    return {
        "shape": tuple(fused.frames.shape),
        "before": before,
        "peak": peak,
        "seconds": seconds,
    }


def _memory_gib(field: str) -> float:
    """This process's ``VmRSS`` or ``VmHWM`` (peak RSS) in GiB, from /proc.

    Not ``ru_maxrss``: Linux carries it over an exec, so a spawned child starts
    with its parent's peak.
    """
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 2**20  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def ingest_burst(root: Any, folder: Path, frames: int = 256, every: int = 16) -> str:
    """Write a 250×400 UHS / 1000×1600 HS recording pair and ingest it; its uid.

    A moving pattern with noise: the data only have to be fusable.
    """
    import h5py
    import numpy as np

    from xfusion_bluesky.geometry import Similarity
    from xfusion_bluesky.ingest import (
        ingest_recordings,
        registration_block,
        write_registration,
    )

    height, width = 250, 400
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0 : 4 * height, 0 : 4 * width].astype(np.float32)
    with h5py.File(folder / "hs.h5", "w") as f:
        data = f.create_dataset(
            "/entry/data/data",
            (frames // every, 4 * height, 4 * width),
            np.uint16,
            chunks=(1, 4 * height, 4 * width),
        )
        for k in range(data.shape[0]):
            wave = np.sin((cols + 20 * k) / 37) * np.cos(rows / 53)
            data[k] = (2000 + 1000 * wave).astype(np.uint16)
    with h5py.File(folder / "uhs.h5", "w") as f:
        data = f.create_dataset(
            "/entry/data/data",
            (frames, height, width),
            np.uint16,
            chunks=(1, height, width),
        )
        small = rows[::4, ::4], cols[::4, ::4]
        for t in range(frames):
            wave = np.sin((4 * small[1] + 20 * t / every) / 37) * np.cos(
                4 * small[0] / 53
            )
            noise = rng.normal(0, 5, (height, width))
            data[t] = np.clip(500 + 250 * wave + noise, 0, 1023).astype(np.uint16)
    registration = write_registration(
        folder / "registration.json",
        registration_block(
            Similarity((4 * height, 4 * width)), (height, width), measured_by="bench"
        ),
    )
    return ingest_recordings(
        root,
        folder / "uhs.h5",
        folder / "hs.h5",
        registration=registration,
        uhs_rate_hz=2e6,
        hs_rate_hz=2e6 / every,
    )


def part_stream(bl: Any, args: argparse.Namespace) -> None:
    """Peak RSS of one full-size burst fused into a derived run, per pipeline."""
    import multiprocessing

    folder = Path(bl.hdf5_dir) / "recordings"  # where the server reads files
    folder.mkdir(parents=True, exist_ok=True)
    uid = ingest_burst(bl.connection.client, folder)
    print(
        f"\n## 4. Peak RSS: a 256-frame 250×400 burst fused with "
        f"{args.stream_method} into a derived run\n"
    )
    print("| pipeline | fused | RSS after imports GiB | peak RSS GiB | fuse_run s |")
    print("|---|---|---:|---:|---:|")
    for overlap in (False, True):
        # A fresh child each: ru_maxrss is the process's high-water mark.
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            got = pool.apply(
                stream_child,
                (bl.connection.uri, uid, args.stream_method, overlap),
            )
        frames, height, width = got["shape"]
        print(
            f"| {'overlapped' if overlap else 'sequential'} "
            f"| {frames} × {height}×{width} | {got['before']:.2f} "
            f"| {got['peak']:.2f} | {got['seconds']:.1f} |"
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
            if args.stream:
                part_stream(bl, args)
        finally:
            bl.close()


if __name__ == "__main__":
    main()
