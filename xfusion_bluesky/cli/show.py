"""`xfusion-bluesky show UID`: one fused frame beside its inputs, and the attention.

A PNG like the paper's Figs. 2 and 7: the UHS frame upsampled | the fused frame |
the nearest HS frame, for a frame between two HS frames, above the raw and
normalised attention scores of its burst against time (HS instants marked).
The UHS and HS frames are read from the raw run and cut to the common field
exactly as the fusion cut them; the UHS frame is mapped onto the HS intensity
scale with the fusion's own percentile ranges, so all three share one grey scale.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xfusion_bluesky.cli.fuse import add_tiled_arguments, open_from_args, resolve_fused

DESCRIPTION = """\
Draw one fused frame beside the frames it was made from, as in the paper's
Figs. 2 and 7: the UHS frame upsampled (bicubic) | the fused frame | the nearest
HS frame, above the raw and normalised attention scores of the whole burst
against time (grey lines: HS frames). The UHS and HS frames are read from the
raw run and cut to the field both cameras share, as the fusion cut them, and
all three are shown on the HS camera's intensity scale.
"""

EPILOG = """\
examples:
  xfusion-bluesky show 1a2b3c4d                      # raw or derived uid
  xfusion-bluesky show 1a2b3c4d --frame 40 --out frame40.png

The default frame lies midway between the two HS frames nearest the middle of
the burst: the instant where fusion has the least HS information.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``show`` verb."""
    parser = subparsers.add_parser(
        "show",
        help="draw a fused frame beside its UHS and HS frames, and the attention",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "uid",
        metavar="UID",
        help="derived run uid, or a raw run's (its newest successful fusion)",
    )
    parser.add_argument(
        "--out", metavar="PNG", help="output file (default fused_<uid>.png here)"
    )
    parser.add_argument(
        "--frame",
        type=int,
        metavar="N",
        help="UHS frame in the burst (default: midway between two HS frames)",
    )
    parser.add_argument(
        "--burst", type=int, default=0, help="burst of the run (default 0)"
    )
    add_tiled_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Find the derived run, draw the panel, print its path."""
    from xfusion_bluesky.errors import InvalidInputError
    from xfusion_bluesky.evaluation.panels import frame_panel

    catalogs, uri = open_from_args(args, create=False)
    try:
        fused = resolve_fused(catalogs, args.uid, uri=uri)
        if fused.status != "success":
            raise InvalidInputError(
                f"derived run {fused.uid} is {fused.status}"
                + (f" ({fused.reason})" if fused.reason else "")
                + ": nothing to show"
            )
        burst = load_burst(fused, args.burst)
        frame = burst.default_frame() if args.frame is None else args.frame
        panel = burst.panel(frame)
        out = Path(args.out or f"fused_{fused.uid[:8]}.png")
        frame_panel(
            out,
            panel.images,
            series=burst.series,
            ref_time_us=panel.time_us,
            title=panel.title,
        )
        print(f"wrote {out}: {panel.title}")
    finally:
        catalogs.root.context.close()
    return 0


@dataclass(frozen=True)
class FramePanel:
    """What :meth:`FusedBurst.panel` returns: the images and their caption."""

    images: list[tuple[str, np.ndarray]]
    time_us: float
    title: str


