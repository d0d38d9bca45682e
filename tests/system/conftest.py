"""Raw runs written straight from arrays, for the fusion pipeline's failure tests.

``write_raw_run`` composes the documents ``dual_camera_scan`` would emit (start
with lr/hr/registration/fusion blocks, one event per burst, the images as
StreamResource/StreamDatum into areaDetector-layout HDF5) and sends them through
the same TiledWriter, so a test can make any broken run a beamline could produce.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest


def scene_burst(num_frames: int = 24, hr_every: int = 8, seed: int = 5):
    """A small truthful burst: LR (T, 16, 24) and HR (K, 64, 96) counts, times."""
    from xfusion_bluesky.synthetic.degradation import bin_frames
    from xfusion_bluesky.synthetic.scene import generate_scene

    truth = generate_scene(
        "fast_front", num_frames=num_frames, height=64, width=96, seed=seed
    )
    hr_index = np.arange(0, num_frames, hr_every)
    lr = np.rint(bin_frames(truth, 4) * 1023).astype(np.uint16)
    hr = np.rint(truth[hr_index] * 4095).astype(np.uint16)
    period = 5e-7
    return {
        "lr": lr,
        "hr": hr,
        "lr_times": period * np.arange(num_frames),
        "hr_times": period * hr_index,
        "truth": truth,
        "hr_index": hr_index,
    }


def _camera_block(name: str, frames: np.ndarray, period: float, bits: int) -> dict:
    return {
        "camera": name,
        "frame_period_s": period,
        "frame_rate_hz": 1 / period,
        "frames_per_burst": int(frames.shape[0]),
        "frame_shape": [int(v) for v in frames.shape[1:]],
        "bit_depth": bits,
        "delay_s": 0.0,
        "data_key": f"{name}_image",
        "frame_times_key": f"{name}_frame_times_s",
    }


def _write_hdf5(path: Path, bursts: list[np.ndarray]) -> None:
    stack = np.concatenate(bursts)
    with h5py.File(path, "w") as f:
        chunks = (1, *stack.shape[1:]) if stack.shape[0] else None
        data = f.create_dataset(
            "/entry/instrument/detector/data", data=stack, chunks=chunks
        )
        f["/entry/data/data"] = data


@pytest.fixture
def burst():
    """A 24-frame fast-front burst, HR every 8 LR frames (see :func:`scene_burst`)."""
    return scene_burst()


@pytest.fixture
def write_raw_run(tiled, hdf5_dir):
    """Return ``write(**options) -> uid`` writing a raw dual-camera run to Tiled."""
    return make_raw_run_writer(tiled.raw, hdf5_dir)


def make_raw_run_writer(raw: Any, hdf5_dir: Path):
    """Return ``write(**options) -> uid`` writing raw dual-camera runs into ``raw``.

    ``write.files[uid]`` maps each image data key to its HDF5 file, for tests
    that damage a file after the scan; ``write.stop[uid]()`` writes the stop
    document of a run written with ``with_stop=False``. Tests outside this
    folder load this module by path (its fixtures are not theirs).
    """
    from bluesky_tiled_plugins import TiledWriter
    from event_model import compose_run
    from event_model.documents.stream_datum import StreamRange

    def write(
        *,
        lr: np.ndarray,
        hr: np.ndarray,
        lr_times: np.ndarray,
        hr_times: np.ndarray,
        num_bursts: int = 1,
        announced_bursts: int | None = None,
        offset_hr_px: tuple[float, float] = (0.0, 0.0),
        flip_y: bool = False,
        exit_status: str = "success",
        method: str = "bicubic",
        hr_shape_in_md: tuple[int, int] | None = None,
        with_stop: bool = True,
        xfusion_format: int = 1,
        stop_reason: str = "",
        registration: dict[str, Any] | None = None,
        rois: dict[str, list[int]] | None = None,
    ) -> str:
        writer = TiledWriter(raw, batch_size=1, max_array_size=0)
        lr_md = _camera_block("uhs", lr, float(lr_times[1] - lr_times[0]), 10)
        hr_md = _camera_block("hs", hr, 8e-6, 12)
        if hr_shape_in_md is not None:
            hr_md["frame_shape"] = list(hr_shape_in_md)
        for name, block in (("uhs", lr_md), ("hs", hr_md)):
            if rois and name in rois:  # the cameras' ROIs, as dual_camera_scan records
                block["roi"] = list(rois[name])
        bundle = compose_run(
            metadata={
                "plan_name": "dual_camera_scan",
                "xfusion_format": xfusion_format,
                "num_points": announced_bursts or num_bursts,
                "uhs": lr_md,
                "hs": hr_md,
                "registration": {
                    "scale": 4,
                    "offset_hr_px": list(offset_hr_px),
                    "flip_y": flip_y,
                    "flip_x": False,
                    **(registration or {}),  # e.g. a version-3 block's keys
                },
                "fusion": {"requested": True, "method": method, "lr_separation": 1},
            }
        )
        writer("start", bundle.start_doc)
        data_keys: dict[str, Any] = {}
        resources = {}
        paths: dict[str, Path] = {}
        tag = uuid.uuid4().hex[:8]
        for key, frames in (("uhs_image", lr), ("hs_image", hr)):
            path = Path(hdf5_dir) / f"{key}_{tag}.h5"
            paths[key] = path
            _write_hdf5(path, [frames] * num_bursts)
            data_keys[key] = {
                "source": "test",
                "dtype": "array",
                "dtype_numpy": frames.dtype.str,
                "shape": [int(v) for v in frames.shape],
                "external": "STREAM:",
            }
            resources[key] = bundle.compose_stream_resource(
                mimetype="application/x-hdf5",
                uri=f"file://localhost{path}",
                data_key=key,
                parameters={"dataset": "/entry/data/data", "chunk_shape": [1]},
            )
        for key, times in (
            ("uhs_frame_times_s", lr_times),
            ("hs_frame_times_s", hr_times),
        ):
            data_keys[key] = {
                "source": "test",
                "dtype": "array",
                "dtype_numpy": "<f8",
                "shape": [len(times)],
            }
        desc = bundle.compose_descriptor(name="primary", data_keys=data_keys)
        writer("descriptor", desc.descriptor_doc)
        for res in resources.values():
            writer("stream_resource", res.stream_resource_doc)
        for k in range(num_bursts):
            for res in resources.values():
                datum = res.compose_stream_datum(
                    indices=StreamRange(start=k, stop=k + 1),
                    descriptor=desc.descriptor_doc,
                )
                writer("stream_datum", datum)
            data = {"uhs_frame_times_s": lr_times, "hs_frame_times_s": hr_times}
            event = desc.compose_event(data=data, timestamps=dict.fromkeys(data, 0.0))
            writer("event", event)
        uid = str(bundle.start_doc["uid"])
        files[uid] = paths

        def stop() -> None:
            writer(
                "stop", bundle.compose_stop(exit_status=exit_status, reason=stop_reason)
            )

        if with_stop:
            stop()
        else:
            stoppers[uid] = stop
        return uid

    files: dict[str, dict[str, Path]] = {}
    stoppers: dict[str, Any] = {}
    write.files = files  # type: ignore[attr-defined]
    write.stop = stoppers  # type: ignore[attr-defined]
    return write
