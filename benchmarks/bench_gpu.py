"""Every GPU speed measurement in one run, written as JSON and markdown.

    python benchmarks/bench_gpu.py --out DIR            # < 6 min on one H100
    python benchmarks/bench_gpu.py --out DIR --quick    # < 2 min
    python benchmarks/bench_gpu.py --dry-run --out DIR  # every section on the CPU, tiny

On a GPU host with pip: ``make bench-gpu`` (see the Makefile: ``TORCH_SPEC``). On the
lent GPU machine (no network; torch, torchvision, numpy, scipy, h5py, pytest there):
``PYTHONPATH=. python3 benchmarks/bench_gpu.py --out $OUT``; the Tiled burst needs
the project's catalog packages (tiled[server], bluesky, bluesky-tiled-plugins, ...)
carried as wheels, and says which are missing otherwise. Without CUDA the script
says so, writes that to DIR and exits 0.

Sections, most important first; each is skipped (and says so) when the time left
is short, and the files are rewritten after each, so a killed run keeps its rows:

``network``  paper-size EDVR-STF (``edvr_stf_paper()``, random weights) and the
    shipped small models on device tensors, one window at LR 100×256 → 400×1024:
    ms/window in float32, the default precision, bf16, bf16 + channels-last (+
    cudnn.benchmark), through the engine's own fuser; torchvision's deformable
    op where it imports, else the pure-PyTorch sampling (the header says which).
``fuse``  ``fuse()`` on an in-memory burst (HR every 16 frames, every frame through
    the network): the feature cache, host copies and all; ms/frame.
``burst``  a full burst (256 UHS frames 250×400, 16 HS frames 1000×1600) written as
    HDF5, ingested into an embedded Tiled, fused by ``fuse_run`` with the paper-size
    model in a worker-like child process: Tiled read to derived run written.
``batch``  windows per batch 1/4/8/16 at bf16 + channels-last.
``tests``  ``pytest -m gpu -q`` on the test files that hold GPU tests.
``compile``  ``torch.compile`` and CUDA-graph replay of one window, each in a child
    process under a time limit.

Targets: paper-size ≤ 15 ms/frame on one H100 (≥ 4× the paper's
66.5 ms on one A100), the small model ≤ 2 ms/frame, the 256-frame burst ≤ 30 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The lent GPU machine runs from a copy of the checkout, not an installed package.
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import bench_fusion as bf  # noqa: E402
import gpu_burst  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from xfusion_bluesky.evaluation.timing import PAPER_SECONDS_PER_FRAME  # noqa: E402
from xfusion_bluesky.fusion import fuse  # noqa: E402
from xfusion_bluesky.fusion.methods import method_spec  # noqa: E402
from xfusion_bluesky.fusion.model import edvr_stf_paper, load_network  # noqa: E402

PAPER_MS = 1000 * PAPER_SECONDS_PER_FRAME["edvr_stf"]
TARGET_MS = {"paper": 15.0, "small": 2.0}
TARGET_BURST_S = 30.0
SECTIONS = ("network", "fuse", "burst", "batch", "tests", "compile")
BF16 = torch.bfloat16


class Run:
    """Sizes, device, time budget and the results written after each section."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.quick, self.dry = args.quick, args.dry_run
        self.device = "cpu" if self.dry else "cuda"
        self.lr_shape = (8, 16) if self.dry else (100, 256)
        self.burst_lr = (8, 16) if self.dry else (250, 400)
        self.burst_frames = 32 if self.dry or self.quick else 256
        self.budget_s = args.budget_s or (110 if self.quick else 330)
        self.start = time.perf_counter()
        self.out = Path(args.out)
        self.results: dict[str, Any] = {"sections": [], "summary": []}

    def left_s(self) -> float:
        return self.budget_s - (time.perf_counter() - self.start)

    def out_of_time(self, rows: list[Any], width: int) -> bool:
        """Tell whether the budget is spent; if so, add a row that says so."""
        if self.left_s() > 10:
            return False
        rows.append(["skipped: out of time", *[""] * (width - 1)])
        return True

    def section(self, name: str, title: str, columns: list[str], note: str = "") -> Any:
        section = {"name": name, "title": title, "note": note, "columns": columns}
        self.results["sections"].append(section | {"rows": []})
        return self.results["sections"][-1]["rows"]

    def write(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.results["seconds"] = round(time.perf_counter() - self.start, 1)
        (self.out / "gpu_results.json").write_text(
            json.dumps(self.results, indent=1, default=str), encoding="utf-8"
        )
        (self.out / "gpu_results.md").write_text(markdown(self.results), "utf-8")


def markdown(results: dict[str, Any]) -> str:
    """The results as one markdown page: header, one table per section, summary."""
    head = results.get("machine", {})
    lines = [f"# bench_gpu, {head.get('date', '?')}", ""]
    lines += [f"- {key}: {value}" for key, value in head.items() if key != "date"]
    for section in results["sections"]:
        lines += ["", f"## {section['title']}", ""]
        lines += [section["note"], ""] if section["note"] else []
        lines.append("| " + " | ".join(section["columns"]) + " |")
        lines.append("|" + "---|" * len(section["columns"]))
        lines += ["| " + " | ".join(map(str, row)) + " |" for row in section["rows"]]
    lines += ["", "## Summary", ""] + [f"- {s}" for s in results["summary"]]
    return "\n".join(lines) + "\n"


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_ms(call: Callable[[], Any], device: str, min_s: float = 0.5) -> float:
    """Median ms of ``call`` after two warm-ups: ≥ 3 calls, ≥ ``min_s`` s, ≤ 50."""
    for _ in range(2):
        call()
    sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < min_s and len(times) < 50):
        tick = time.perf_counter()
        call()
        sync(device)
        times.append(1000 * (time.perf_counter() - tick))
    return statistics.median(times)


