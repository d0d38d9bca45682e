"""Prefect scale-out: runs fused per minute with 1 and 2 workers, and live latency.

The facility's stack on this machine, as ``tests/system/test_prefect_scale.py``
builds it: a PostgreSQL cluster (SQLite when PostgreSQL is missing; the output
says which), a Tiled server on it (``xfusion-bluesky serve``), a local Prefect
server (SQLite, temp home) with the fusion deployment (``--method``, default
bicubic), and process workers (``prefect worker start --limit 1``) with one torch
thread each. Workers look for flow runs every second
(``PREFECT_WORKER_QUERY_SECONDS=1``, as ``LocalPrefect.env`` sets; Prefect's
default is 10 s, which would add up to 10 s of latency to every run).

1. ``--runs N`` demo-preset sim scans are recorded once, with no fusion.
2. For each worker count in ``--workers`` (default ``1,2``): the derived runs are
   deleted, k workers started, all N runs submitted at once, and the wait lasts
   until every raw run has a finished derived run. Throughput: N over the time
   from the first submission to the last derived run's stop document; the ratio
   is against the 1-worker row (or the first row) of this process.
3. ``--live K`` scans (default 6) with ``fusion="prefect"``, one every
   ``--live-every-s`` seconds, with the largest worker count: latency from the
   raw run's stop document to its derived run's stop document.

Every flow run is a fresh process (a ``process`` work pool), so with bicubic
the per-run cost is mostly that process's start (imports, Tiled client) rather
than the fusion: the "fuse s" column (derived start to stop) against the "flow
run s" column (Prefect's start to end) shows how much.

    nice .venv/bin/python benchmarks/bench_scale.py [--runs 40] [--json out.json]
    nice .venv/bin/python benchmarks/bench_scale.py --runs 4 --live 2   # smoke

On 2 shared cores a 4-run smoke (``--runs 4 --live 2``) takes 2 min: ~9 s per
bicubic run with one worker (a 4.6 s flow run, of which 1 s fusion), 1.2× that
rate with two (two cores, shared). The defaults take ~13 min with bicubic;
``edvr_stf_detail`` adds its model time to every run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# The stack's helpers live with the tests (tests/postgres.py, tests/servers.py):
# reused here rather than copied.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

API_KEY = "benchscale"
POOL = "xfusion"
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="raw runs (default 40)")
    parser.add_argument("--workers", default="1,2", help="worker counts (default 1,2)")
    parser.add_argument(
        "--method",
        default="bicubic",
        choices=("bicubic", "edvr_stf_detail"),
        help="the deployment's method (default bicubic)",
    )
    parser.add_argument("--live", type=int, default=6, help="live scans (0: skip)")
    parser.add_argument("--live-every-s", type=float, default=5.0, help="scan cadence")
    parser.add_argument("--device", default="cpu", help="workers' XFUSION_DEVICE")
    parser.add_argument(
        "--catalog",
        default="auto",
        choices=("auto", "postgres", "sqlite"),
        help="Tiled catalog (auto: PostgreSQL when installed, else SQLite)",
    )
    parser.add_argument("--timeout-s", type=float, default=3600.0, help="longest wait")
    parser.add_argument("--json", help="also write every number to this JSON file")
    args = parser.parse_args()
    args.worker_counts = [int(k) for k in args.workers.split(",") if k.strip()]
    if not args.worker_counts or min(args.worker_counts) < 1 or args.runs < 1:
        parser.error("--workers needs counts >= 1 and --runs >= 1")
    return args


def machine(args: argparse.Namespace) -> dict[str, Any]:
    """Date, CPU, cores, load, and the command line."""
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo", encoding="utf-8"):  # noqa: SIM115
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": model,
        "cores": len(os.sched_getaffinity(0)),
        "load_1min": round(os.getloadavg()[0], 2),
        "worker_torch_threads": 1,
        "worker_device": args.device,
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
    }


@contextlib.contextmanager
def facility(tmp: Path, catalog: str) -> Iterator[dict[str, Any]]:
    """PostgreSQL (or SQLite), Tiled on it, and Prefect; this process points at it."""
    from postgres import PostgresCluster, postgres_binaries
    from prefect.context import refresh_global_settings_context
    from servers import ServedTiled, free_port, serve_command

    from xfusion_bluesky.orchestration.local import LocalPrefect

    hdf5 = tmp / "hdf5"
    hdf5.mkdir()
    port = free_port()
    args = ["--data-dir", str(tmp / "tiled"), "--hdf5-dir", str(hdf5)]
    args += ["--api-key", API_KEY, "--port", str(port)]
    with contextlib.ExitStack() as stack:
        backend = "SQLite"
        if catalog != "sqlite":
            try:
                if postgres_binaries() is None:
                    raise RuntimeError("no initdb, pg_ctl and postgres found")
                pg = stack.enter_context(PostgresCluster())
                args += ["--catalog-uri", pg.uri()]
                backend = "PostgreSQL"
            except RuntimeError as err:
                if catalog == "postgres":
                    raise
                backend = f"SQLite (PostgreSQL unavailable: {err})".splitlines()[0]
        tiled = stack.enter_context(
            ServedTiled(serve_command(*args), port, tmp / "tiled.log")
        )
        prefect = stack.enter_context(LocalPrefect(tmp / "prefect"))
        os.environ.update(prefect.env)
        refresh_global_settings_context()  # Prefect froze its settings at import
        yield {"tiled": tiled, "prefect": prefect, "hdf5": hdf5, "backend": backend}


@contextlib.contextmanager
def running_workers(prefect: Any, k: int, label: str, device: str) -> Iterator[None]:
    """Start ``k`` workers, wait until Prefect sees them online, stop them after."""
    from prefect.client.orchestration import get_client

    env = {
        "XFUSION_TILED_API_KEY": API_KEY,
        "XFUSION_DEVICE": device,
        "XFUSION_TORCH_THREADS": "1",
    }
    names = [f"{label}-{n}" for n in range(k)]
    # Fresh names each time: a stopped worker stays listed (offline) for a while.
    workers = [prefect.start_worker(name, env, pool=POOL) for name in names]
    try:
        deadline = time.monotonic() + 120
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                seen = client.read_workers_for_work_pool(POOL)
                online = {w.name for w in seen if w.status.value == "ONLINE"}
                if online >= set(names):
                    break
                time.sleep(0.5)
            else:
                raise TimeoutError(f"workers {names} not online in 120 s")
        yield
    finally:
        for worker in workers:
            worker.stop()


def finished_derived(catalogs: Any) -> dict[str, dict[str, Any]]:
    """Raw uid -> start time, stop time, status of its finished derived run."""
    from xfusion_bluesky.stored_format import DERIVED_LINK_KEYS

    found = {}
    for node in catalogs.fused.values():
        start, stop = node.metadata.get("start") or {}, node.metadata.get("stop")
        raw = next((start[key] for key in DERIVED_LINK_KEYS if key in start), None)
        if raw and stop:
            found[raw] = {
                "start": float(start["time"]),
                "stop": float(stop["time"]),
                "status": stop.get("exit_status"),
            }
    return found


def flow_runs(ids: list[str]) -> list[Any]:
    """Prefect's records of flow runs ``ids``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    if not ids:
        return []
    with get_client(sync_client=True) as client:
        only = FlowRunFilter(id=FlowRunFilterId(any_=ids))
        return client.read_flow_runs(flow_run_filter=only, limit=len(ids))


