"""Render a few frames of every synthetic scene family to one PNG grid.

Usage::

    python examples/01_synthetic_scenes.py [OUTPUT]

OUTPUT is a PNG file or a folder (then ``scenes.png`` inside it); default
``./scenes.png``. One row per family, frames a few scene frames apart, and a last
column with the difference of the first two frames, to show what moves.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt
import numpy as np

from xfusion_bluesky.synthetic.scene import (
    SCENE_FAMILIES,
    generate_scene,
    scene_version,
)

TIMES = [0.0, 1.0, 8.0, 24.0]  # scene frames
SIZE = (256, 320)  # height, width


def output_path(arg: str) -> Path:
    path = Path(arg)
    if path.suffix.lower() != ".png":
        path = path / "scenes.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", default="scenes.png")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    path = output_path(args.output)

    ncols = len(TIMES) + 1
    fig, axes = plt.subplots(
        len(SCENE_FAMILIES), ncols, figsize=(3.2 * ncols, 2.7 * len(SCENE_FAMILIES))
    )
    for row, family in zip(axes, SCENE_FAMILIES, strict=True):
        start = time.perf_counter()
        video = generate_scene(
            family, times=TIMES, height=SIZE[0], width=SIZE[1], seed=args.seed
        )
        elapsed = time.perf_counter() - start
        print(f"{family:24s} {video.shape} in {elapsed:.2f} s")
        for ax, frame, t in zip(row, video, TIMES, strict=False):
            ax.imshow(frame, cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"{family} t={t:g}", fontsize=8)
        diff = video[1] - video[0]
        limit = max(float(np.abs(diff).max()), 1e-6)
        row[-1].imshow(diff, cmap="RdBu_r", vmin=-limit, vmax=limit)
        row[-1].set_title(f"frame 1 - frame 0 (max {limit:.2f})", fontsize=8)
    for ax in axes.flat:
        ax.set_axis_off()
    fig.suptitle(f"synthetic scenes, generator {scene_version}, seed {args.seed}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