def peak_gb(device: str) -> str:
    if not device.startswith("cuda"):
        return "—"
    peak = torch.cuda.max_memory_allocated() / 1024**3
    torch.cuda.reset_peak_memory_stats()
    return f"{peak:.1f}"


def networks(device: str) -> dict[str, tuple[str, Any]]:
    """Name → (method, network): paper-size random weights and the shipped small."""
    torch.manual_seed(0)
    return {
        "paper": ("edvr_stf", edvr_stf_paper().eval().to(device)),
        "small (edvr_stf_detail)": (
            "edvr_stf_detail",
            load_network("edvr_stf_detail", device=device).network,
        ),
        "small (edvr_stf)": (
            "edvr_stf",
            load_network("edvr_stf", device=device).network,
        ),
    }


def windows(batch: int, lr_shape: tuple[int, int], device: str) -> tuple[Any, Any]:
    """Random LR (b, 3, 1, h, w) and HR (b, 2, 1, 4h, 4w) windows on the device."""
    h, w = lr_shape
    gen = torch.Generator(device).manual_seed(0)
    lr = torch.rand(batch, 3, 1, h, w, generator=gen, device=device)
    return lr, torch.rand(batch, 2, 1, 4 * h, 4 * w, generator=gen, device=device)


def variants(device: str) -> list[tuple[str, torch.dtype | None, bool, bool]]:
    """(label, dtype, channels-last, cudnn.benchmark) of the network rows."""
    best = bf.default_dtype(device)
    rows = [("float32", None, False, False)]
    if best not in (None, torch.float32, BF16):
        rows.append((f"default ({bf.dtype_name(best)})", best, False, False))
    return [
        *rows,
        ("bf16", BF16, False, False),
        ("bf16 + channels-last", BF16, True, False),
        ("bf16 + channels-last + cudnn.benchmark", BF16, True, True),
    ]


