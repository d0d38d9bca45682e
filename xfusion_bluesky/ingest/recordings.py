"""Check a pair of recordings made before, and place both on one time axis.

:func:`check_pair` opens the UHS and HS files, takes each camera's frame times
from its file's header where it has them (from the rate given otherwise), and
refuses every mistake it can see before anything is converted or written:
files that do not open, frames that are not 2-D images, an HS frame no bigger
than the UHS one, rates that the headers contradict or that nobody gave, and
HS frames that all fall outside the UHS burst. The times of the run are the
UHS file's own; the HS file's are shifted by ``hs_delay_s``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xfusion_bluesky.errors import InvalidInputError, RecordingError

__all__ = ["RATE_TOLERANCE", "CameraTrack", "RecordingPair", "check_pair"]

#: Largest relative difference between a rate given and the one a header says.
RATE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class CameraTrack:
    """One camera's recording as the run stores it.

    Attributes
    ----------
    role : str
        ``"uhs"`` or ``"hs"``.
    recording : Recording
        The opened file (:func:`~xfusion_bluesky.devices.files.formats.open_recording`).
    frame_times_s : ndarray, (n,) float64
        Every frame's start on the run's time axis (the UHS file's), seconds.
    frame_rate_hz : float
        The frame rate (from the header, else given).
    times_from : str
        ``"header"`` (frame times or rate in the file) or ``"options"``.
    first, stop : int
        The frames of the file the run stores: ``first … stop - 1``.
    """

    role: str
    recording: Any
    frame_times_s: NDArray[np.float64]
    frame_rate_hz: float
    times_from: str
    first: int = 0
    stop: int = 0

    @property
    def frame_shape(self) -> tuple[int, int]:
        """``(height, width)`` of a frame."""
        height, width = (int(v) for v in self.recording.frame_shape)
        return height, width

    @property
    def stored_times_s(self) -> NDArray[np.float64]:
        """The times of the frames the run stores."""
        return self.frame_times_s[self.first : self.stop]


@dataclass(frozen=True)
class RecordingPair:
    """A checked UHS + HS pair: what one burst of an ingested run holds."""

    uhs: CameraTrack
    hs: CameraTrack
    hs_delay_s: float


def check_pair(
    uhs_path: str | Path,
    hs_path: str | Path,
    *,
    uhs_rate_hz: float | None = None,
    hs_rate_hz: float | None = None,
    hs_delay_s: float = 0.0,
    uhs_dataset: str | None = None,
    hs_dataset: str | None = None,
) -> RecordingPair:
    """Open and check a UHS + HS recording pair; nothing is written.

    Parameters
    ----------
    uhs_path, hs_path : str or Path
        The recordings: multi-page TIFF, HDF5 or Phantom ``.cine``.
    uhs_rate_hz, hs_rate_hz : float, optional
        Frame rates, for files whose header has none; where it has one they
        must agree with it (within :data:`RATE_TOLERANCE`).
    hs_delay_s : float
        Where the HS file's time 0 lies on the UHS file's time axis, seconds
        (the HS trigger's delay after the UHS's). The HS frame times are the
        file's (or ``i / hs_rate_hz``) plus this.
    uhs_dataset, hs_dataset : str, optional
        Dataset of the frames in an HDF5 file (default: found by the reader).

    Returns
    -------
    RecordingPair
        Every UHS frame; the HS frames from the first to the last one that
        falls within the UHS burst.

    Raises
    ------
    RecordingError
        A file does not open, is truncated or holds no frames.
    InvalidInputError
        Frames that are not 2-D, an HS frame no bigger than the UHS frame, a
        missing or contradicted rate, fewer than 2 UHS frames, an HS faster
        than the UHS, or no HS frame within the UHS burst.
    """
    from xfusion_bluesky.devices.files.formats import open_recording

    delay = _finite(hs_delay_s, "--hs-delay")
    uhs_rec = open_recording(uhs_path, dataset=uhs_dataset)
    hs_rec = open_recording(hs_path, dataset=hs_dataset)
    for role, rec in (("uhs", uhs_rec), ("hs", hs_rec)):
        _check_frames(role, rec)
    uhs_shape = tuple(int(v) for v in uhs_rec.frame_shape)
    hs_shape = tuple(int(v) for v in hs_rec.frame_shape)
    if hs_shape[0] <= uhs_shape[0] and hs_shape[1] <= uhs_shape[1]:
        raise InvalidInputError(
            f"the HS frames of {hs_rec.path} ({hs_shape[0]}×{hs_shape[1]} px) are no "
            f"bigger than the UHS frames of {uhs_rec.path} ({uhs_shape[0]}×"
            f"{uhs_shape[1]} px): the HS images part of the UHS field about 4× finer, "
            "so its frames have more pixels; are --uhs and --hs swapped?"
        )
    if int(uhs_rec.num_frames) < 2:
        raise InvalidInputError(
            f"the UHS recording {uhs_rec.path} holds {uhs_rec.num_frames} frame(s); "
            "fusion needs a burst of at least 2"
        )
    uhs_times, uhs_rate, uhs_from = _frame_times("uhs", uhs_rec, uhs_rate_hz)
    hs_times, hs_rate, hs_from = _frame_times("hs", hs_rec, hs_rate_hz)
    if hs_rate > uhs_rate * (1 + RATE_TOLERANCE):
        raise InvalidInputError(
            f"the HS records faster ({hs_rate:.6g} Hz) than the UHS "
            f"({uhs_rate:.6g} Hz): the UHS is the fast camera of the pair; are "
            "--uhs and --hs (or their rates) swapped?"
        )
    hs_times = hs_times + delay
    first, stop = _hs_in_window(uhs_times, uhs_rate, hs_times, hs_rec.path, delay)
    return RecordingPair(
        uhs=CameraTrack(
            "uhs", uhs_rec, uhs_times, uhs_rate, uhs_from, 0, int(uhs_rec.num_frames)
        ),
        hs=CameraTrack("hs", hs_rec, hs_times, hs_rate, hs_from, first, stop),
        hs_delay_s=delay,
    )


def _finite(value: Any, option: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise InvalidInputError(f"{option} must be a finite number; got {value!r}")
    return number


def _check_frames(role: str, rec: Any) -> None:
    name = role.upper()
    shape = tuple(rec.frame_shape)
    if len(shape) != 2 or min(int(v) for v in shape) < 1:
        raise InvalidInputError(
            f"the {name} recording {rec.path} holds frames of shape {shape}, not 2-D "
            "grey-level images: export it as one image per frame"
        )
    if int(rec.num_frames) < 1:
        raise RecordingError(f"the {name} recording {rec.path} holds no frames")
    if np.dtype(rec.dtype).kind not in "iuf":
        raise InvalidInputError(
            f"the {name} recording {rec.path} holds {np.dtype(rec.dtype)} pixels, not "
            "numbers: export grey-level counts"
        )


def _frame_times(
    role: str, rec: Any, rate_hz: float | None
) -> tuple[NDArray[np.float64], float, str]:
    """Return (times, rate, where from) of one recording; refuse contradictions."""
    name, option = role.upper(), f"--{role}-rate"
    count = int(rec.num_frames)
    given = None
    if rate_hz is not None:
        given = _finite(rate_hz, option)
        if given <= 0:
            raise InvalidInputError(f"{option} must be > 0 Hz; got {rate_hz!r}")
    header_times = rec.frame_times_s
    header_rate = rec.frame_rate_hz
    if header_times is not None:
        times = np.asarray(header_times, dtype=np.float64).ravel()
        if times.size != count:
            raise RecordingError(
                f"the {name} recording {rec.path} lists {times.size} frame times for "
                f"{count} frames: the file is inconsistent (cut short?)"
            )
        if not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
            raise RecordingError(
                f"the {name} recording {rec.path} has frame times that are not "
                "finite and increasing"
            )
        if count >= 2:
            header_rate = 1.0 / float(np.median(np.diff(times)))
    rate = given if header_rate is None else float(header_rate)
    if rate is None:
        raise InvalidInputError(
            f"the {name} recording {rec.path} has no frame times or rate in its "
            f"header: give {option} HZ"
        )
    if given is not None and abs(given - rate) > RATE_TOLERANCE * rate:
        what = "frame times" if header_times is not None else "header"
        raise InvalidInputError(
            f"{option} {given:.6g} Hz does not match the {what} of {rec.path} "
            f"({rate:.6g} Hz, {count} frames): drop {option} to use the file's, "
            "or check the file is the one you meant"
        )
    if header_times is None:
        times = np.arange(count, dtype=np.float64) / rate
    from_header = header_times is not None or header_rate is not None
    source = "header" if from_header else "options"
    return times, float(rate), source


def _hs_in_window(
    uhs_times: NDArray[np.float64],
    uhs_rate: float,
    hs_times: NDArray[np.float64],
    hs_path: Any,
    delay: float,
) -> tuple[int, int]:
    """Return the HS frames ``first … stop - 1`` within the UHS burst; refuse none.

    An HS frame within half a UHS period of the burst's first or last frame
    counts, as the fusion's time alignment counts it.
    """
    half = 0.5 / uhs_rate
    low, high = uhs_times[0] - half, uhs_times[-1] + half
    inside = np.flatnonzero((hs_times >= low) & (hs_times <= high))
    if inside.size == 0:
        raise InvalidInputError(
            f"none of the {hs_times.size} HS frames of {hs_path} "
            f"({hs_times[0]:.6g} … {hs_times[-1]:.6g} s with --hs-delay {delay:g} s) "
            f"falls within the UHS burst ({uhs_times[0]:.6g} … {uhs_times[-1]:.6g} "
            "s): set --hs-delay to the HS trigger's delay after the UHS's, and "
            "check the rates"
        )
    return int(inside[0]), int(inside[-1]) + 1
