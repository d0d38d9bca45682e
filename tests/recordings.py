"""Sample recordings for tests: multi-page TIFF, HDF5 and Phantom .cine files.

Test files import it as ``from recordings import ...`` (``tests/`` is on
``sys.path``, as for ``servers``). The writers make files the way vendor software
exports them, with the frame times or rate in the headers that
:func:`xfusion_bluesky.devices.files.formats.open_recording` reads:

- TIFF: tifffile's JSON description (``frame_times_s``, ``frame_rate_hz``) or, with
  ``imagej=True``, an ImageJ hyperstack with ``finterval``;
- HDF5: areaDetector's NDFileHDF5 layout with ``NDAttributes/FrameTime``;
- .cine: a minimal uncompressed monochrome Phantom file with per-frame timestamps
  (tagged block 1002) that ``pims.Cine`` reads back. This writer exists for tests
  only; the library reads .cine through pims and never parses it itself.

:class:`FakeVendor` plays the vendor software of a camera without an EPICS driver:
it writes a burst file into a watched directory on each timing pulse, on time,
late, truncated or never.
"""

from __future__ import annotations

import struct
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import tifffile

__all__ = [
    "VENDOR_MODES",
    "FakeVendor",
    "truncate_file",
    "write_cine",
    "write_hdf5",
    "write_tiff",
]

# -- TIFF ------------------------------------------------------------------------


def write_tiff(
    path: str | Path,
    frames: np.ndarray,
    *,
    frame_times_s: Sequence[float] | np.ndarray | None = None,
    frame_rate_hz: float | None = None,
    imagej: bool = False,
) -> Path:
    """Write ``frames`` (n, h, w) as one multi-page TIFF, one page per frame.

    Parameters
    ----------
    path : str or Path
        File to create.
    frames : ndarray, (n, h, w)
        uint8 or uint16 frames.
    frame_times_s : array-like, optional
        Frame start times after the trigger, stored in the JSON description.
    frame_rate_hz : float, optional
        Frame rate, stored in the JSON description (ImageJ: as ``finterval``).
    imagej : bool
        Write an ImageJ hyperstack (``axes="TYX"``, ``finterval`` = 1/rate) the
        way Fiji and several vendor exporters do; frame times are not stored then.

    Returns
    -------
    Path
        The file written.
    """
    path = Path(path)
    frames = np.asarray(frames)
    if imagej:
        metadata: dict[str, Any] = {"axes": "TYX"}
        if frame_rate_hz is not None:
            metadata["finterval"] = 1.0 / float(frame_rate_hz)
        tifffile.imwrite(path, frames, imagej=True, metadata=metadata)
        return path
    metadata = {}
    if frame_times_s is not None:
        metadata["frame_times_s"] = [float(t) for t in frame_times_s]
    if frame_rate_hz is not None:
        metadata["frame_rate_hz"] = float(frame_rate_hz)
    tifffile.imwrite(path, frames, photometric="minisblack", metadata=metadata)
    return path


# -- HDF5 ------------------------------------------------------------------------


def write_hdf5(
    path: str | Path,
    frames: np.ndarray,
    *,
    frame_times_s: Sequence[float] | np.ndarray | None = None,
    dataset: str | None = None,
    trigger_time: float = 0.0,
) -> Path:
    """Write ``frames`` (n, h, w) to an HDF5 file.

    Parameters
    ----------
    path : str or Path
        File to create.
    frames : ndarray, (n, h, w)
        The frames (uint16 for the areaDetector layout).
    frame_times_s : array-like, optional
        Frame times after the trigger; with ``dataset=None`` the file is written
        in areaDetector's layout by the cameras' own writer, times in
        ``/entry/instrument/NDAttributes/FrameTime``.
    dataset : str, optional
        Put the frames at this path instead, plain, without NDAttributes (a
        recording from some other software).
    trigger_time : float
        POSIX time of the trigger (areaDetector layout only).

    Returns
    -------
    Path
        The file written.
    """
    path = Path(path)
    frames = np.asarray(frames)
    if dataset is None and frame_times_s is not None:
        from xfusion_bluesky.devices.hdf5 import NDFileHDF5Writer

        writer = NDFileHDF5Writer(path, frames.shape[1:])
        try:
            writer.write(
                0,
                frames,
                trigger_time=trigger_time,
                frame_times_s=np.asarray(frame_times_s, dtype=np.float64),
            )
        finally:
            writer.close()
        return path
    with h5py.File(path, "w") as f:
        f.create_dataset(dataset or "/entry/data/data", data=frames)
    return path


