"""Write a fused result back to Tiled as a derived bluesky run.

A derived run is an ordinary bluesky run — documents composed with
``event_model.compose_run`` and written by bluesky-tiled-plugins' ``TiledWriter``
into the ``fused`` container — marked with the ``DerivedRun`` spec, in stored
format v1 (``docs/format.md``). Its start document says what it was derived from
and how (``raw_uid``, ``raw_scan_id``, ``operation``, ``fusion``); its ``primary``
stream holds one event per fused frame, written as the frames come; its
``normalized`` stream holds the normalised attention scores, written when a burst
ends (the normalisation needs the whole burst). Every document is written once:
the outcome goes into the stop document (``exit_status``, ``reason`` and an
``outcome`` block with the per-burst records, the bursts not fused and why,
timings and a failure's traceback).

Frames are stored as uint16 in the HS camera's counts: the fused frames are
estimates of what the HS camera would have recorded, so its integer scale loses
nothing it could have measured (quantisation adds 0.29 counts rms against the
HS camera's own noise of several counts) and halves the bytes of float32.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
import traceback as traceback_module
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xfusion_bluesky.stored_format import FORMAT_KEY, FORMAT_VERSION

__all__ = [
    "DERIVED_SPEC",
    "OPERATION",
    "PLAN_NAME",
    "DerivedFrame",
    "DerivedRunWriter",
    "frames_per_request",
    "fusion_key",
    "short_traceback",
    "to_counts",
    "write_failed_run",
]

logger = logging.getLogger(__name__)

#: Tiled spec that marks a derived run (besides ``BlueskyRun``).
DERIVED_SPEC = "DerivedRun"
#: ``plan_name`` of derived runs.
PLAN_NAME = "xfusion_fuse"
#: ``operation`` of derived runs: what was done to the raw run.
OPERATION = "fusion"
#: Bytes of fused frames per TiledWriter request: each request costs ~50 ms, so
#: batching is most of the pipeline's overhead on small frames (8 frames per batch:
#: 21 % of the model time at 128×192; see benchmarks/bench_pipeline.py).
WRITE_BATCH_BYTES = 16 * 2**20
#: Most frames per request: a viewer still sees new frames every few seconds.
MAX_WRITE_BATCH = 64
#: Lines of traceback kept in a failed run's stop document.
TRACEBACK_LINES = 12


@dataclass(frozen=True)
class DerivedFrame:
    """One fused frame and the per-frame record that goes with it.

    Attributes
    ----------
    burst, uhs_frame : int
        Burst (raw event) number and UHS frame number of the reference frame t.
    time_s : float
        The reference frame's time after the trigger.
    fused : ndarray, (H, W) uint16
        The fused frame in HS counts.
    backward_attention, forward_attention : float
        Raw attention scores of the HR frame before / after (NaN without).
    hs_before, hs_after : int
        HS frame numbers (in the raw burst) used as the HR frames before / after.
    hr_at_reference : bool
        The HS frame before was taken at the reference instant itself.
    hr_passed_through : bool
        The fused frame is that HS frame itself (``fuse(hr_passthrough=True)``).
    """

    burst: int
    uhs_frame: int
    time_s: float
    fused: NDArray[np.uint16]
    backward_attention: float
    forward_attention: float
    hs_before: int
    hs_after: int
    hr_at_reference: bool
    hr_passed_through: bool = False


def fusion_key(
    raw_uid: str, method: str, model_sha256: str | None, **params: Any
) -> str:
    """Return the identity of a fusion: sha256 of (raw uid, method, model, parameters).

    Asking to fuse the same raw run the same way again finds the derived run by
    this key instead of fusing twice.
    """
    identity = {
        "raw_uid": raw_uid,
        "method": method,
        "model_sha256": model_sha256,
        "params": params,
    }
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def frames_per_request(frame_shape: tuple[int, int]) -> int:
    """Return how many fused frames of ``frame_shape`` go in one write request."""
    frame_bytes = 2 * int(frame_shape[0]) * int(frame_shape[1])
    return max(1, min(MAX_WRITE_BATCH, WRITE_BATCH_BYTES // frame_bytes))


def to_counts(frame: NDArray[Any], bit_depth: int) -> NDArray[np.uint16]:
    """Round a fused frame to the HS camera's counts, clipped to its ADC range."""
    full_scale = float(2 ** int(bit_depth) - 1)
    return np.clip(np.rint(frame), 0.0, full_scale).astype(np.uint16)


def short_traceback(err: BaseException) -> str:
    """Return the last lines of ``err``'s traceback (for a failed run's record)."""
    lines = traceback_module.format_exception(type(err), err, err.__traceback__)
    text = "".join(lines).rstrip().splitlines()
    return "\n".join(text[-TRACEBACK_LINES:])


