"""Soak: scans with faults injected at random; every raw run must reach one outcome.

A standalone Tiled server (``xfusion-bluesky serve``, SQLite) and a beamline in
the demo ROI with automatic fusion in a worker process record ``--scans`` runs of
three bursts each. Before each scan one fault is drawn (seeded):

- ``none``: nothing happens;
- ``server``: the server is stopped after the first burst and restarted after
  the scan (the documents go to the backup; the worker's catch-up replays it);
- ``worker``: the worker process is killed while it fuses the run;
- ``truncate``: automatic fusion is stopped, the UHS file is cut to half
  after the scan, and fusion restarted (its catch-up fuses the run);
- ``pause``: a deferred pause after the first burst, then ``RE.resume()``;
- ``abort``: a pause after the first burst, then ``RE.abort()``.

The table counts, per fault, the raw runs and their derived runs: each must
have exactly one finished derived run (``success`` or ``failed`` with a
reason); ``lost`` have none when the wait ends, ``duplicated`` more than one.

    nice .venv/bin/python benchmarks/bench_faults.py [--scans 50] [--seed 0]
"""

from __future__ import annotations

import argparse
import collections
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

FAULTS = ("none", "server", "worker", "truncate", "pause", "abort")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--method", default="bicubic", help="fusion method asked for")
    parser.add_argument(
        "--wait-s", type=float, default=600.0, help="longest wait for outcomes"
    )
    return parser.parse_args()


class Server:
    """``xfusion-bluesky serve`` in a child process, stopped and restarted at will."""

    def __init__(self, data_dir: Path, api_key: str) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.data_dir, self.api_key = data_dir, api_key
        self.uri = f"http://127.0.0.1:{self.port}/api/v1"
        self.process: subprocess.Popen[bytes] | None = None
        self.started = False
        self.restarts = 0

    def start(self) -> None:
        if self.process is None and self.started:
            self.restarts += 1
        self.started = True
        cli = Path(sys.executable).parent / "xfusion-bluesky"
        log = (self.data_dir / "server.log").open("ab")
        self.process = subprocess.Popen(
            [
                str(cli),
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--port",
                str(self.port),
                "--api-key",
                self.api_key,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz").is_success:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the Tiled server did not start; see server.log")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)
            self.process = None


class FaultAfterFirstBurst:
    """RunEngine callback: calls ``action`` once, at the run's first event."""

    def __init__(self) -> None:
        self.action: Any = None

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        if name in ("event", "event_page") and self.action is not None:
            action, self.action = self.action, None
            action()


def main() -> int:
    args = parse_args()
    from bluesky.utils import RunEngineInterrupted
    from tiled.client import from_uri

    from xfusion_bluesky.beamline import setup
    from xfusion_bluesky.catalog.connect import open_catalogs
    from xfusion_bluesky.plans.dual_camera import dual_camera_scan

    rng = np.random.default_rng(args.seed)
    root = Path(tempfile.mkdtemp(prefix="xfusion-soak-"))
    key = secrets.token_hex(16)
    server = Server(root, key)
    server.start()
    bl = setup("sim", tiled_uri=server.uri, api_key=key, data_dir=root, roi="demo")
    worker_options = {"poll_s": 2.0, "max_restarts": 100, "torch_threads": 1}
    bl.start_fusion("process", **worker_options)
    fault_hook = FaultAfterFirstBurst()
    bl.RE.subscribe(fault_hook)
    starts: list[str] = []
    bl.RE.subscribe(lambda name, doc: starts.append(doc["uid"]), "start")
    drawn: dict[str, str] = {}
    request = {"requested": True, "method": args.method, "lr_separation": 1}
    tick = time.perf_counter()
    for n in range(args.scans):
        fault = str(rng.choice(FAULTS))
        first = len(starts)
        if fault == "truncate":
            bl.stop_fusion()
        if fault == "server":
            fault_hook.action = server.stop
        elif fault in ("pause", "abort"):
            fault_hook.action = lambda: _pause_soon(bl.RE)
        try:
            bl.RE(dual_camera_scan(num_bursts=3, md={"fusion": request}))
        except RunEngineInterrupted:  # the pause asked for: resume or abort below
            pass
        except Exception as err:  # the soak records, never stops on a scan
            print(f"scan {n} ({fault}) raised {type(err).__name__}: {err}")
        if bl.RE.state == "paused":
            (bl.RE.abort if fault == "abort" else bl.RE.resume)()
        fault_hook.action = None
        uid = starts[first] if len(starts) > first else None
        if uid is None:
            print(f"scan {n} ({fault}) made no run")
            continue
        drawn[uid] = fault
        if fault == "server":
            server.start()
        elif fault == "truncate":
            _truncate_uhs_file(bl.tiled[uid])
            bl.start_fusion("process", **worker_options)
        elif fault == "worker":
            _kill_when_busy(bl.fusion_worker)
        print(f"scan {n + 1}/{args.scans}: {fault} {uid[:8]}", flush=True)
    scans_s = time.perf_counter() - tick
    client = from_uri(server.uri, api_key=key)
    catalogs = open_catalogs(client)
    counts = _wait_for_outcomes(catalogs, drawn, args.wait_s)
    _print_table(drawn, counts, scans_s, time.perf_counter() - tick, server.restarts)
    bl.close()
    server.stop()
    lost = sum(1 for uid in drawn if not counts[uid])
    duplicated = sum(1 for uid in drawn if len(counts[uid]) > 1)
    return 0 if lost == duplicated == 0 and len(drawn) == args.scans else 1