# -- Phantom .cine ---------------------------------------------------------------

# Layouts as pims.cine reads them ('<', no padding). Only the fields given a value
# below are meaningful; the rest of the setup block is zeros.
_CINE_HEADER = "<2sHHHiIiIIIIQ"  # 44 bytes
_CINE_BITMAPINFO = "<IiiHHIIiiII"  # 40 bytes
_TAG_IMAGE_TIME_ONLY = 1002
_TAG_EXPOSURE_ONLY = 1003
#: pims drops setup fields newer than the writing software; 702 keeps them all.
_CINE_SOFTWARE_VERSION = 702


def _time64(seconds: float) -> int:
    """Return a cine TIME64: whole seconds in the high 32 bits, 2⁻³² s below."""
    whole = int(np.floor(seconds))
    fraction = round((seconds - whole) * 2**32)
    if fraction >= 2**32:
        whole, fraction = whole + 1, fraction - 2**32
    return (whole << 32) | fraction


def _cine_setup(values: dict[str, Any]) -> bytes:
    from pims.cine import SETUP_FIELDS

    parts = []
    for name, fmt in SETUP_FIELDS:
        packer = struct.Struct("<" + fmt)
        if name in values:
            value = values[name]
            args = value if isinstance(value, tuple) else (value,)
        else:
            # One zero per item: '4i' needs four, '121s' one empty bytes.
            args = tuple(b"" if code == "s" else 0 for code in _struct_codes(fmt))
        parts.append(packer.pack(*args))
    return b"".join(parts)


def _cine_setup_size() -> int:
    from pims.cine import SETUP_FIELDS

    return struct.calcsize("<" + "".join(fmt for _, fmt in SETUP_FIELDS))


def _struct_codes(fmt: str) -> list[str]:
    """Expand a struct format ('4i', '121s', '2f') into one code per packed item."""
    codes, count = [], ""
    for char in fmt:
        if char.isdigit():
            count += char
            continue
        if char == "s":
            codes.append("s")
        else:
            codes.extend(char * int(count or 1))
        count = ""
    return codes


