"""One burst of a derived run beside the raw frames it was fused from, for display.

:func:`load_burst` reads a burst's fused frames and attention scores from the
derived run and its UHS and HS frames from the raw run, on the common field
exactly as the fusion put them there (cropped, HS flips undone, or HS frames
warped onto the fused grid in one step). :class:`FusedBurst` then gives
what a figure or a score needs: the UHS frame upsampled onto the HS intensity
scale with the fusion's own percentile ranges, the nearest HS frame, the
attention scores against time and, for a simulated run, the ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from xfusion_bluesky.catalog.queries import FusedRun
from xfusion_bluesky.catalog.reader import open_raw_run
from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.stored_format import registration_v1
from xfusion_bluesky.structures import AttentionSeries

if TYPE_CHECKING:  # fusion imports torch: only the methods that compute need it
    from xfusion_bluesky.fusion.field import FieldRegistration

__all__ = ["FramePanel", "FusedBurst", "load_burst", "panel_labels"]


def panel_labels(frame: int, method: str, hs_number: int, hs_at: int) -> list[str]:
    """Return the three frame titles of a panel: UHS upsampled, fused, nearest HS.

    Two short lines each: one line of the nearest HS frame's numbers ran past a
    third of the figure and was cut off at its edge.

    Parameters
    ----------
    frame : int
        The UHS frame shown.
    method : str
        The fusion method.
    hs_number, hs_at : int
        The nearest HS frame's number and the UHS frame it was taken at.
    """
    return [
        f"UHS frame {frame}\nbicubic ×4",
        f"fused\n{method}",
        f"nearest HS frame #{hs_number}\nat UHS frame {hs_at}, Δ = {frame - hs_at:+d}",
    ]


@dataclass(frozen=True)
class FramePanel:
    """What :meth:`FusedBurst.panel` returns: the images and their caption.

    Attributes
    ----------
    images : list of (str, ndarray)
        Label and (H, W) image: UHS upsampled, fused, nearest HS, in HS counts.
    time_us : float
        The frame's time after the trigger, µs.
    title : str
        Which run, burst and frame.
    """

    images: list[tuple[str, NDArray[Any]]]
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
        Raw UHS frames and every raw HS frame on the common field (cropped, HS
        flips undone; or, for a resampled field, HS frames warped onto its fused
        grid, float32), in camera counts.
    hr_index, hs_used : ndarray, (K',) int
        UHS frame of each HS frame the fusion used, and its number in ``hr``.
    lr_times_s, hr_times_s : ndarray
        Frame times after the trigger: the UHS's as recorded, the HS's on the
        UHS timeline (recorded + the latency the fusion applied).
    lr_to_hs : (float, float, float, float)
        ``(lr_lo, lr_hi, hs_lo, hs_hi)``: the fusion's normalisation ranges,
        mapping UHS counts onto HS counts.
    registration : FieldRegistration
        The crops, flips or warp that made ``lr`` and ``hr``.
    series : AttentionSeries
        The burst's attention scores against time.
    raw_start : dict
        The raw run's start document (v1 names).
    """

    fused: FusedRun
    index: int
    rows: NDArray[np.int64]
    lr: NDArray[Any]
    hr: NDArray[Any]
    hr_index: NDArray[np.int64]
    hs_used: NDArray[np.int64]
    lr_times_s: NDArray[np.float64]
    hr_times_s: NDArray[np.float64]
    lr_to_hs: tuple[float, float, float, float]
    registration: FieldRegistration
    series: AttentionSeries
    raw_start: dict[str, Any]

    @property
    def full_scale(self) -> float:
        """The HS camera's largest count (``2**bit_depth - 1``)."""
        return float(2 ** int(self.raw_start["hs"].get("bit_depth", 16)) - 1)

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

    def uhs_upsampled(self, frame: int) -> NDArray[np.float32]:
        """Return UHS ``frame`` bicubically upsampled ×4, in HS counts."""
        import torch

        from xfusion_bluesky.fusion.baselines.bicubic import bicubic_upsample

        lr_lo, lr_hi, hs_lo, hs_hi = self.lr_to_hs
        unit = np.clip((self.lr[frame] - lr_lo) / max(lr_hi - lr_lo, 1e-12), 0, 1)
        up = bicubic_upsample(
            torch.from_numpy(unit.astype(np.float32))[None, None],
            tuple(self.hr.shape[1:]),
        )[0, 0].numpy()
        return np.asarray(up * (hs_hi - hs_lo) + hs_lo, dtype=np.float32)

    def fused_frame(self, frame: int) -> NDArray[Any]:
        """Return fused ``frame`` (H, W) uint16, read from the server."""
        return np.asarray(self.fused.frames[int(self.rows[frame])])

    def fused_frames(self) -> NDArray[Any]:
        """Return the burst's fused frames (T, H, W) uint16, read from the server."""
        # A burst's rows are consecutive (the worker writes bursts in order).
        first, last = int(self.rows[0]), int(self.rows[-1])
        return np.asarray(self.fused.frames[first : last + 1])

    def nearest_hs(self, frame: int) -> tuple[int, int]:
        """Return the HS frame nearest ``frame``: (its number, its UHS frame)."""
        i = int(np.argmin(np.abs(self.hr_index - frame)))
        return int(self.hs_used[i]), int(self.hr_index[i])

    def panel(self, frame: int) -> FramePanel:
        """Return UHS upsampled | fused | nearest HS for ``frame``, and a caption.

        Raises
        ------
        InvalidInputError
            ``frame`` is not in the burst.
        """
        count = self.lr.shape[0]
        if not 0 <= frame < count:
            raise InvalidInputError(
                f"frame must be in 0 … {count - 1} (the burst's UHS frames); "
                f"got {frame}"
            )
        hs_number, hs_at = self.nearest_hs(frame)
        labels = panel_labels(frame, self.fused.method, hs_number, hs_at)
        images = list(
            zip(
                labels,
                (
                    self.uhs_upsampled(frame),
                    self.fused_frame(frame),
                    self.hr[hs_number],
                ),
                strict=True,
            )
        )
        time_us = float(self.lr_times_s[frame] * 1e6)
        title = (
            f"derived run {self.fused.uid[:8]} of raw run {self.fused.raw_uid[:8]}, "
            f"burst {self.index}, UHS frame {frame} (t = {time_us:.2f} µs)"
        )
        return FramePanel(images, time_us, title)

    def ground_truth(self) -> NDArray[np.float32]:
        """Render what the HS camera would have seen at every UHS instant, noise-free.

        Returns
        -------
        ndarray, (T, H, W) float32
            In HS counts, on the fused field: the simulated event on the fused
            grid cut to ``grid_window`` for a resampled field; for a cropped one
            the HS view cut as the fusion cut it (the same pixels, since then the
            HS pixels are grid pixels).

        Raises
        ------
        InvalidInputError
            The raw run was not simulated.
        """
        from xfusion_bluesky.devices.sim.truth import (
            burst_seed_key,
            field_truth,
            ground_truth,
        )

        key = burst_seed_key(self.raw_start)
        seed = int(self.fused.raw["primary"][key].read()[self.index])
        if self.registration.resampled:
            field = field_truth(
                self.raw_start,
                self.lr_times_s,
                burst_seed=seed,
                grid_window=self.registration.grid_window,
            )
            return np.ascontiguousarray(field, dtype=np.float32)
        seen = ground_truth(self.raw_start, self.lr_times_s, burst_seed=seed)
        _, truth = self.registration.apply(self.lr, seen)
        return np.ascontiguousarray(truth, dtype=np.float32)

    def save_inputs(self, folder: str | Path) -> dict[str, Path]:
        """Save the burst as fusion saw it, as ``.npy`` files a recording would be.

        Parameters
        ----------
        folder : path
            Created if missing; files in it are replaced.

        Returns
        -------
        dict of str to Path
            ``lr`` (T, h, w), ``hr`` (K', 4h, 4w: the HS frames used),
            ``hr_index`` (K',) and, for a simulated run, ``truth`` (T, 4h, 4w).
        """
        arrays = {
            "lr": self.lr,
            "hr": self.hr[self.hs_used],
            "hr_index": self.hr_index,
        }
        if self.raw_start.get("sim"):
            arrays["truth"] = self.ground_truth()
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name, array in arrays.items():
            paths[name] = out / f"{name}.npy"
            np.save(paths[name], np.asarray(array))
        return paths


