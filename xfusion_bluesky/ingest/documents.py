"""The documents of an ingested run: the raw format ``dual_camera_scan`` writes.

One run, one event (burst) per recording pair: start (the same ``uhs``, ``hs``,
``timing``, ``registration`` and ``fusion`` blocks, built by the same
:mod:`~xfusion_bluesky.plans.metadata` functions, plus ``plan_name: "ingest"``
and an ``ingest`` block naming the original files), a ``primary`` descriptor, a
StreamResource per camera pointing at its HDF5 file (external: nothing is
copied), a StreamDatum per camera, the event with both cameras' frame times,
and the stop document. Composed with event-model; nothing here talks to Tiled.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from xfusion_bluesky.devices.base import BurstSettings, CameraSpec
from xfusion_bluesky.ingest.recordings import CameraTrack, RecordingPair
from xfusion_bluesky.ingest.storage import StoredFile, file_facts
from xfusion_bluesky.plans.dual_camera import FUSION_METHOD
from xfusion_bluesky.plans.metadata import (
    CameraRecord,
    RegistrationRecord,
    camera_metadata,
    registration_metadata,
    timing_metadata,
)
from xfusion_bluesky.stored_format import FORMAT_KEY, FORMAT_VERSION

__all__ = ["PLAN_NAME", "compose_documents"]

#: ``plan_name`` of an ingested run.
PLAN_NAME = "ingest"
#: Keys of a camera block a file does not tell: stored as null.
_UNKNOWN_CAMERA_KEYS = (
    "manufacturer",
    "model",
    "exposure_s",
    "pixel_size_um",
    "effective_pixel_size_um",
)


def compose_documents(
    pair: RecordingPair,
    files: Mapping[str, StoredFile],
    registration: Mapping[str, Any],
    *,
    options: Mapping[str, Any],
    registration_file: Mapping[str, Any] | None = None,
    md: Mapping[str, Any] | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """Return the ``(name, document)`` pairs of one ingested raw run, in order.

    Parameters
    ----------
    pair : RecordingPair
        The checked recordings (:func:`~xfusion_bluesky.ingest.recordings.check_pair`).
    files : mapping of str to StoredFile
        The HDF5 file of each camera (``"uhs"``, ``"hs"``).
    registration : mapping
        The ``registration`` block (version 3).
    options : mapping
        What the caller gave (``uhs_rate_hz``, ``hs_rate_hz``, ``hs_delay_s``,
        ``registration``): the start document's ``plan_args``.
    registration_file : mapping, optional
        ``path`` and ``sha256`` of the registration file, for the ``ingest`` block.
    md : mapping, optional
        Extra start-document metadata (sample, operator, ...); overrides defaults.
    """
    from event_model import compose_run
    from event_model.documents.stream_datum import StreamRange

    uhs_record = _record(pair.uhs, registration)
    hs_record = _record(pair.hs, registration)
    start_md: dict[str, Any] = {
        "plan_name": PLAN_NAME,
        "plan_args": {k: _plain(v) for k, v in options.items()},
        "detectors": ["uhs", "hs"],
        "num_points": 1,
        "num_intervals": 0,
        "hints": {"dimensions": [(["time"], "primary")]},
        FORMAT_KEY: FORMAT_VERSION,
        "uhs": _camera_block(uhs_record),
        "hs": _camera_block(hs_record),
        "timing": _timing_block(uhs_record, hs_record),
        "registration": _registration_block(registration, uhs_record, hs_record),
        "fusion": {"requested": True, "method": FUSION_METHOD, "lr_separation": 1},
        "ingest": {
            "uhs": _file_block(pair.uhs, files["uhs"]),
            "hs": _file_block(pair.hs, files["hs"]),
            "hs_delay_s": float(pair.hs_delay_s),
            "registration_file": (
                None if registration_file is None else dict(registration_file)
            ),
        },
    }
    start_md.update(md or {})
    bundle = compose_run(metadata=start_md)
    data_keys: dict[str, Any] = {}
    for track in (pair.uhs, pair.hs):
        item = files[track.role]
        count = track.stop - track.first
        data_keys[f"{track.role}_image"] = {
            "source": f"ingest:{track.recording.format}",
            "dtype": "array",
            "dtype_numpy": item.dtype.str,
            "shape": [count, *item.shape[1:]],
            "external": "STREAM:",
        }
        data_keys[f"{track.role}_frame_times_s"] = {
            "source": f"ingest:{track.times_from}",
            "dtype": "array",
            "dtype_numpy": "<f8",
            "shape": [count],
        }
    descriptor = bundle.compose_descriptor(name="primary", data_keys=data_keys)
    docs: list[tuple[str, dict[str, Any]]] = [
        ("start", dict(bundle.start_doc)),
        ("descriptor", dict(descriptor.descriptor_doc)),
    ]
    compose_resource = bundle.compose_stream_resource
    if compose_resource is None:  # event-model composes it for every run
        raise RuntimeError("this event-model composes no StreamResource documents")
    resources = []
    for track in (pair.uhs, pair.hs):
        item = files[track.role]
        parameters: dict[str, Any] = {
            "dataset": item.dataset,
            "chunk_shape": [1],
            "swmr": False,
        }
        if (track.first, track.stop) != (0, item.shape[0]):
            # Only the HS frames within the UHS burst: the rest of a long
            # recording is never read.
            parameters["slice"] = f"{track.first}:{track.stop}"
        resource = compose_resource(
            mimetype="application/x-hdf5",
            uri=f"file://localhost{item.path}",
            data_key=f"{track.role}_image",
            parameters=parameters,
        )
        resources.append(resource)
        docs.append(("stream_resource", dict(resource.stream_resource_doc)))
    for resource in resources:
        datum = resource.compose_stream_datum(
            indices=StreamRange(start=0, stop=1), descriptor=descriptor.descriptor_doc
        )
        docs.append(("stream_datum", dict(datum)))
    data = {
        "uhs_frame_times_s": pair.uhs.stored_times_s,
        "hs_frame_times_s": pair.hs.stored_times_s,
    }
    now = time.time()
    event = descriptor.compose_event(data=data, timestamps=dict.fromkeys(data, now))
    docs.append(("event", dict(event)))
    docs.append(("stop", dict(bundle.compose_stop(exit_status="success"))))
    return docs


def _record(track: CameraTrack, registration: Mapping[str, Any]) -> CameraRecord:
    """Return the start-document record of one recording (what its file tells)."""
    height, width = track.frame_shape
    rate = float(track.frame_rate_hz)
    dtype = np.dtype(track.recording.dtype)
    bits = track.recording.bit_depth or (
        8 * dtype.itemsize if dtype.kind in "iu" else 0
    )
    bits = bits or 16  # a float recording: the fused frames are 16-bit counts
    # An ingested recording's sensor ROI is not in its file: the registration's
    # measured ROI stands for it (the registration was checked to fit these
    # frames), else the whole frame.
    rois = registration.get("measured_rois") or {}
    roi = tuple(int(v) for v in rois.get(track.role) or (0, 0, height, width))
    spec = CameraSpec(
        role=track.role,
        manufacturer="",
        model="",
        sensor_height=roi[0] + height,
        sensor_width=roi[1] + width,
        max_frame_rate_hz=rate,
        max_frame_rate_cap_hz=rate,
        roi_speeds_up=False,
        bit_depth=int(bits),
        pixel_size_um=math.nan,
    )
    settings = BurstSettings(
        frame_rate_hz=rate,
        exposure_s=math.nan,
        num_images=track.stop - track.first,
        roi=(roi[0], roi[1], height, width),
    )
    delay = float(track.stored_times_s[0])
    return CameraRecord(track.role, spec, settings, delay, math.nan)


def _registration_block(
    block: Mapping[str, Any], uhs: CameraRecord, hs: CameraRecord
) -> dict[str, Any]:
    """Return the start document's block: the scans' function, the file's values."""
    offset_y, offset_x = (float(v) for v in block["offset_hr_px"])
    record = RegistrationRecord(
        offset_y_hr_px=offset_y,
        offset_x_hr_px=offset_x,
        flip_y=bool(block["flip_y"]),
        flip_x=bool(block["flip_x"]),
        measured_by=str(block["measured_by"]),
        scale_ratio=float(block["scale_ratio"]),
        rotation_deg=float(block["rotation_deg"]),
        uncertainty=block.get("uncertainty"),
        measured_at=block.get("measured_at"),
        measured_rois=block.get("measured_rois"),
        hs_latency_s=float(block.get("hs_latency_s", 0.0)),
        hs_latency_std_s=block.get("hs_latency_std_s"),
        latency_measured_by=str(block.get("latency_measured_by", "nominal")),
    )
    out = registration_metadata(record, uhs, hs)
    # The files do not tell the pixel sizes: the registration's ratio stands in.
    out["pixel_size_ratio"] = float(block["pixel_size_ratio"])
    return out


def _camera_block(record: CameraRecord) -> dict[str, Any]:
    block = camera_metadata(record)
    block.update(dict.fromkeys(_UNKNOWN_CAMERA_KEYS))
    return block


def _timing_block(uhs: CameraRecord, hs: CameraRecord) -> dict[str, Any]:
    block = timing_metadata(uhs, hs, device="", num_bursts=1)
    # No timing generator of ours triggered these files: the "delays" are the
    # times of each camera's first stored frame on the run's time axis.
    block.update(
        {
            "device": None,
            "trigger": "recorded before (ingest)",
            "uhs_channel": None,
            "hs_channel": None,
        }
    )
    return block


def _file_block(track: CameraTrack, item: StoredFile) -> dict[str, Any]:
    recording = track.recording
    block = file_facts(Path(recording.path))
    block.update(
        {
            "format": str(recording.format),
            "frames": [int(track.first), int(track.stop)],
            "num_frames": int(recording.num_frames),
            "frame_times_from": track.times_from,
            "stored_path": str(item.path),
            "stored_dataset": item.dataset,
            "converted": bool(item.converted),
        }
    )
    return block


def _plain(value: Any) -> Any:
    """Return a JSON-able copy of an option (paths as text)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value