def window_ms(
    method: str, network: Any, variant: tuple[Any, ...], batch: int, run: Run
) -> float:
    """Median ms per window of the engine's fuser on device tensors."""
    _, dtype, channels_last, benchmark = variant
    torch.backends.cudnn.benchmark = benchmark
    fuser = method_spec(method).create(
        network,
        device=torch.device(run.device),
        dtype=dtype,
        channels_last=channels_last,
    )
    lr, hr = windows(batch, run.lr_shape, run.device)
    with torch.inference_mode():
        ms = median_ms(lambda: fuser.fuse_batch(lr, hr), run.device)
    torch.backends.cudnn.benchmark = False
    return ms / batch


def vs_paper(ms: float) -> str:
    return f"{PAPER_MS / ms:.2f}"


def section_network(run: Run, nets: dict[str, tuple[str, Any]]) -> None:
    h, w = run.lr_shape
    rows = run.section(
        "network",
        f"One window on device tensors, LR {h}×{w} → {4 * h}×{4 * w}, batch 1",
        [
            "model",
            "variant",
            "ms/window",
            "speed-up vs float32",
            "× paper A100",
            "peak GB",
        ],
        f"Through the engine's fuser (method_spec(...).create). × paper A100 (here "
        f"and below): the paper's {PAPER_MS} ms/frame on one A100 over this row's.",
    )
    for name, (method, network) in nets.items():
        base = None
        for variant in variants(run.device):
            if run.out_of_time(rows, 6):
                return
            ms = window_ms(method, network, variant, 1, run)
            base = base or ms
            rows.append([name, variant[0], f"{ms:.2f}", f"{base / ms:.2f}",
                         vs_paper(ms), peak_gb(run.device)])  # fmt: skip
            run.results.setdefault("network_ms", {})[f"{name} / {variant[0]}"] = ms


def section_batch(run: Run, nets: dict[str, tuple[str, Any]]) -> None:
    rows = run.section(
        "batch",
        "Windows per batch, bf16 + channels-last, device tensors",
        [
            "model",
            "batch",
            "ms/window",
            "speed-up vs batch 1",
            "× paper A100",
            "peak GB",
        ],
    )
    variant = ("bf16 + channels-last", BF16, True, False)
    for name in ("paper", "small (edvr_stf_detail)"):
        method, network = nets[name]
        first = None
        for batch in (1, 4) if run.dry else (1, 4, 8, 16):
            if run.out_of_time(rows, 6):
                return
            try:
                ms = window_ms(method, network, variant, batch, run)
            except torch.OutOfMemoryError:
                rows.append([name, batch, "out of memory", "", "", ""])
                torch.cuda.empty_cache()
                continue
            first = first or ms
            rows.append([name, batch, f"{ms:.2f}", f"{first / ms:.2f}", vs_paper(ms),
                         peak_gb(run.device)])  # fmt: skip
            run.results.setdefault("batch_ms", {})[f"{name} / batch {batch}"] = ms


def section_fuse(run: Run, nets: dict[str, tuple[str, Any]]) -> None:
    frames = 16 if run.dry else (32 if run.quick else 64)
    h, w = run.lr_shape
    rng = np.random.default_rng(0)
    index = np.arange(0, frames, 16)
    lr = rng.random((frames, h, w), dtype=np.float32)
    hr = rng.random((index.size, 4 * h, 4 * w), dtype=np.float32)
    rows = run.section(
        "fuse",
        f"fuse() of a {frames}-frame burst in memory, LR {h}×{w}, HR every 16",
        ["model", "dtype", "channels-last", "batch", "ms/frame", "× paper A100"],
        "Every frame through the network (hr_passthrough=False); fuse()'s defaults "
        "(feature cache, default precision) unless a column says otherwise; host "
        "arrays in, host frames out.",
    )
    for name, (method, network) in nets.items():
        for dtype, channels_last, batch in ((None, None, None), (torch.float32, False,
                                            None), (None, None, 16)):  # fmt: skip
            if run.out_of_time(rows, 6):
                return
            kwargs = {"model": network, "device": run.device, "dtype": dtype,
                      "channels_last": channels_last, "batch_size": batch,
                      "normalize": False, "hr_passthrough": False}  # fmt: skip
            fuse(lr[:3], hr[:1], [0], method, **kwargs)  # warm-up at the same size
            sync(run.device)
            tick = time.perf_counter()
            result = fuse(lr, hr, index, method, **kwargs)
            sync(run.device)
            ms = 1000 * (time.perf_counter() - tick) / frames
            used, last = result.params["dtype"], result.params["channels_last"]
            label = bf.dtype_name(dtype) if dtype else f"default ({used})"
            rows.append([name, label, last, result.params["batch_size"],
                         f"{ms:.2f}", vs_paper(ms)])  # fmt: skip
            key = f"{name} / {label}{' + CL' if last else ''} / batch {batch}"
            run.results.setdefault("fuse_ms", {})[key] = ms


