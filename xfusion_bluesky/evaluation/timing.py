"""Wall time per fused frame of every method at the paper's frame size (Fig. 8).

The paper times its methods on LR 100×256 → HR 400×1024 frames (EDVR-STF
0.0665 s per frame on one A100, the Bayesian fusion 77.4 s and bicubic 0.0006 s
per frame on a CPU). Here every method fuses a synthetic burst of that size with
an HR separation of 20 LR frames; the time per output frame is the median over
repeated runs (after one warm-up run on a small input). The networks are timed
on a few frames only: on a CPU they take seconds per frame.
"""

from __future__ import annotations

import logging
import statistics
import time
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from xfusion_bluesky.fusion import fuse
from xfusion_bluesky.fusion.methods import method_spec
from xfusion_bluesky.synthetic.degradation import bin_frames
from xfusion_bluesky.synthetic.scene import generate_scene

__all__ = ["PAPER_SECONDS_PER_FRAME", "time_methods"]

logger = logging.getLogger(__name__)

#: The paper's published times per frame (Tang et al. 2025, Fig. 8).
PAPER_SECONDS_PER_FRAME = {"edvr_stf": 0.0665, "bayesian": 77.4, "bicubic": 0.0006}
#: Frames a method without a network fuses per timed run: HR at 0 and 20 (HR
#: separation 20), so its per-interval work is shared as with the paper's spacing.
_WEIGHT_FREE_FRAMES = 21


def time_methods(
    methods: tuple[str, ...],
    models: dict[str, Any],
    *,
    lr_shape: tuple[int, int] = (100, 256),
    network_frames: int = 3,
    repeats: int = 3,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Return the median wall time per fused frame of each method.

    Parameters
    ----------
    methods : tuple of str
    models : dict
        Method → ``fuse(model=...)`` (loaded networks).
    lr_shape : (int, int)
        LR frame size; HR is 4× (paper: 100×256 → 400×1024).
    network_frames : int
        Frames fused per timed run by the networks (≥ 2); methods without a
        network (bicubic, the Bayesian fusion) fuse 21 (HR at 0 and 20, so the
        Bayesian per-interval work is shared by 19 frames as with the paper's
        spacing).
    repeats : int
        Timed runs per method; the median is reported.
    device : str
    progress : bool

    Returns
    -------
    dict
        Method → ``{"seconds_per_frame", "runs", "frames", "lr_shape",
        "device", "threads"}``; ``runs`` lists every run's s/frame.
    """
    height, width = lr_shape
    frames_of = {
        m: network_frames if method_spec(m).trainable else _WEIGHT_FREE_FRAMES
        for m in methods
    }
    most = max(frames_of.values(), default=network_frames)
    truth = generate_scene(
        "additive_manufacturing",
        num_frames=most,
        height=4 * height,
        width=4 * width,
        seed=2**31 + 999,
    )
    lr_all = bin_frames(truth)
    timings: dict[str, dict[str, Any]] = {}
    jobs = [(m, r) for m in methods for r in range(repeats)]
    bar = tqdm(jobs, desc="timing", unit="run", disable=not progress)
    for method in methods:
        frames = frames_of[method]
        hr_index = (
            np.arange(0, frames, 20) if frames > 20 else np.array([0, frames - 1])
        )
        lr, hr = lr_all[:frames], truth[hr_index]
        kwargs: dict[str, Any] = {
            "model": models.get(method),
            "normalize": False,
            "device": device,
        }
        fuse(lr[:2, :8, :8], hr[:2, :32, :32], [0, 1], method, **kwargs)  # warm-up
        runs = []
        for _ in range(repeats):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            tick = time.perf_counter()
            fuse(lr, hr, hr_index, method, **kwargs)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            runs.append((time.perf_counter() - tick) / frames)
            bar.update(1)
        timings[method] = {
            "seconds_per_frame": statistics.median(runs),
            "runs": runs,
            "frames": frames,
            "lr_shape": [height, width],
            "device": device,
            "threads": torch.get_num_threads(),
        }
        logger.info(
            "%s: %.4f s per frame", method, timings[method]["seconds_per_frame"]
        )
    bar.close()
    return timings