def wait_fused(
    catalogs: Any, uids: list[str], ids: list[str], timeout_s: float
) -> dict[str, dict[str, Any]]:
    """Wait until each raw run has a finished derived run or its flow run ended."""
    deadline, polls = time.monotonic() + timeout_s, 0
    while True:
        done = finished_derived(catalogs)
        if all(uid in done for uid in uids) or time.monotonic() > deadline:
            return done
        polls += 1
        if polls % 10 == 0:  # a flow run that ended without a derived run
            states = [r.state.type.name for r in flow_runs(ids) if r.state]
            if len(states) == len(ids) and set(states) <= TERMINAL:
                return finished_derived(catalogs)
        time.sleep(1.0)


def flow_run_seconds(ids: list[str]) -> list[float]:
    """Seconds from each flow run's start to its end, as Prefect recorded them."""
    return [
        (run.end_time - run.start_time).total_seconds()
        for run in flow_runs(ids)
        if run.start_time and run.end_time
    ]


def clear_derived(catalogs: Any) -> None:
    """Delete every derived run, so that the next configuration fuses every run."""
    for key in list(catalogs.fused):
        catalogs.fused[key].delete(recursive=True, external_only=False)
    # Listed again, not len(): the client caches a container's length.
    left = list(catalogs.fused)
    if left:
        raise RuntimeError(f"derived runs left after the clean-up: {left}")


