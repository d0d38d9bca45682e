"""Seconds from trigger to run-registered-and-readable, and read-back through Tiled.

One burst of 256 UHS frames of 250×400 plus the matching HS frames of 800×1280
(the ``full`` preset: 1.2 MHz / 75 kHz, 16 HS frames), in the sim flavour and
through the caproto IOC over Channel Access, each with an embedded Tiled server in
a temporary directory. The first run of each flavour renders the synthetic scene
("cold"); later runs image the same seeded event from the render cache ("warm"),
which is the acquisition path alone (a real camera renders nothing).

    .venv/bin/python benchmarks/bench_acquisition.py [--runs 3] [--no-ioc]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Channel Access on loopback, before anything imports ophyd (libca reads it once).
CA_PORT = str(_free_port())
os.environ.update(
    EPICS_CA_ADDR_LIST="127.0.0.1",
    EPICS_CA_AUTO_ADDR_LIST="NO",
    EPICS_CA_SERVER_PORT=CA_PORT,
)

PREFIX = "XF:BENCH:"


def timed_run(bl, label: str) -> dict[str, float | str]:
    """Run one dual_camera_scan burst; return the stage times in seconds."""
    from xfusion_bluesky.plans.dual_camera import dual_camera_scan

    marks: dict[str, float] = {}

    def hook(msg) -> None:
        if msg.command == "trigger" and msg.obj is bl.timing:
            marks["trigger"] = time.perf_counter()
        if msg.command == "create":
            marks["stored"] = time.perf_counter()

    bl.RE.msg_hook = hook
    token = bl.RE.subscribe(
        lambda name, doc: marks.setdefault("stop", time.perf_counter()), "stop"
    )
    start = time.perf_counter()
    (uid,) = bl.RE(dual_camera_scan(uhs_frames=256, timeout_s=300))
    bl.RE.msg_hook = None
    bl.RE.unsubscribe(token)
    run = bl.tiled[uid]
    run["primary"]["uhs_image"][0, 0, :4, :4]  # registered and readable
    readable = time.perf_counter()
    t0 = time.perf_counter()
    uhs = run["primary"]["uhs_image"].read()
    t_uhs = time.perf_counter() - t0
    t0 = time.perf_counter()
    hs = run["primary"]["hs_image"].read()
    t_hs = time.perf_counter() - t0
    if uhs.shape != (1, 256, 250, 400) or hs.shape != (1, 16, 800, 1280):
        raise RuntimeError(f"unexpected shapes {uhs.shape}, {hs.shape}")
    return {
        "run": label,
        "trigger→stored": marks["stored"] - marks["trigger"],
        "stop→readable": readable - marks["stop"],
        "trigger→readable": readable - marks["trigger"],
        "RE call": marks["stop"] - start,
        f"read UHS {uhs.nbytes / 1e6:.0f} MB": t_uhs,
        f"read HS {hs.nbytes / 1e6:.0f} MB": t_hs,
    }


def same_event_again(mode: str) -> None:
    """Make the next burst image the same event as the last (render cache hit).

    The sim restarts its pulse count at every staging; the IOC counts on, so its
    seed is shifted back by the pulses fired (burst seed = seed + pulse count).
    """
    if mode == "epics":
        from ophyd import EpicsSignal, EpicsSignalRO

        count = EpicsSignalRO(f"{PREFIX}DG1:PulseCount_RBV", name="count")
        seed = EpicsSignal(f"{PREFIX}SIM:SceneSeed", name="seed")
        seed.set(-int(count.get(timeout=5))).wait(5)


def bench(mode: str, runs: int, data_dir: Path) -> list[dict[str, float | str]]:
    from xfusion_bluesky.beamline import setup

    bl = setup(mode, data_dir=data_dir, roi="full", prefix=PREFIX)
    rows = []
    try:
        for i in range(runs):
            same_event_again(mode)
            rows.append(
                {"flavour": mode, **timed_run(bl, "cold" if i == 0 else "warm")}
            )
    finally:
        bl.close()
    return rows


def start_ioc() -> subprocess.Popen:
    ioc = subprocess.Popen(
        [sys.executable, "-m", "xfusion_bluesky.ioc", "--prefix", PREFIX,
         "--port", CA_PORT],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    from ophyd import EpicsSignalRO

    probe = EpicsSignalRO(f"{PREFIX}DG1:PulseCount_RBV", name="probe")
    probe.wait_for_connection(timeout=60)
    return ioc


def print_table(rows: list[dict[str, float | str]]) -> None:
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        cells = [f"{v:.2f}" if isinstance(v, float) else str(v) for v in row.values()]
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per flavour")
    parser.add_argument("--no-ioc", action="store_true", help="sim flavour only")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows += bench("sim", args.runs, Path(tmp) / "sim")
        if not args.no_ioc:
            ioc = start_ioc()
            try:
                rows += bench("epics", args.runs, Path(tmp) / "epics")
            finally:
                ioc.terminate()
                ioc.wait(10)
    print_table(rows)


if __name__ == "__main__":
    main()