def section_burst(run: Run) -> None:
    """Write, ingest and fuse a full burst through an embedded Tiled."""
    h, w = run.burst_lr
    frames = run.burst_frames
    rows = run.section(
        "burst",
        f"{frames}-frame burst, LR {h}×{w} → {4 * h}×{4 * w}, paper-size EDVR-STF, "
        "Tiled read to derived run written",
        ["step", "s", "note"],
        "Embedded Tiled in this process; fuse_run in a child process as the worker "
        "runs it (read ahead / write behind where the pipeline has it).",
    )
    missing = [m for m in ("tiled", "bluesky", "bluesky_tiled_plugins", "event_model")
               if not _imports(m)]  # fmt: skip
    if missing:  # the lent GPU machine has no catalog packages: the device part
        seconds, dtype = gpu_burst.burst_in_memory(frames, (h, w), run.device)
        rows.append(["Tiled read and derived write", "", "not measured: "
                     f"{', '.join(missing)} do not import"])  # fmt: skip
        rows.append(["model alone (fuse_iter, frames in memory)", f"{seconds:.1f}",
                     f"dtype {dtype}"])  # fmt: skip
        run.results["burst_model_s"] = seconds
        return
    from xfusion_bluesky.catalog.connect import connect
    from xfusion_bluesky.fusion.model import save_model

    with tempfile.TemporaryDirectory() as tmp:
        tick = time.perf_counter()
        hdf5_dir = Path(tmp) / "hdf5"
        uhs, hs, registration = gpu_burst.write_recordings(hdf5_dir, frames, (h, w))
        checkpoint = Path(tmp) / "edvr_stf_paper.pth"
        torch.manual_seed(0)
        save_model(edvr_stf_paper(), checkpoint)
        rows.append(
            ["write HDF5 + checkpoint", f"{time.perf_counter() - tick:.1f}", ""]
        )
        tick = time.perf_counter()
        connection = connect(hdf5_dir=hdf5_dir, data_dir=Path(tmp) / "data")
        try:
            from xfusion_bluesky.ingest import ingest_recordings

            uid = ingest_recordings(
                connection.client, uhs, hs, registration=registration,
                uhs_rate_hz=1.2e6, hs_rate_hz=75e3,
                uhs_dataset="/entry/data/data", hs_dataset="/entry/data/data",
            )  # fmt: skip
            rows.append(
                ["start Tiled + ingest", f"{time.perf_counter() - tick:.1f}", ""]
            )
            spec = {"uri": connection.uri, "uid": uid, "checkpoint": str(checkpoint),
                    "device": run.device, "lr_shape": [h, w]}  # fmt: skip
            got = child("burst", spec, timeout_s=max(run.left_s() - 20, 60))
        finally:
            connection.close()
    if "error" in got:
        rows.append(["fuse_run", "", got["error"]])
        return
    rows.append(["warm-up (load, first kernels)", f"{got['warmup_s']:.1f}", ""])
    status = f"{got['status']}, dtype {got['dtype']}, {got['frames']} frames"
    rows.append(["**fuse_run: Tiled read → derived run written**",
                 f"**{got['fuse_run_s']:.1f}**", status])  # fmt: skip
    rows.append(["model alone (fuse_iter, frames in memory)", f"{got['model_s']:.1f}",
                 f"Tiled read {got['read_s']:.1f} s"])  # fmt: skip
    overhead = got["fuse_run_s"] - got["model_s"]
    rows.append(["pipeline overhead (fuse_run − model alone)", f"{overhead:.1f}",
                 f"{100 * overhead / got['model_s']:.0f} % of the model"])  # fmt: skip
    run.results["burst"] = got | {"frames": frames, "lr_shape": [h, w]}


