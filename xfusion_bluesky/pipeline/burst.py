"""Fuse one burst of a raw run into the derived run being written.

The HS frame times are shifted by the registration's latency before each HR
frame gets its LR instant; the frames are put on the common field (a crop, or
one warp onto the fused grid) and fused frame by frame into the writer; the
burst's own frames then check the latency (:mod:`~xfusion_bluesky.pipeline.timing`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xfusion_bluesky.catalog.derived import DerivedFrame, DerivedRunWriter, to_counts
from xfusion_bluesky.catalog.reader import RawBurst, RawRun
from xfusion_bluesky.errors import RunNotFusableError
from xfusion_bluesky.fusion import fuse_iter, normalize_attention
from xfusion_bluesky.fusion.adaptation import AdaptSettings
from xfusion_bluesky.fusion.alignment import align_hr_times
from xfusion_bluesky.fusion.field import FieldRegistration
from xfusion_bluesky.pipeline.timing import latency_check, shifted_hr_times

__all__ = ["check_shapes", "fuse_burst", "lr_period_s"]


def lr_period_s(run: RawRun, lr_times_s: Any = None) -> float | None:
    """Return the UHS frame period: the start document's, else the median spacing."""
    period = float(run.start["uhs"].get("frame_period_s") or 0)
    if period > 0:
        return period
    if lr_times_s is not None and len(lr_times_s) > 1:
        return float(np.median(np.diff(np.asarray(lr_times_s, dtype=np.float64))))
    return None


def fuse_burst(
    writer: DerivedRunWriter,
    run: RawRun,
    burst: RawBurst,
    registration: FieldRegistration,
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
    """Fuse ``burst`` into ``writer``; return what the derived run records of it."""
    k = burst.index
    latency = run.hs_latency_s
    period = lr_period_s(run)
    alignment = align_hr_times(
        burst.lr_times_s, shifted_hr_times(burst.hr_times_s, latency), period
    )
    # Only the HS frames used: a warp resamples each one.
    lr, hr = registration.apply(burst.lr, burst.hr[alignment.kept])
    bit_depth = int(run.start["hs"].get("bit_depth", 16))
    backward = np.full(lr.shape[0], np.nan)
    forward = np.full(lr.shape[0], np.nan)
    stream = fuse_iter(
        lr,
        hr,
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
    try:
        for t, frame, scores in stream:
            window = scores.window
            backward[t] = scores.backward_attention
            forward[t] = scores.forward_attention
            writer.write_frame(
                DerivedFrame(
                    burst=k,
                    uhs_frame=t,
                    time_s=float(burst.lr_times_s[t]),
                    fused=to_counts(frame, bit_depth),
                    backward_attention=scores.backward_attention,
                    forward_attention=scores.forward_attention,
                    hs_before=int(alignment.kept[window.hr_before]),
                    hs_after=int(alignment.kept[window.hr_after]),
                    hr_at_reference=window.hr_at_reference,
                    hr_passed_through=scores.passed_through,
                )
            )
    finally:
        stream.close()
    normalized_backward, normalized_forward = normalize_attention(
        backward, forward, alignment.hr_index
    )
    writer.write_normalized(k, normalized_backward, normalized_forward)
    similarity = registration.similarity or run.similarity
    check = latency_check(
        burst.lr,
        burst.lr_times_s,
        burst.hr,
        burst.hr_times_s,
        similarity,
        applied_s=latency,
        lr_period_s=lr_period_s(run, burst.lr_times_s) or 1.0,
    )
    return {
        "burst": k,
        **alignment.metadata(),
        "lr_range": stream.params.get("lr_range"),
        "hr_range": stream.params.get("hr_range"),
        "batch_size": stream.params.get("batch_size"),
        "model_id": stream.model_id,
        **({"adaptation": stream.params["adaptation"]} if adapt is not None else {}),
        **check,
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