@dataclass(frozen=True)
class FusedBurst:
    """One burst of a derived run with the raw frames it was fused from.

    Attributes
    ----------
    fused : FusedRun
        The derived run.
    index : int
        Burst number.
    rows : ndarray, (T,) int
        The burst's rows in the derived run's streams (frame order).
    lr, hr : ndarray, (T, h, w) and (K, 4h, 4w)
        Raw UHS frames and every raw HS frame, cut to the common field (HS
        flips undone), in camera counts.
    hr_index, hs_used : ndarray, (K',) int
        LR frame of each HS frame the fusion used, and its number in ``hr``.
    lr_times_s, hr_times_s : ndarray
        Raw frame times after the trigger.
    lr_to_hs : (float, float, float, float)
        ``(lr_lo, lr_hi, hs_lo, hs_hi)``: the fusion's normalisation ranges,
        mapping UHS counts onto HS counts.
    registration : FieldRegistration
        The crops (and HS flips) that made ``lr`` and ``hr``.
    series : AttentionSeries
        The burst's attention scores against time.
    raw_start : dict
        The raw run's start document.
    """

    fused: Any
    index: int
    rows: np.ndarray
    lr: np.ndarray
    hr: np.ndarray
    hr_index: np.ndarray
    hs_used: np.ndarray
    lr_times_s: np.ndarray
    hr_times_s: np.ndarray
    lr_to_hs: tuple[float, float, float, float]
    registration: Any
    series: Any
    raw_start: dict[str, Any]

    def default_frame(self) -> int:
        """Return the frame midway between the two HS frames nearest mid-burst."""
        count = self.lr.shape[0]
        index = np.unique(self.hr_index)
        if index.size >= 2:
            middles = (index[:-1] + index[1:]) // 2
            gaps = np.diff(index)
            candidates = middles[gaps > 1] if np.any(gaps > 1) else middles
            return int(candidates[np.argmin(np.abs(candidates - count / 2))])
        # One HS frame: the frame farthest from it.
        return 0 if index[0] >= count / 2 else count - 1

    def uhs_upsampled(self, frame: int) -> np.ndarray:
        """Return UHS ``frame`` bicubically upsampled ×4, in HS counts."""
        import torch

        from xfusion_bluesky.fusion.baselines.bicubic import bicubic_upsample

        lr_lo, lr_hi, hs_lo, hs_hi = self.lr_to_hs
        unit = np.clip((self.lr[frame] - lr_lo) / max(lr_hi - lr_lo, 1e-12), 0, 1)
        up = bicubic_upsample(
            torch.from_numpy(unit.astype(np.float32))[None, None], self.hr.shape[1:]
        )[0, 0].numpy()
        return up * (hs_hi - hs_lo) + hs_lo

    def fused_frame(self, frame: int) -> np.ndarray:
        """Return fused ``frame`` (H, W) uint16, read from the server."""
        return np.asarray(self.fused.frames[int(self.rows[frame])])

    def fused_frames(self) -> np.ndarray:
        """Return the burst's fused frames (T, H, W) uint16, read from the server."""
        # A burst's rows are consecutive (the worker writes bursts in order).
        first, last = int(self.rows[0]), int(self.rows[-1])
        return np.asarray(self.fused.frames[first : last + 1])

    def nearest_hs(self, frame: int) -> tuple[int, int]:
        """Return the HS frame nearest ``frame`` in time: (its number, its LR frame)."""
        i = int(np.argmin(np.abs(self.hr_index - frame)))
        return int(self.hs_used[i]), int(self.hr_index[i])

    def panel(self, frame: int) -> FramePanel:
        """Return UHS upsampled | fused | nearest HS for ``frame``, and a caption.

        Raises
        ------
        InvalidInputError
            ``frame`` is not in the burst.
        """
        from xfusion_bluesky.errors import InvalidInputError

        count = self.lr.shape[0]
        if not 0 <= frame < count:
            raise InvalidInputError(
                f"--frame must be in 0 … {count - 1} (the burst's UHS frames); "
                f"got {frame}"
            )
        hs_number, hs_at = self.nearest_hs(frame)
        method = (self.fused.metadata.get("fusion") or {}).get("method")
        images = [
            (f"UHS frame {frame}, bicubic ×4", self.uhs_upsampled(frame)),
            (f"fused ({method})", self.fused_frame(frame)),
            (
                f"nearest HS frame (#{hs_number}, at UHS frame {hs_at}, "
                f"Δ = {frame - hs_at:+d})",
                self.hr[hs_number],
            ),
        ]
        time_us = float(self.lr_times_s[frame] * 1e6)
        title = (
            f"derived run {self.fused.uid[:8]} of raw run {self.fused.raw_uid[:8]}, "
            f"burst {self.index}, UHS frame {frame} (t = {time_us:.2f} µs)"
        )
        return FramePanel(images, time_us, title)


