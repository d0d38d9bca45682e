"""Registration and timing measured on the misaligned simulation, against its truth.

For each of ``--geometries`` random HS mounts (scale ratio 3.5–4.5, rotation ±3°,
sub-pixel offset, random flips: ``devices.sim.event.random_mount``) and a random
HS latency (±3 UHS periods, not whole), all seeded by ``--seed``, the simulated
cameras render three bursts through ``SimEvent``:

1. the static calibration target, both cameras, frames averaged →
   ``calibration.measure_geometry``: scale ratio, rotation, shift vs the truth,
   and the RMS error of mapped HS points (fused-grid px);
2. the moving target (HS frames at their nominal times + the latency) →
   ``calibration.measure_latency`` with the *measured* transform;
3. one event burst, fused with the shipped EDVR-STF twice: **misaligned** (the
   HS frames warped onto the shared field with the measured transform,
   ``fusion.field.register_fields(similarity=…)``, and assigned to UHS instants
   with the measured latency) and **aligned** (the same event seen by an HS
   mounted exactly on the shared field: the aligned simulation). PSNR of each
   against the noise-free event on the shared field (HS counts); a third fusion
   warps with the *true* transform, to show what the registration error costs
   apart from the resampling itself.

Prints one row per geometry, then the targets met (scale ≤ 0.1 %,
rotation ≤ 0.05°, point RMS ≤ 0.2 HR px, latency ≤ 0.1 UHS period, misaligned
within 0.5 dB of aligned).

    python benchmarks/bench_registration.py [--geometries 20] [--seed 0] [--frames 9]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from dataclasses import replace

import numpy as np
import torch

from xfusion_bluesky.calibration import measure_geometry, measure_latency
from xfusion_bluesky.devices.limits import HS_SPEC, UHS_SPEC
from xfusion_bluesky.devices.sim.event import (
    DEFAULT_FRAME_PERIOD_S,
    HSMount,
    SimEvent,
    random_mount,
)
from xfusion_bluesky.fusion import fuse
from xfusion_bluesky.fusion.field import register_fields
from xfusion_bluesky.geometry import GRID
from xfusion_bluesky.metrics import mean_finite, psnr

PERIOD_S = DEFAULT_FRAME_PERIOD_S  # one UHS frame = one scene frame
UHS_SHAPE = (64, 64)
HS_SHAPE = (160, 160)
FIELD = (GRID * UHS_SHAPE[0], GRID * UHS_SHAPE[1])
STATIC_FRAMES = 16
LATENCY_LR_FRAMES = 16
LATENCY_HS_INSTANTS = (4.0, 7.0, 10.0)  # nominal, UHS periods; ±3 keeps them inside
MAX_LATENCY_PERIODS = 3.0


def measure_one(index: int, seed: int, frames: int) -> dict[str, float]:
    rng = np.random.default_rng([seed, index])
    mount = random_mount(rng, HS_SHAPE, FIELD)
    truth = mount.similarity(HS_SHAPE)
    latency = float(rng.uniform(-MAX_LATENCY_PERIODS, MAX_LATENCY_PERIODS))
    burst_seed = 1000 * seed + index

    # 1. Geometry from the static target, frames averaged.
    static = SimEvent(target="static", seed=burst_seed)
    times = np.arange(STATIC_FRAMES) * PERIOD_S
    lr = static.uhs_burst(UHS_SPEC, times, UHS_SHAPE, seed=burst_seed)
    hr = static.hs_burst(
        HS_SPEC, times, HS_SHAPE, field_shape_hr=FIELD, mount=mount, seed=burst_seed
    )
    start = time.perf_counter()
    geometry = measure_geometry(lr.mean(axis=0), hr.mean(axis=0))
    geometry_s = time.perf_counter() - start
    measured = geometry.similarity

    # 2. Latency from the moving target: HS frames show nominal time + latency.
    moving = SimEvent(target="moving", seed=burst_seed)
    lr_times = np.arange(LATENCY_LR_FRAMES) * PERIOD_S
    hr_times = np.asarray(LATENCY_HS_INSTANTS) * PERIOD_S
    lr = moving.uhs_burst(UHS_SPEC, lr_times, UHS_SHAPE, seed=burst_seed)
    hr = moving.hs_burst(
        HS_SPEC,
        hr_times + latency * PERIOD_S,
        HS_SHAPE,
        field_shape_hr=FIELD,
        mount=mount,
        seed=burst_seed,
    )
    timing = measure_latency(lr, lr_times, hr, hr_times, measured)

    # 3. One event burst fused both ways. The HS trigger was set so that its
    # frames land on UHS instants 0, 4, 8, ...; the fusion learns which from the
    # nominal times plus the measured latency.
    event = SimEvent(seed=burst_seed)
    lr_times = np.arange(frames) * PERIOD_S
    keyframes = np.arange(0, frames, 4)
    nominal = lr_times[keyframes] - latency * PERIOD_S
    hr_index = np.rint((nominal + timing.latency_s - lr_times[0]) / PERIOD_S)
    lr = event.uhs_burst(UHS_SPEC, lr_times, UHS_SHAPE, seed=burst_seed)
    hr = event.hs_burst(
        HS_SPEC,
        lr_times[keyframes],
        HS_SHAPE,
        field_shape_hr=FIELD,
        mount=mount,
        seed=burst_seed,
    )
    field = register_fields(UHS_SHAPE, HS_SHAPE, similarity=measured)
    lr_field, hr_field = field.apply(lr, hr)
    misaligned = fuse(lr_field, hr_field, hr_index.astype(int), "edvr_stf")
    # The same, warped with the true transform: what registration errors cost.
    exact = replace(field, similarity=truth)
    true_warp = fuse(lr_field, exact.warp(hr), keyframes, "edvr_stf")

    y0, x0, height, width = field.grid_window
    aligned_mount = HSMount(float(y0), float(x0))
    hr_aligned = event.hs_burst(
        HS_SPEC,
        lr_times[keyframes],
        (height, width),
        field_shape_hr=FIELD,
        mount=aligned_mount,
        seed=burst_seed,
    )
    aligned = fuse(lr_field, hr_aligned, keyframes, "edvr_stf")

    full_scale = float(2**HS_SPEC.bit_depth - 1)
    clean = event.render(lr_times, FIELD, seed=burst_seed)
    clean = clean[:, y0 : y0 + height, x0 : x0 + width] * full_scale
    psnr_mis, _ = mean_finite(psnr(misaligned.frames, clean, data_range=full_scale))
    psnr_al, _ = mean_finite(psnr(aligned.frames, clean, data_range=full_scale))
    psnr_true, _ = mean_finite(psnr(true_warp.frames, clean, data_range=full_scale))
    return {
        "ratio": truth.scale_ratio,
        "ratio_m": measured.scale_ratio,
        "rot": truth.rotation_deg,
        "rot_m": measured.rotation_deg,
        "oy": truth.offset_hr_px[0],
        "ox": truth.offset_hr_px[1],
        "oy_m": measured.offset_hr_px[0],
        "ox_m": measured.offset_hr_px[1],
        "flips": f"{'y' if truth.flip_y else '-'}{'x' if truth.flip_x else '-'}",
        "flips_ok": (measured.flip_y, measured.flip_x) == (truth.flip_y, truth.flip_x),
        "rms": measured.point_rms_hr_px(truth),
        "rms_sigma": geometry.uncertainty["point_rms_hr_px"],
        "latency": latency,
        "latency_m": timing.latency_lr_periods,
        "psnr_mis": psnr_mis,
        "psnr_al": psnr_al,
        "psnr_true": psnr_true,
        "window": f"{field.lr_window[2]}×{field.lr_window[3]}",
        "geometry_s": geometry_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--geometries", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--frames", type=int, default=9, help="UHS frames in the fused burst"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; UHS "
        f"{UHS_SHAPE[0]}×{UHS_SHAPE[1]}, HS {HS_SHAPE[0]}×{HS_SHAPE[1]}, "
        f"{args.frames} fused UHS frames, seed {args.seed}"
    )
    print(
        "| # | flips | scale ratio true / meas | rotation ° true / meas | "
        "shift HR px true / meas (y, x) | point RMS HR px (σ) | "
        "latency UHS periods true / meas | shared field (UHS px) | "
        "PSNR dB misaligned: measured / true transform | PSNR dB aligned | "
        "Δ measured − aligned |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    start = time.perf_counter()
    for index in range(args.geometries):
        r = measure_one(index, args.seed, args.frames)
        rows.append(r)
        flips = r["flips"] + ("" if r["flips_ok"] else " (wrong)")
        print(
            f"| {index} | {flips} | {r['ratio']:.4f} / {r['ratio_m']:.4f} | "
            f"{r['rot']:+.3f} / {r['rot_m']:+.3f} | "
            f"({r['oy']:.2f}, {r['ox']:.2f}) / ({r['oy_m']:.2f}, {r['ox_m']:.2f}) | "
            f"{r['rms']:.3f} ({r['rms_sigma']:.3f}) | "
            f"{r['latency']:+.3f} / {r['latency_m']:+.3f} | {r['window']} | "
            f"{r['psnr_mis']:.2f} / {r['psnr_true']:.2f} | {r['psnr_al']:.2f} | "
            f"{r['psnr_mis'] - r['psnr_al']:+.2f} |",
            flush=True,
        )
    n = len(rows)
    scale_err = [abs(r["ratio_m"] / r["ratio"] - 1) for r in rows]
    rot_err = [abs(r["rot_m"] - r["rot"]) for r in rows]
    rms = [r["rms"] for r in rows]
    lat_err = [abs(r["latency_m"] - r["latency"]) for r in rows]
    dpsnr = [r["psnr_mis"] - r["psnr_al"] for r in rows]
    flips_ok = sum(r["flips_ok"] for r in rows)

    def met(values: list[float], limit: float) -> int:
        return sum(v <= limit for v in values)

    print(
        f"\nTargets met: flips {flips_ok}/{n}; scale error ≤ 0.1 % "
        f"{met(scale_err, 1e-3)}/{n} (max {100 * max(scale_err):.4f} %); rotation "
        f"≤ 0.05° {met(rot_err, 0.05)}/{n} (max {max(rot_err):.4f}°); point RMS ≤ "
        f"0.2 HR px {met(rms, 0.2)}/{n} (max {max(rms):.3f}); latency ≤ 0.1 period "
        f"{met(lat_err, 0.1)}/{n} (max {max(lat_err):.3f}); PSNR misaligned ≥ "
        f"aligned − 0.5 dB {sum(d >= -0.5 for d in dpsnr)}/{n} (mean Δ "
        f"{np.mean(dpsnr):+.2f} dB, worst {min(dpsnr):+.2f} dB; measured − true "
        f"transform {np.mean([r['psnr_mis'] - r['psnr_true'] for r in rows]):+.3f} "
        "dB mean). "
        f"measure_geometry {np.median([r['geometry_s'] for r in rows]):.2f} s median; "
        f"total {time.perf_counter() - start:.0f} s."
    )


if __name__ == "__main__":
    main()
