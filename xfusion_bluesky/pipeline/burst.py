"""Fuse one burst of a raw run into the derived run being written.

A burst goes through three steps, so that :mod:`~xfusion_bluesky.pipeline.overlap`
can run the host's work beside the fusion: :func:`read_burst` and
:func:`prepare_burst` (the HS frame times are shifted by the registration's
latency before each HR frame gets its LR instant, and the frames are put on the
common field: a crop, or one warp onto the fused grid), :func:`fuse_burst`
(fused frame by frame into the writer), and :func:`check_latency` (the burst's
own frames check the latency: :mod:`~xfusion_bluesky.pipeline.timing`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xfusion_bluesky.catalog.derived import DerivedFrame, DerivedRunWriter, to_counts
from xfusion_bluesky.catalog.reader import RawBurst, RawRun
from xfusion_bluesky.errors import RunNotFusableError
from xfusion_bluesky.fusion import fuse_iter, normalize_attention
from xfusion_bluesky.fusion.adaptation import AdaptSettings
from xfusion_bluesky.fusion.alignment import TimeAlignment, align_hr_times
from xfusion_bluesky.fusion.field import FieldRegistration
from xfusion_bluesky.pipeline.overlap import Pending, WriteBehind
from xfusion_bluesky.pipeline.timing import latency_check, shifted_hr_times

__all__ = [
    "PreparedBurst",
    "check_latency",
    "check_shapes",
    "fuse_burst",
    "lr_period_s",
    "prepare_burst",
    "read_burst",
]


@dataclass(frozen=True)
class PreparedBurst:
    """A burst as read, its HR frames' LR instants, and both stacks on the field.

    Attributes
    ----------
    raw : RawBurst
        The burst as stored.
    alignment : TimeAlignment
        The LR instant of each HS frame kept.
    lr, hr : ndarray
        The UHS frames and the kept HS frames on the common field.
    """

    raw: RawBurst
    alignment: TimeAlignment
    lr: NDArray[Any]
    hr: NDArray[Any]


def lr_period_s(run: RawRun, lr_times_s: Any = None) -> float | None:
    """Return the UHS frame period: the start document's, else the median spacing."""
    period = float(run.start["uhs"].get("frame_period_s") or 0)
    if period > 0:
        return period
    if lr_times_s is not None and len(lr_times_s) > 1:
        return float(np.median(np.diff(np.asarray(lr_times_s, dtype=np.float64))))
    return None


def read_burst(run: RawRun, k: int) -> RawBurst:
    """Read burst ``k`` and check its shapes; a RunNotFusableError leaves it out."""
    burst = run.burst(k)
    check_shapes(run, burst.lr.shape[1:], burst.hr.shape[1:], k)
    return burst


def prepare_burst(
    run: RawRun, burst: RawBurst, registration: FieldRegistration
) -> PreparedBurst:
    """Give each HS frame its LR instant and put both stacks on the common field."""
    alignment = align_hr_times(
        burst.lr_times_s,
        shifted_hr_times(burst.hr_times_s, run.hs_latency_s),
        lr_period_s(run),
    )
    # Only the HS frames used: a warp resamples each one.
    lr, hr = registration.apply(burst.lr, burst.hr[alignment.kept])
    return PreparedBurst(burst, alignment, lr, hr)


def check_latency(
    run: RawRun, burst: RawBurst, registration: FieldRegistration
) -> dict[str, Any]:
    """Measure the burst's HS latency on its own frames (never raises)."""
    return latency_check(
        burst.lr,
        burst.lr_times_s,
        burst.hr,
        burst.hr_times_s,
        registration.similarity or run.similarity,
        applied_s=run.hs_latency_s,
        lr_period_s=lr_period_s(run, burst.lr_times_s) or 1.0,
    )


def fuse_burst(
    writer: DerivedRunWriter,
    sink: WriteBehind,
    run: RawRun,
    prepared: PreparedBurst,
    latency: Callable[[], Pending[dict[str, Any]]],
    *,
    method: str,
    network: Any,
    lr_separation: int,
    device: str,
    batch_size: int | None,
    progress: bool,
    hr_passthrough: bool = True,
    adapt: AdaptSettings | None = None,
) -> dict[str, Any]:
    """Fuse ``prepared`` into ``writer`` through ``sink``; return the burst's record.

    ``latency()`` starts the burst's latency check (on the host thread, or
    deferred); its result is taken once the burst is fused.
    """
    burst, alignment = prepared.raw, prepared.alignment
    k = burst.index
    bit_depth = int(run.start["hs"].get("bit_depth", 16))
    backward = np.full(prepared.lr.shape[0], np.nan)
    forward = np.full(prepared.lr.shape[0], np.nan)
    stream = fuse_iter(
        prepared.lr,
        prepared.hr,
        alignment.hr_index,
        method,
        model=network,
        lr_separation=lr_separation,
        device=device,
        batch_size=batch_size,
        progress=progress,
        hr_passthrough=hr_passthrough,
        adapt=adapt,
    )
    # Started after fuse_iter's percentiles over the whole burst: the two
    # largest allocations of a burst (~0.4 and ~1 GB at 256 × 250×400) apart.
    check = latency()
    try:
        for t, frame, scores in stream:
            window = scores.window
            backward[t] = scores.backward_attention
            forward[t] = scores.forward_attention
            record = DerivedFrame(
                burst=k,
                uhs_frame=t,
                time_s=float(burst.lr_times_s[t]),
                # A copy in counts (~1 ms for 1000×1600): what waits in the
                # write queue is half the bytes and never the stream's buffer.
                fused=to_counts(frame, bit_depth),
                backward_attention=scores.backward_attention,
                forward_attention=scores.forward_attention,
                hs_before=int(alignment.kept[window.hr_before]),
                hs_after=int(alignment.kept[window.hr_after]),
                hr_at_reference=window.hr_at_reference,
                hr_passed_through=scores.passed_through,
            )
            sink.call(writer.write_frame, record)
    finally:
        stream.close()
    normalized_backward, normalized_forward = normalize_attention(
        backward, forward, alignment.hr_index
    )
    sink.call(writer.write_normalized, k, normalized_backward, normalized_forward)
    return {
        "burst": k,
        **alignment.metadata(),
        "lr_range": stream.params.get("lr_range"),
        "hr_range": stream.params.get("hr_range"),
        "batch_size": stream.params.get("batch_size"),
        "model_id": stream.model_id,
        **({"adaptation": stream.params["adaptation"]} if adapt is not None else {}),
        **check.result(),
    }


def check_shapes(
    run: RawRun, lr_shape: tuple[int, ...], hr_shape: tuple[int, ...], k: int
) -> None:
    """Refuse a burst whose frames do not have the start document's shapes."""
    for name, block, shape in (("UHS", "uhs", lr_shape), ("HS", "hs", hr_shape)):
        expected = tuple(run.start[block]["frame_shape"])
        if tuple(shape) != expected:
            raise RunNotFusableError(
                f"burst {k}: the {name} frames are {shape[0]}×{shape[1]} px but the "
                f"start document says {expected[0]}×{expected[1]}"
            )