def write_cine(
    path: str | Path,
    frames: np.ndarray,
    *,
    frame_rate_hz: float,
    frame_times_s: Sequence[float] | np.ndarray | None = None,
    trigger_time: float | None = None,
    exposure_s: float | None = None,
    bit_depth: int = 12,
) -> Path:
    """Write a minimal Phantom .cine file (uncompressed, monochrome) for tests.

    Parameters
    ----------
    path : str or Path
        File to create.
    frames : ndarray, (n, h, w)
        uint16 (or uint8) frames, row 0 at the top.
    frame_rate_hz : float
        The recording's frame rate (stored as whole hertz, as Phantom does).
    frame_times_s : array-like, optional
        Frame times after the trigger (default ``i / frame_rate_hz``), stored as
        per-frame timestamps (2⁻³² s resolution).
    trigger_time : float, optional
        POSIX time of the trigger (default now, whole seconds).
    exposure_s : float, optional
        Exposure per frame (default half a period).
    bit_depth : int
        Bits the sensor really uses (``real_bpp``).

    Returns
    -------
    Path
        The file written; ``pims.Cine(path)`` reads it back.
    """
    path = Path(path)
    frames = np.ascontiguousarray(frames)
    if frames.ndim != 3 or frames.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"frames must be uint8/uint16 (n, h, w); got {frames.dtype}")
    count, height, width = frames.shape
    bytes_per_px = frames.dtype.itemsize
    if frame_times_s is None:
        frame_times_s = np.arange(count) / float(frame_rate_hz)
    times = np.asarray(frame_times_s, dtype=np.float64)
    if trigger_time is None:
        trigger_time = float(int(time.time()))
    exposure = 0.5 / frame_rate_hz if exposure_s is None else exposure_s

    setup = _cine_setup(
        {
            "frame_rate_16": min(round(frame_rate_hz), 65535),
            "length": _cine_setup_size(),
            "im_width": width,
            "im_height": height,
            "software_version": _CINE_SOFTWARE_VERSION,
            "frame_rate": round(frame_rate_hz),
            "shutter_ns": round(exposure * 1e9),
            "real_bpp": int(bit_depth),
            "description": b"xfusion-bluesky test recording",
        }
    )
    # Frame stamps are trigger + t_i; add in TIME64 units so sub-ns times survive.
    trigger64 = _time64(trigger_time)
    stamps = [trigger64 + round(t * 2**32) for t in times]
    exposures = [round(exposure * 2**32)] * count
    tag_time = struct.pack(
        f"<IHH{count}Q", 8 + 8 * count, _TAG_IMAGE_TIME_ONLY, 1, *stamps
    )
    tag_exposure = struct.pack(
        f"<IHH{count}I", 8 + 4 * count, _TAG_EXPOSURE_ONLY, 0, *exposures
    )

    off_image_header = struct.calcsize(_CINE_HEADER)
    off_setup = off_image_header + struct.calcsize(_CINE_BITMAPINFO)
    off_image_offsets = off_setup + len(setup) + len(tag_time) + len(tag_exposure)
    image_size = width * height * bytes_per_px
    first_image = off_image_offsets + 8 * count
    locations = [first_image + i * (8 + image_size) for i in range(count)]
    header = struct.pack(
        _CINE_HEADER,
        b"CI",
        off_image_header,
        0,  # uncompressed
        1,
        0,
        count,
        0,
        count,
        off_image_header,
        off_setup,
        off_image_offsets,
        trigger64,
    )
    bitmap = struct.pack(
        _CINE_BITMAPINFO, 40, width, height, 1, 8 * bytes_per_px, 0, image_size,
        0, 0, 0, 0,
    )  # fmt: skip
    with open(path, "wb") as f:
        f.write(header + bitmap + setup + tag_time + tag_exposure)
        f.write(struct.pack(f"<{count}Q", *locations))
        for frame in frames:
            # Phantom stores rows bottom-up; an 8-byte annotation precedes each.
            f.write(struct.pack("<II", 8, image_size))
            f.write(
                np.ascontiguousarray(frame[::-1]).astype(f"<u{bytes_per_px}").tobytes()
            )
    return path


