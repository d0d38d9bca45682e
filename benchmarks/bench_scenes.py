"""Seconds to render synthetic scenes, per family, against a floor in the same process.

The floor is the cheapest thing any renderer of that output must do: fill the
same float32 stack from a random generator. The ratio says how many such fills
one scene costs. Best of ``--repeat`` after a warm-up (imports, FFT plans).

    .venv/bin/python benchmarks/bench_scenes.py [--frames 64] [--size 256x256]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from xfusion_bluesky.synthetic.scene import SCENE_FAMILIES, generate_scene


def best_of(repeat: int, work) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--size", default="256x256", help="HxW of a frame")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    shape = (args.frames, height, width)
    rng = np.random.default_rng(0)
    floor = best_of(args.repeat, lambda: rng.random(shape, dtype=np.float32))
    print(
        f"{args.frames} frames of {height}×{width}; floor (random fill) {floor:.4f} s"
    )
    print("| family | s | × floor |")
    print("|---|---|---|")
    for family in SCENE_FAMILIES:
        generate_scene(family, num_frames=1)  # warm-up
        seconds = best_of(
            args.repeat,
            lambda family=family: generate_scene(
                family, num_frames=args.frames, height=height, width=width
            ),
        )
        print(f"| {family} | {seconds:.3f} | {seconds / floor:.0f} |")


if __name__ == "__main__":
    main()