def compile_child(spec: dict[str, Any]) -> dict[str, Any]:
    """One window under torch.compile or CUDA-graph replay; ms and set-up s."""
    device = spec["device"]
    method, network = networks(device)[spec["model"]]
    fuser = method_spec(method).create(
        network, device=torch.device(device), dtype=BF16, channels_last=True
    )
    lr, hr = windows(1, spec["lr_shape"], device)
    tick = time.perf_counter()
    with torch.inference_mode():
        if spec["mode"] == "compile":
            fuser.model = torch.compile(fuser.model)
            call = lambda: fuser.fuse_batch(lr, hr)  # noqa: E731
            call()
        else:
            if not device.startswith("cuda"):
                return {"error": "CUDA graphs need CUDA"}
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(3):
                    fuser.fuse_batch(lr, hr)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                fuser.fuse_batch(lr, hr)
            call = graph.replay
        setup_s = time.perf_counter() - tick
        return {"ms": median_ms(call, device), "setup_s": setup_s}


def section_compile(run: Run) -> None:
    rows = run.section(
        "compile",
        "torch.compile and CUDA graphs, one window, bf16 + channels-last",
        ["model", "mode", "ms/window", "speed-up vs eager", "set-up s", "note"],
        "Each in a child process under a time limit; eager from the network table.",
    )
    eager = run.results.get("network_ms", {})
    for model in ("paper", "small (edvr_stf_detail)"):
        for mode in ("compile", "graphs"):
            limit = min(150.0, run.left_s() - 10)
            if limit < 30:
                rows.append([model, mode, "", "", "", "skipped: out of time"])
                continue
            spec = {"model": model, "mode": mode, "device": run.device,
                    "lr_shape": list(run.lr_shape)}  # fmt: skip
            got = child(mode, spec, timeout_s=limit)
            if "error" in got:
                rows.append([model, mode, "", "", "", got["error"][-200:]])
                continue
            base = eager.get(f"{model} / bf16 + channels-last")
            ratio = f"{base / got['ms']:.2f}" if base else ""
            rows.append([model, mode, f"{got['ms']:.2f}", ratio,
                         f"{got['setup_s']:.0f}", ""])  # fmt: skip
            run.results.setdefault("compile_ms", {})[f"{model} / {mode}"] = got["ms"]


def section_tests(run: Run) -> None:
    rows = run.section("tests", "pytest -m gpu", ["files", "rc", "summary"])
    files = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "tests").rglob("test_*.py")
        if "mark.gpu" in p.read_text(encoding="utf-8")
    )
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p",
               "no:cacheprovider", *files]  # fmt: skip
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                              timeout=max(run.left_s(), 60), env=_env())  # fmt: skip
        tail = (done.stdout + done.stderr).strip().splitlines()
        rows.append([", ".join(files), done.returncode, tail[-1] if tail else ""])
        run.results["tests_output"] = "\n".join(tail[-40:])
    except subprocess.TimeoutExpired:
        rows.append([", ".join(files), "", "timed out"])