def truncate_file(path: str | Path, keep_fraction: float = 0.5) -> Path:
    """Cut ``path`` to ``keep_fraction`` of its size: a recording cut short."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(int(size * keep_fraction))
    return path


# -- a fake vendor process ---------------------------------------------------------

#: How :class:`FakeVendor` answers a pulse.
VENDOR_MODES = ("on_time", "late", "partial", "never")


class FakeVendor:
    """The vendor software of a camera without an EPICS driver, for tests.

    Cabled to a sim timing generator, it images the simulated event on each pulse
    (``pulse.event.uhs_burst``, as a UHS would) and saves the burst into
    ``watch_dir`` as the vendor software would: the bytes arrive in a few writes,
    ``chunk_pause_s`` apart, under the final name.

    Parameters
    ----------
    timing : SimTimingGenerator
        Its pulses start the bursts (re-armed after each, as vendor software in a
        sequence mode is).
    watch_dir : str or Path
        Where the files go.
    fmt : str
        ``"tiff"``, ``"hdf5"`` or ``"cine"``.
    num_images, frame_rate_hz, frame_shape :
        The burst as the vendor software is set (may differ from the device's).
    delay_s : float
        The camera's timing-channel delay: burst ``k`` images the event from
        ``delay_s`` after T0 (the file's times count from the camera's trigger).
    modes : sequence of str
        One of :data:`VENDOR_MODES` per pulse (the last one repeats): ``on_time``;
        ``late`` (written ``late_s`` after the pulse); ``partial`` (only half
        the bytes, then stops); ``never`` (nothing).
    late_s : float
        The delay of a ``late`` burst.
    store_times : bool
        Put the frame times in the file's header (else only the rate, or nothing).

    Attributes
    ----------
    written : list of dict
        Per burst: ``path``, ``frames`` (uint16, what the file holds when whole),
        ``times_s`` (after the camera's trigger), ``mode``, ``pulse_id``.
    """

    def __init__(
        self,
        timing: Any,
        watch_dir: str | Path,
        *,
        fmt: str = "tiff",
        num_images: int = 128,
        frame_rate_hz: float = 2e6,
        frame_shape: tuple[int, int] = (16, 24),
        delay_s: float = 0.0,
        modes: Sequence[str] = ("on_time",),
        late_s: float = 0.5,
        chunk_pause_s: float = 0.02,
        store_times: bool = True,
    ):
        if fmt not in ("tiff", "hdf5", "cine"):
            raise ValueError(f"fmt must be tiff, hdf5 or cine; got {fmt!r}")
        if not modes or any(m not in VENDOR_MODES for m in modes):
            raise ValueError(f"modes must be from {VENDOR_MODES}; got {modes!r}")
        self.timing = timing
        self.watch_dir = Path(watch_dir)
        self.fmt = fmt
        self.num_images = int(num_images)
        self.frame_rate_hz = float(frame_rate_hz)
        self.frame_shape = tuple(frame_shape)
        self.delay_s = float(delay_s)
        self.modes = list(modes)
        self.late_s = float(late_s)
        self.chunk_pause_s = float(chunk_pause_s)
        self.store_times = store_times
        self.written: list[dict[str, Any]] = []
        self._threads: list[threading.Thread] = []
        self._running = False
        self._lock = threading.Lock()
        self._count = 0

    def start(self) -> FakeVendor:
        """Arm: answer the next pulse (and every one after, until :meth:`stop`)."""
        self._running = True
        self.timing.connect_camera(self._on_pulse)
        return self

    def stop(self) -> None:
        """Disarm and wait for the files being written."""
        self._running = False
        self.timing.disconnect_camera(self._on_pulse)
        for thread in self._threads:
            thread.join(10)

    def __enter__(self) -> FakeVendor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_pulse(self, pulse: Any) -> None:
        # Runs in the thread that fired the trigger: hand the work on, re-arm.
        with self._lock:
            index = self._count
            self._count += 1
        mode = self.modes[min(index, len(self.modes) - 1)]
        if self._running:
            self.timing.connect_camera(self._on_pulse)
        thread = threading.Thread(
            target=self._save, args=(pulse, mode), name="fake-vendor", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def render(self, pulse: Any) -> tuple[np.ndarray, np.ndarray]:
        """Return the burst of ``pulse`` (uint16) and its times after the trigger."""
        from xfusion_bluesky.devices.base import UHS_SPEC

        times = np.arange(self.num_images) / self.frame_rate_hz
        frames = pulse.event.uhs_burst(
            UHS_SPEC, self.delay_s + times, self.frame_shape, seed=pulse.burst_seed
        )
        return np.array(frames, dtype=np.uint16), times

    def _save(self, pulse: Any, mode: str) -> None:
        frames, times = self.render(pulse)
        suffix = {"tiff": ".tif", "hdf5": ".h5", "cine": ".cine"}[self.fmt]
        path = (
            self.watch_dir / f"shot_{pulse.pulse_id:04d}_{uuid.uuid4().hex[:6]}{suffix}"
        )
        record = {
            "path": path,
            "frames": frames,
            "times_s": times,
            "mode": mode,
            "pulse_id": pulse.pulse_id,
        }
        self.written.append(record)
        if mode == "never":
            return
        if mode == "late":
            time.sleep(self.late_s)
        # The file is made beside the watched directory, then its bytes arrive
        # under the final name in a few writes, as a vendor writer streams them.
        scratch = self.watch_dir.parent / f".vendor-{uuid.uuid4().hex}{suffix}"
        times_kw = times if self.store_times else None
        if self.fmt == "tiff":
            write_tiff(
                scratch,
                frames,
                frame_times_s=times_kw,
                frame_rate_hz=self.frame_rate_hz,
            )
        elif self.fmt == "hdf5":
            write_hdf5(
                scratch, frames, frame_times_s=times_kw, trigger_time=pulse.trigger_time
            )
        else:
            write_cine(
                scratch,
                frames,
                frame_rate_hz=self.frame_rate_hz,
                frame_times_s=times,
                trigger_time=pulse.trigger_time,
            )
        data = scratch.read_bytes()
        scratch.unlink()
        if mode == "partial":
            data = data[: len(data) // 2]
        pieces = 4
        step = max(len(data) // pieces, 1)
        with open(path, "wb") as f:
            for start in range(0, len(data), step):
                f.write(data[start : start + step])
                f.flush()
                time.sleep(self.chunk_pause_s)
