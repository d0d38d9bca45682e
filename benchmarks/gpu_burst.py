"""The full burst of bench_gpu.py: recordings on disk, the worker's side, in memory.

A burst as the cameras leave it (UHS frames, HS frames every 16, uint16 noise: the
speed does not depend on the content) is written as HDF5 with a nominal
registration for ``ingest_recordings``; :func:`burst_child` is the worker's side,
run in its own process: warm up, time ``fuse_run`` from the Tiled read to the
derived run written, then the model alone on the same frames.
:func:`burst_in_memory` times the model part where Tiled does not import.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xfusion_bluesky.fusion import fuse
from xfusion_bluesky.fusion.model import edvr_stf_paper, load_network


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _precision(params: dict[str, Any]) -> str:
    return params["dtype"] + (", channels-last" if params.get("channels_last") else "")


def burst_in_memory(
    frames: int, lr_shape: tuple[int, int], device: str
) -> tuple[float, str]:
    """Seconds and dtype of fuse_iter over a burst in memory, paper-size model."""
    from xfusion_bluesky.fusion import fuse_iter

    h, w = lr_shape
    rng = np.random.default_rng(0)
    lr = rng.random((frames, h, w), dtype=np.float32)
    index = np.arange(0, frames, 16)
    hr = rng.random((index.size, 4 * h, 4 * w), dtype=np.float32)
    torch.manual_seed(0)
    network = edvr_stf_paper().eval().to(device)
    fuse(lr[:3], hr[:1], [0], "edvr_stf", model=network, device=device)  # warm-up
    sync(device)
    tick = time.perf_counter()
    stream = fuse_iter(lr, hr, index, "edvr_stf", model=network, device=device)
    for _ in stream:
        pass
    sync(device)
    return time.perf_counter() - tick, _precision(stream.params)


def write_recordings(
    folder: Path, frames: int, lr_shape: tuple[int, int]
) -> tuple[Path, Path, Path]:
    """Write a UHS + HS pair (uint16 noise, HS every 16 UHS frames) + registration."""
    import h5py

    from xfusion_bluesky.geometry import Similarity
    from xfusion_bluesky.ingest import registration_block, write_registration

    folder.mkdir(parents=True, exist_ok=True)
    h, w = lr_shape
    rng = np.random.default_rng(0)
    paths = []
    for name, shape in (("uhs", (frames, h, w)), ("hs", (frames // 16, 4 * h, 4 * w))):
        paths.append(folder / f"{name}.h5")
        with h5py.File(paths[-1], "w") as f:
            f["/entry/data/data"] = rng.integers(0, 4096, shape, dtype=np.uint16)
    block = registration_block(
        Similarity((4 * h, 4 * w), scale_ratio=4.0), (h, w), measured_by="bench_gpu"
    )
    return paths[0], paths[1], write_registration(folder / "registration.json", block)


def burst_child(spec: dict[str, Any]) -> dict[str, Any]:
    """In a worker-like child: warm up, time fuse_run, then the model alone."""
    from xfusion_bluesky.catalog.connect import open_catalogs
    from xfusion_bluesky.catalog.reader import open_raw_run
    from xfusion_bluesky.fusion import fuse_iter
    from xfusion_bluesky.fusion.alignment import align_hr_times
    from xfusion_bluesky.pipeline import fuse_run

    device, (h, w) = spec["device"], spec["lr_shape"]
    tick = time.perf_counter()
    network = load_network("edvr_stf", spec["checkpoint"], device=device).network
    rng = np.random.default_rng(1)
    lr = rng.random((3, h, w), dtype=np.float32)
    fuse(lr, rng.random((1, 4 * h, 4 * w), dtype=np.float32), [0], model=network,
         method="edvr_stf", device=device, normalize=False)  # fmt: skip
    sync(device)
    out: dict[str, Any] = {"warmup_s": time.perf_counter() - tick}
    catalogs = open_catalogs(spec["uri"])
    tick = time.perf_counter()
    fused = fuse_run(catalogs.root, spec["uid"], method="edvr_stf",
                     model=spec["checkpoint"], device=device)  # fmt: skip
    out["fuse_run_s"] = time.perf_counter() - tick
    out |= {"status": fused.status, "reason": fused.reason,
            "frames": fused.frames_written}  # fmt: skip
    tick = time.perf_counter()
    raw = open_raw_run(catalogs.raw, spec["uid"])
    burst = raw.burst(0)
    alignment = align_hr_times(burst.lr_times_s, burst.hr_times_s)
    lr_all, hr_all = raw.field_registration().apply(burst.lr, burst.hr)
    out["read_s"] = time.perf_counter() - tick
    tick = time.perf_counter()
    stream = fuse_iter(lr_all, hr_all[alignment.kept], alignment.hr_index,
                       "edvr_stf", model=network, device=device)  # fmt: skip
    for _ in stream:
        pass
    sync(device)
    out["model_s"] = time.perf_counter() - tick
    out["dtype"] = _precision(stream.params)  # fuse_run's too: both use defaults
    catalogs.root.context.close()
    return out