def _pause_soon(RE: Any) -> None:
    """Ask for a deferred pause from another thread, as one Ctrl-C does.

    ``request_pause`` waits on the RunEngine's loop, which is running this
    callback: called here directly it would never return.
    """
    threading.Thread(target=RE.request_pause, kwargs={"defer": True}).start()


def _truncate_uhs_file(run: Any) -> None:
    """Cut the run's UHS HDF5 file to half its size, as a crashed writer leaves it."""
    for source in run["primary"]["uhs_image"].data_sources():
        for asset in source.assets:
            path = Path(asset.data_uri.removeprefix("file://localhost"))
            with path.open("r+b") as f:
                f.truncate(path.stat().st_size // 2)


def _kill_when_busy(worker: Any, timeout_s: float = 20.0) -> None:
    """SIGKILL the worker's child once it is fusing (or after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and getattr(worker, "state", "") != "fusing":
        time.sleep(0.05)
    try:
        if worker.pid:
            os.kill(worker.pid, signal.SIGKILL)
    except ProcessLookupError:  # it ended on its own meanwhile: the table says how
        print(f"worker already gone ({worker.state}: {worker.error})")


def _wait_for_outcomes(
    catalogs: Any, drawn: dict[str, str], wait_s: float
) -> dict[str, list[Any]]:
    """Return each raw uid's finished derived runs, once all have one or at timeout."""
    from xfusion_bluesky.catalog.queries import find_derived

    deadline = time.monotonic() + wait_s
    while True:
        counts = {
            uid: [
                r
                for r in find_derived(catalogs, uid)
                if r.finished and not r.fusion.get("orphaned")
            ]
            for uid in drawn
        }
        if all(counts.values()) or time.monotonic() > deadline:
            return counts
        time.sleep(2.0)


def _print_table(
    drawn: dict[str, str],
    counts: dict[str, list[Any]],
    scans_s: float,
    total_s: float,
    restarts: int,
) -> None:
    rows: dict[str, collections.Counter[str]] = collections.defaultdict(
        collections.Counter
    )
    for uid, fault in drawn.items():
        runs = counts[uid]
        row = rows[fault]
        row["runs"] += 1
        if not runs:
            row["lost"] += 1
        elif len(runs) > 1:
            row["duplicated"] += 1
        else:
            status = runs[0].status
            row[status] += 1
            if status != "success" and not runs[0].reason:
                row["no reason"] += 1
            if runs[0].missing_bursts:
                row["bursts missing"] += 1
    columns = ("runs", "success", "failed", "bursts missing", "lost", "duplicated")
    print(f"\n| fault | {' | '.join(columns)} |")
    print("|---" * (len(columns) + 1) + "|")
    total: collections.Counter[str] = collections.Counter()
    for fault in FAULTS:
        row = rows.get(fault, collections.Counter())
        total.update(row)
        print(f"| {fault} | " + " | ".join(str(row[c]) for c in columns) + " |")
    print("| **all** | " + " | ".join(str(total[c]) for c in columns) + " |")
    outcomes = total["runs"] - total["lost"] - total["duplicated"]
    print(
        f"\n{outcomes}/{total['runs']} runs with exactly one final outcome; "
        f"{total['lost']} lost, {total['duplicated']} duplicated; "
        f"server restarted {restarts}×; scans {scans_s:.0f} s, all {total_s:.0f} s"
    )


if __name__ == "__main__":
    raise SystemExit(main())