def batch(
    catalogs: Any,
    stack: dict[str, Any],
    uids: list[str],
    k: int,
    *,
    attempt: int,
    args: Any,
) -> dict[str, Any]:
    """Fuse every raw run in ``uids`` with ``k`` workers; the throughput row.

    ``attempt`` (>= 1) numbers the configuration, for the idempotency keys.
    """
    from xfusion_bluesky.orchestration.keys import (
        FUSE_DEPLOYMENT,
        rerun_key,
        submission_key,
    )
    from xfusion_bluesky.orchestration.submit import submit_flow_run

    clear_derived(catalogs)
    # Prefect returns the existing flow run for a (flow, idempotency key) it has
    # seen, and every configuration fuses the same runs with the same fusion key:
    # each configuration submits a numbered re-run of the key (rerun_key)
    # instead: a new flow run for Prefect, the same fusion for Tiled.
    keys = {
        uid: rerun_key(
            submission_key(catalogs.raw[uid].start, method=args.method), attempt
        )
        for uid in uids
    }
    with running_workers(stack["prefect"], k, f"batch{attempt}", args.device):
        progress(f"{k} worker(s) online: submitting {len(uids)} runs")
        first = time.time()
        ids = [submit_flow_run(FUSE_DEPLOYMENT, uid, keys[uid]) for uid in uids]
        submitted = time.time() - first
        done = wait_fused(catalogs, uids, ids, args.timeout_s)
    fused = [done[uid] for uid in uids if uid in done]
    progress(f"{k} worker(s): {len(fused)} of {len(uids)} runs fused")
    wall = max((d["stop"] for d in fused), default=float("nan")) - first
    return {
        "workers": k,
        "runs": len(uids),
        "fused": len(fused),
        "failed": sum(d["status"] != "success" for d in fused),
        "submit_s": submitted,
        "wall_s": wall,
        "runs_per_min": 60.0 * len(fused) / wall,
        "s_per_run_per_worker": wall * k / max(len(fused), 1),
        "fuse_s": [d["stop"] - d["start"] for d in fused],
        "flow_run_s": flow_run_seconds(ids),
    }


def scan(bl: Any, method: str) -> str:
    """Record one demo-preset scan that asks for ``method``; return its uid."""
    from xfusion_bluesky.plans.dual_camera import dual_camera_scan

    request = {"requested": True, "method": method, "lr_separation": 1}
    (uid,) = bl.RE(dual_camera_scan(md={"fusion": request}))
    return str(uid)


def live(
    bl: Any, catalogs: Any, stack: dict[str, Any], k: int, args: Any
) -> dict[str, Any]:
    """Scan ``args.live`` runs at a steady cadence with fusion on; the latencies."""
    uids = []
    with running_workers(stack["prefect"], k, "live", args.device):
        progress(f"{k} worker(s) online: {args.live} live scans")
        submitter = bl.start_fusion("prefect")
        try:
            tick = time.monotonic()
            for n in range(args.live):
                # A steady cadence: wait for the slot, not a fixed pause.
                time.sleep(max(0.0, tick + n * args.live_every_s - time.monotonic()))
                uids.append(scan(bl, args.method))
            submitter.wait_idle(60)
            ids = [s.flow_run_id for s in submitter.results if s.flow_run_id]
            done = wait_fused(catalogs, uids, ids, args.timeout_s)
        finally:
            bl.stop_fusion()
    raw_stop = {uid: float(catalogs.raw[uid].metadata["stop"]["time"]) for uid in uids}
    # Where the latency goes: queue, worker poll and process start come before
    # the flow run's start; Tiled reads, fusion and writes after it.
    to_start = [
        run.start_time.timestamp() - raw_stop[run.parameters["raw_uid"]]
        for run in flow_runs(ids)
        if run.start_time and run.parameters.get("raw_uid") in raw_stop
    ]
    return {
        "workers": k,
        "runs": len(uids),
        "every_s": args.live_every_s,
        "fused": sum(uid in done for uid in uids),
        "failed": sum(done[uid]["status"] != "success" for uid in uids if uid in done),
        "latency_s": [done[uid]["stop"] - raw_stop[uid] for uid in uids if uid in done],
        "to_flow_start_s": to_start,
        "submit_errors": [s.error for s in submitter.results if s.error],
    }