def _with_data_sources(fused: Any) -> Any:
    """``fused`` as TiledWriter wants it, without the request it would make.

    TiledWriter asks its client for a variant that lists data sources and
    fetches that variant's node again (one request per run); the variant made
    here from the node already fetched is the same client.
    """
    new_variation = getattr(fused, "new_variation", None)
    if new_variation is None:
        return fused
    return new_variation(include_data_sources=True)


def worker_identity() -> dict[str, Any]:
    """Return who writes the run: host and process id (to spot abandoned runs)."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _start_metadata(
    raw_uid: str, fusion: dict[str, Any], raw_start: dict[str, Any]
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "plan_name": PLAN_NAME,
        FORMAT_KEY: FORMAT_VERSION,
        "operation": OPERATION,
        "raw_uid": raw_uid,
    }
    if "scan_id" in raw_start:
        metadata["raw_scan_id"] = raw_start["scan_id"]
    if "sample" in raw_start:
        metadata["sample"] = raw_start["sample"]
    metadata.update(fusion=fusion, worker=worker_identity(), tiled_specs=[DERIVED_SPEC])
    return metadata


def _stop(
    bundle: Any,
    status: str,
    *,
    reason: str,
    traceback: str | None,
    outcome: dict[str, Any],
) -> dict[str, Any]:
    """Compose the stop document; the outcome travels in it (documents are final)."""
    stop = dict(
        bundle.compose_stop(
            exit_status="success" if status == "success" else "fail", reason=reason
        )
    )
    stop["outcome"] = {
        "status": status,
        **outcome,
        "traceback": traceback or "",
    }
    return stop


@dataclass
class DerivedRunWriter:
    """Write one derived run frame by frame; ``close()`` or ``fail()`` ends it.

    Parameters
    ----------
    fused : CatalogOfBlueskyRuns
        The derived-run container.
    raw_uid : str
        The raw run's full uid.
    fusion : dict
        The start document's ``fusion`` block (method, model, key, ...).
    frame_shape : (int, int)
        Fused frame shape (H, W).
    raw_start : dict, optional
        The raw run's start document (its scan id and sample are copied).

    Attributes
    ----------
    bursts : list of dict
        Per-burst records the caller appends; they go into the stop document.
    missing_bursts : list of dict
        ``{"burst": k, "reason": ...}`` for each raw burst not fused (not
        recorded, or not readable); they go into the stop document too.
    timing : dict or None
        The latency check's summary, set before the run ends; it goes into the
        stop document as ``outcome.timing`` (version 3).
    """

    fused: Any
    raw_uid: str
    fusion: dict[str, Any]
    frame_shape: tuple[int, int]
    raw_start: dict[str, Any] = field(default_factory=dict)
    uid: str = field(init=False, default="")
    bursts: list[dict[str, Any]] = field(init=False, default_factory=list)
    missing_bursts: list[dict[str, Any]] = field(init=False, default_factory=list)
    timing: dict[str, Any] | None = field(init=False, default=None)
    _writer: Any = field(init=False, default=None, repr=False)
    _bundle: Any = field(init=False, default=None, repr=False)
    _frames: Any = field(init=False, default=None, repr=False)
    _normalized: Any = field(init=False, default=None, repr=False)
    _count: int = field(init=False, default=0, repr=False)
    _t0: float = field(init=False, default=0.0, repr=False)
    _open: bool = field(init=False, default=False, repr=False)

    @property
    def is_open(self) -> bool:
        """The start document and the stream descriptors are written."""
        return self._open

    def open(self) -> str:
        """Write the start document and the stream descriptors; return the uid."""
        from bluesky_tiled_plugins import TiledWriter
        from event_model import compose_run

        self._t0 = time.perf_counter()
        self.fusion.setdefault("started", time.time())
        height, width = (int(v) for v in self.frame_shape)
        batch = frames_per_request((height, width))
        self._writer = TiledWriter(
            _with_data_sources(self.fused), batch_size=batch, max_array_size=0
        )
        self._bundle = compose_run(
            metadata=_start_metadata(self.raw_uid, self.fusion, self.raw_start)
        )
        self.uid = str(self._bundle.start_doc["uid"])
        self._writer("start", self._bundle.start_doc)
        scalar = {"source": "xfusion", "dtype": "number", "shape": []}
        integer = {"source": "xfusion", "dtype": "integer", "shape": []}
        self._frames = self._bundle.compose_descriptor(
            name="primary",
            data_keys={
                "fused": {
                    "source": "xfusion",
                    "dtype": "array",
                    "dtype_numpy": "<u2",
                    "shape": [height, width],
                    "units": "HS counts",
                },
                "frame_time_s": {**scalar, "units": "s"},
                "backward_attention": scalar,
                "forward_attention": scalar,
                "burst": integer,
                "uhs_frame": integer,
                "hs_before": integer,
                "hs_after": integer,
                "hr_at_reference": {**integer, "dtype": "boolean"},
                "hr_passed_through": {**integer, "dtype": "boolean"},
            },
        )
        self._writer("descriptor", self._frames.descriptor_doc)
        self._normalized = self._bundle.compose_descriptor(
            name="normalized",
            data_keys={
                "normalized_backward_attention": scalar,
                "normalized_forward_attention": scalar,
                "burst": integer,
                "uhs_frame": integer,
            },
        )
        self._writer("descriptor", self._normalized.descriptor_doc)
        self._open = True
        logger.info("derived run %s of raw run %s opened", self.uid, self.raw_uid)
        return self.uid

    def write_frame(self, record: DerivedFrame) -> None:
        """Append one fused frame and its scores to the ``primary`` stream."""
        data = {
            "fused": record.fused,
            "frame_time_s": float(record.time_s),
            "backward_attention": float(record.backward_attention),
            "forward_attention": float(record.forward_attention),
            "burst": int(record.burst),
            "uhs_frame": int(record.uhs_frame),
            "hs_before": int(record.hs_before),
            "hs_after": int(record.hs_after),
            "hr_at_reference": bool(record.hr_at_reference),
            "hr_passed_through": bool(record.hr_passed_through),
        }
        now = time.time()
        event = self._frames.compose_event(
            data=data,
            timestamps=dict.fromkeys(data, now),
            # TiledWriter checks every document against the schema; composing
            # checks the keys against the descriptor too, the same for every
            # event of a stream: once is enough (~1 ms an event otherwise).
            validate=self._count == 0,
        )
        self._writer("event", event)
        self._count += 1

    def write_normalized(
        self,
        burst: int,
        normalized_backward: NDArray[np.float64],
        normalized_forward: NDArray[np.float64],
    ) -> None:
        """Append a whole burst's normalised scores to the ``normalized`` stream."""
        now = time.time()
        for t, (b, f) in enumerate(
            zip(normalized_backward, normalized_forward, strict=True)
        ):
            data = {
                "normalized_backward_attention": float(b),
                "normalized_forward_attention": float(f),
                "burst": int(burst),
                "uhs_frame": t,
            }
            self._writer(
                "event",
                self._normalized.compose_event(
                    data=data, timestamps=dict.fromkeys(data, now), validate=t == 0
                ),
            )

    def close(self, reason: str = "") -> None:
        """End the run as a success; ``reason`` says what was left out, if anything."""
        self._finish("success", reason=reason, traceback=None)

    def fail(self, reason: str, traceback: str | None = None) -> None:
        """End the run as failed, with a one-line ``reason`` a scientist understands."""
        self._finish("failed", reason=reason, traceback=traceback)

    def _finish(self, status: str, *, reason: str, traceback: str | None) -> None:
        outcome = {
            "finished": time.time(),
            "wall_time_s": time.perf_counter() - self._t0,
            "frames_written": self._count,
            "bursts": self.bursts,
            "missing_bursts": self.missing_bursts,
        }
        if self.timing is not None:
            outcome["timing"] = self.timing
        self._writer(
            "stop",
            _stop(
                self._bundle,
                status,
                reason=reason,
                traceback=traceback,
                outcome=outcome,
            ),
        )
        log = logger.info if status == "success" else logger.warning
        log("derived run %s %s (%d frames)", self.uid, status, self._count)