def load_burst(fused: FusedRun, index: int = 0) -> FusedBurst:
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
        ``fused`` did not succeed, or has no burst ``index``.
    RunNotFusableError
        The raw run can no longer be read (see ``open_raw_run``).
    """
    if fused.status != "success":
        raise InvalidInputError(
            f"derived run {fused.uid} is {fused.status}"
            + (f" ({fused.reason})" if fused.reason else "")
            + ": it has no fused burst to read"
        )
    bursts = {int(b["burst"]): b for b in fused.outcome.get("bursts") or []}
    if index not in bursts:
        raise InvalidInputError(
            f"burst must be one of {sorted(bursts)} (the fused bursts); got {index}"
        )
    record = bursts[index]
    rows = np.flatnonzero(fused.burst == index)
    raw = open_raw_run(fused.catalogs.raw, fused.raw_uid)
    data = raw.burst(index)
    registration = _registration(fused.fusion["registration"], raw.start)
    lr, hr = registration.apply(data.lr, data.hr)
    hr_times_s = data.hr_times_s + _applied_latency(fused.fusion)
    hs_used = np.asarray(record["hs_frames_used"], dtype=np.int64)
    series = AttentionSeries(
        times_us=fused.frame_times_s[rows] * 1e6,
        backward=fused.backward_attention[rows],
        forward=fused.forward_attention[rows],
        normalized_backward=_rows(fused.normalized_backward_attention, rows),
        normalized_forward=_rows(fused.normalized_forward_attention, rows),
        hr_times_us=hr_times_s[hs_used] * 1e6,
        label=str(fused.fusion.get("method")),
    )
    return FusedBurst(
        fused=fused,
        index=index,
        rows=rows,
        lr=lr,
        hr=hr,
        hr_index=np.asarray(record["hr_index"], dtype=np.int64),
        hs_used=hs_used,
        lr_times_s=data.lr_times_s,
        hr_times_s=hr_times_s,
        lr_to_hs=_intensity_map(record, raw.start),
        registration=registration,
        series=series,
        raw_start=raw.start,
    )


def _registration(
    record: dict[str, Any], raw_start: dict[str, Any]
) -> FieldRegistration:
    """Return the stored common field (crop or warp, any format), as fused."""
    from xfusion_bluesky.fusion.field import FieldRegistration

    height, width = (int(v) for v in raw_start["hs"]["frame_shape"])
    return FieldRegistration.from_metadata(registration_v1(record), (height, width))


def _applied_latency(fusion: dict[str, Any]) -> float:
    """Return the HS latency the fusion applied (0 before format 3)."""
    return float((fusion.get("timing") or {}).get("hs_latency_s") or 0.0)


def _rows(values: NDArray[Any], rows: NDArray[np.int64]) -> NDArray[np.float64]:
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
    uhs_bits = int(raw_start["uhs"].get("bit_depth", 16))
    hs_bits = int(raw_start["hs"].get("bit_depth", 16))
    return 0.0, float(2**uhs_bits - 1), 0.0, float(2**hs_bits - 1)