def progress(message: str) -> None:
    """One timestamped line on stderr: the tables go to stdout."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_tables(info: dict[str, Any], rows: list[dict], live_row: dict | None) -> None:
    print(
        f"# bench_scale, {info['date']}\n\n{info['cpu']}, {info['cores']} cores, "
        f"load {info['load_1min']} at start; workers: 1 torch thread each, device "
        f"{info['worker_device']}, PREFECT_WORKER_QUERY_SECONDS=1; Tiled catalog "
        f"on {info['backend']}; method {info['method']}\n\n`{info['command']}`"
    )
    base = next((r for r in rows if r["workers"] == 1), rows[0])
    print(f"\n## Throughput: {base['runs']} runs submitted at once\n")
    print(
        "| workers | runs | fused | failed | submit s | wall s | runs/min "
        f"| × {base['workers']} worker | s/run per worker | median fuse s "
        "| median flow run s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['workers']} | {r['runs']} | {r['fused']} | {r['failed']} "
            f"| {r['submit_s']:.1f} | {r['wall_s']:.1f} | {r['runs_per_min']:.1f} "
            f"| {r['runs_per_min'] / base['runs_per_min']:.2f} "
            f"| {r['s_per_run_per_worker']:.1f} | {_median(r['fuse_s']):.2f} "
            f"| {_median(r['flow_run_s']):.1f} |"
        )
    print(
        "\nwall: first submission to the last derived run's stop document; "
        "s/run per worker: wall × workers / fused; fuse: a derived run's start to "
        "stop; flow run: Prefect's start to end (process start, Tiled reads, fuse)."
    )
    if live_row is None:
        return
    r = live_row
    lat = r["latency_s"]
    print(
        f"\n## Live latency: {r['runs']} scans, one every {r['every_s']:.0f} s, "
        f"{r['workers']} workers\n"
    )
    print(
        "| workers | runs | fused | failed | median latency s | max latency s "
        "| median to flow-run start s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {r['workers']} | {r['runs']} | {r['fused']} | {r['failed']} "
        f"| {_median(lat):.1f} | {max(lat, default=float('nan')):.1f} "
        f"| {_median(r['to_flow_start_s']):.1f} |"
    )
    print(
        "\nlatency: the raw run's stop document to its derived run's stop document; "
        "to flow-run start: the raw run's stop to Prefect's start of its flow run."
    )
    if r["submit_errors"]:
        print(f"submission errors: {r['submit_errors']}")


def main() -> None:
    args = parse_args()
    from xfusion_bluesky.beamline import setup
    from xfusion_bluesky.catalog.connect import open_catalogs
    from xfusion_bluesky.orchestration.deploy import deploy

    info = machine(args)
    info["method"] = args.method
    tick = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, facility(Path(tmp), args.catalog) as st:
        info["backend"] = st["backend"]
        progress(f"Tiled on {st['backend']} and Prefect up")
        # No schedule: a catch-up would submit the recorded runs on its own.
        deploy(
            st["tiled"].uri, method=args.method, catch_up_every_s=None, heartbeat_s=None
        )
        bl = setup(
            "sim",
            tiled_uri=st["tiled"].uri,
            api_key=API_KEY,
            data_dir=Path(tmp) / "data",
            hdf5_dir=st["hdf5"],
            roi="demo",
            fusion="off",
        )
        catalogs = open_catalogs(st["tiled"].uri, api_key=API_KEY)
        try:
            recorded = time.perf_counter()
            uids = [scan(bl, args.method) for _ in range(args.runs)]
            info["record_s"] = time.perf_counter() - recorded
            progress(f"{len(uids)} raw runs recorded in {info['record_s']:.0f} s")
            rows = [
                batch(catalogs, st, uids, k, attempt=n, args=args)
                for n, k in enumerate(args.worker_counts, start=1)
            ]
            live_row = None
            if args.live:
                k = max(args.worker_counts)
                live_row = live(bl, catalogs, st, k, args)
        finally:
            catalogs.root.context.close()
            bl.close()
    info["seconds"] = time.perf_counter() - tick
    print_tables(info, rows, live_row)
    print(
        f"\n{info['record_s']:.0f} s recording, {info['seconds']:.0f} s in all; "
        f"load {os.getloadavg()[0]:.2f} at end"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"machine": info, "batch": rows, "live": live_row}, f, indent=1)


if __name__ == "__main__":
    main()