def load_burst(fused: Any, index: int = 0) -> FusedBurst:
    """Read burst ``index`` of derived run ``fused`` and of its raw run.

    Parameters
    ----------
    fused : FusedRun
        A successful derived run.
    index : int
        Burst number.

    Returns
    -------
    FusedBurst

    Raises
    ------
    InvalidInputError
        No such burst in the derived run.
    RunNotFusableError
        The raw run can no longer be read (see ``open_raw_run``).
    """
    from xfusion_bluesky.catalog.reader import open_raw_run
    from xfusion_bluesky.errors import InvalidInputError
    from xfusion_bluesky.evaluation.panels import AttentionSeries
    from xfusion_bluesky.fusion.alignment import FieldRegistration

    fusion = fused.metadata.get("fusion") or {}
    bursts = {int(b["burst"]): b for b in fusion.get("bursts") or []}
    if index not in bursts:
        raise InvalidInputError(
            f"--burst must be one of {sorted(bursts)} (the fused bursts); got {index}"
        )
    record = bursts[index]
    rows = np.flatnonzero(fused.burst == index)
    raw = open_raw_run(fused.catalogs.raw, fused.raw_uid)
    data = raw.burst(index)
    reg = fusion["registration"]
    registration = FieldRegistration(
        lr_window=_window(reg["lr_window"]),
        hr_window=_window(reg["hr_window"]),
        flip_ud=bool(reg.get("flip_ud", False)),
        flip_lr=bool(reg.get("flip_lr", False)),
    )
    lr, hr = registration.apply(data.lr, data.hr)
    hr_index = np.asarray(record["hr_index"], dtype=np.int64)
    hs_used = np.asarray(record["hs_frames_used"], dtype=np.int64)
    series = AttentionSeries(
        times_us=fused.frame_times_s[rows] * 1e6,
        backward=fused.backward_attention[rows],
        forward=fused.forward_attention[rows],
        normalized_backward=_rows(fused.normalized_backward_attention, rows),
        normalized_forward=_rows(fused.normalized_forward_attention, rows),
        hr_times_us=data.hr_times_s[hs_used] * 1e6,
        label=str(fusion.get("method")),
    )
    return FusedBurst(
        fused=fused,
        index=index,
        rows=rows,
        lr=lr,
        hr=hr,
        hr_index=hr_index,
        hs_used=hs_used,
        lr_times_s=data.lr_times_s,
        hr_times_s=data.hr_times_s,
        lr_to_hs=_intensity_map(record, raw.start),
        registration=registration,
        series=series,
        raw_start=raw.start,
    )


def _window(values: Any) -> tuple[int, int, int, int]:
    """Return a stored ``(y0, x0, height, width)`` window as ints."""
    y0, x0, height, width = (int(v) for v in values)
    return y0, x0, height, width


def _rows(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Return ``values[rows]``, NaN where the stream is shorter (still written)."""
    out = np.full(rows.size, np.nan)
    inside = rows < values.size
    out[inside] = values[rows[inside]]
    return out


def _intensity_map(
    record: dict[str, Any], raw_start: dict[str, Any]
) -> tuple[float, float, float, float]:
    """Return (lr_lo, lr_hi, hs_lo, hs_hi): the fusion's ranges, else full scales."""
    lr_range, hr_range = record.get("lr_range"), record.get("hr_range")
    if lr_range and hr_range:
        lr_lo, lr_hi = (float(v) for v in lr_range)
        hs_lo, hs_hi = (float(v) for v in hr_range)
        return lr_lo, lr_hi, hs_lo, hs_hi
    lr_bits = int(raw_start["lr"].get("bit_depth", 16))
    hr_bits = int(raw_start["hr"].get("bit_depth", 16))
    return 0.0, float(2**lr_bits - 1), 0.0, float(2**hr_bits - 1)