def child(kind: str, spec: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run ``--child kind`` in a fresh process; its last stdout line is JSON."""
    command = [sys.executable, __file__, "--child", kind, json.dumps(spec)]
    try:
        done = subprocess.run(command, capture_output=True, text=True,
                              timeout=timeout_s, env=_env())  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        return {"error": (done.stderr or done.stdout).strip()[-1500:]}
    return json.loads(lines[-1])


def _env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return os.environ | {"PYTHONPATH": path}


def _imports(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def header(run: Run) -> dict[str, Any]:
    info = bf.machine()
    if run.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info |= {"gpu": props.name, "gpu_memory_gb": round(props.total_memory / 1e9),
                 "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                 "tf32_conv": torch.backends.cudnn.allow_tf32,
                 "tf32_matmul": torch.backends.cuda.matmul.allow_tf32}  # fmt: skip
    info["deform_op"] = "torchvision" if info.pop("torchvision_deform_op") else (
        "pure PyTorch")  # fmt: skip
    info["default_dtype"] = bf.dtype_name(bf.default_dtype(run.device))
    info["missing"] = bf.missing_switches()
    info["mode"] = "dry run on the CPU, tiny sizes" if run.dry else (
        "quick" if run.quick else "full")  # fmt: skip
    return info


def summary(run: Run) -> list[str]:
    lines = []
    for key, target in (("paper", TARGET_MS["paper"]), ("small", TARGET_MS["small"])):
        for table in ("network_ms", "batch_ms", "compile_ms", "fuse_ms"):
            got = {k: v for k, v in run.results.get(table, {}).items()
                   if k.startswith(key)}  # fmt: skip
            if got:
                name, ms = min(got.items(), key=lambda item: item[1])
                lines.append(
                    f"{table.removesuffix('_ms')}: best {key} {ms:.2f} ms/frame "
                    f"({name}); target ≤ {target} ms: "
                    f"{'met' if ms <= target else 'not met'}; {PAPER_MS / ms:.1f}× "
                    f"the paper's A100"
                )
    if "burst" in run.results:
        s = run.results["burst"]["fuse_run_s"]
        lines.append(f"burst: {s:.1f} s Tiled read → derived run written "
                     f"(target ≤ {TARGET_BURST_S} s: "
                     f"{'met' if s <= TARGET_BURST_S else 'not met'})")  # fmt: skip
    elif "burst_model_s" in run.results:
        s = run.results["burst_model_s"]
        lines.append(f"burst: model part alone {s:.1f} s (Tiled not importable; "
                     f"target for the whole path ≤ {TARGET_BURST_S} s)")  # fmt: skip
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--quick", action="store_true", help="< 2 min")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes")
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--budget-s", type=float, help="default 330, quick 110")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, spec = args.child[0], json.loads(args.child[1])
        print(
            json.dumps(
                gpu_burst.burst_child(spec) if kind == "burst" else compile_child(spec)
            )
        )
        return 0
    run = Run(args)
    if run.dry:  # two cores shared: one thread each is faster than contention
        torch.set_num_threads(1)
        os.environ["OMP_NUM_THREADS"] = "1"
    if not run.dry and not torch.cuda.is_available():
        message = (f"no CUDA device (torch {torch.__version__}, built for CUDA "
                   f"{torch.version.cuda}): nothing measured. Install a CUDA torch "
                   "(make bench-gpu TORCH_SPEC=...) or use --dry-run.")  # fmt: skip
        print(message, file=sys.stderr)
        run.results |= {"machine": bf.machine(), "skipped": message}
        run.results["summary"].append(message)
        run.write()
        return 0
    run.results["machine"] = header(run)
    wanted = args.sections.split(",")
    nets = networks(run.device)
    steps = {
        "network": lambda: section_network(run, nets),
        "fuse": lambda: section_fuse(run, nets),
        "burst": lambda: section_burst(run),
        "batch": lambda: section_batch(run, nets),
        "tests": lambda: section_tests(run),
        "compile": lambda: section_compile(run),
    }
    for name in SECTIONS:
        if name not in wanted or (name == "compile" and run.quick):
            continue
        if run.left_s() < 15:
            run.results["summary"].append(f"{name}: skipped, out of time")
            continue
        print(f"[{time.perf_counter() - run.start:5.0f} s] {name}", file=sys.stderr)
        try:
            steps[name]()
        except Exception:  # one broken section must not lose the others' rows
            error = traceback.format_exc()
            run.results["summary"].append(f"{name}: failed: {error.splitlines()[-1]}")
            run.results.setdefault("errors", {})[name] = error
            print(error, file=sys.stderr)
        run.write()
    run.results["summary"] = summary(run) + run.results["summary"]
    run.write()
    print(markdown(run.results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