def write_failed_run(
    fused: Any,
    *,
    raw_uid: str,
    fusion: dict[str, Any],
    reason: str,
    traceback: str | None = None,
    raw_start: dict[str, Any] | None = None,
) -> str:
    """Record a fusion that failed before any frame was fused; return its uid.

    The run has the derived run's start document, no events, and a stop document
    with ``exit_status="fail"``, the one-line ``reason`` and, in its ``outcome``
    block, a short ``traceback``, so a failure is found exactly where a result
    would be.
    """
    from bluesky_tiled_plugins import TiledWriter
    from event_model import compose_run

    now = time.time()
    fusion = {**fusion}
    fusion.setdefault("started", now)
    bundle = compose_run(metadata=_start_metadata(raw_uid, fusion, raw_start or {}))
    writer = TiledWriter(_with_data_sources(fused), batch_size=1, max_array_size=0)
    writer("start", bundle.start_doc)
    outcome = {
        "finished": now,
        "wall_time_s": 0.0,
        "frames_written": 0,
        "bursts": [],
        "missing_bursts": [],
    }
    writer(
        "stop",
        _stop(bundle, "failed", reason=reason, traceback=traceback, outcome=outcome),
    )
    uid = str(bundle.start_doc["uid"])
    logger.warning("fusion of raw run %s failed: %s (record %s)", raw_uid, reason, uid)
    return uid
