"""Read a raw dual-camera run back from Tiled, burst by burst, and check it is fusable.

The fusion worker reads only what Tiled serves (never the RunEngine's memory):
the start document's ``uhs``/``hs``/``registration``/``fusion`` blocks and, per
event (= burst), the UHS and HS image stacks and their frame times. Runs stored
in format v0 are read through :func:`~xfusion_bluesky.stored_format.raw_start_v1`,
so everything downstream sees the v1 names. Every
problem a scientist can fix — a missing or truncated HDF5 file, no HS frames,
NaN frames — becomes a :class:`~xfusion_bluesky.errors.RunNotFusableError` whose
message says what is wrong, in one line. A run stopped or aborted part-way is
readable: its recorded bursts are listed in ``num_bursts``, the announced ones it
never recorded in ``missing``, each with the reason.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import h5py
import httpx
import numpy as np
from numpy.typing import NDArray

from xfusion_bluesky.catalog.stream_parts import StreamParts
from xfusion_bluesky.errors import RunNotFinishedError, RunNotFusableError
from xfusion_bluesky.geometry import Similarity
from xfusion_bluesky.stored_format import raw_start_v1

if TYPE_CHECKING:
    from xfusion_bluesky.fusion.field import FieldRegistration

__all__ = ["RawBurst", "RawRun", "open_raw_run", "stream_length", "wait_for_stop"]

logger = logging.getLogger(__name__)

#: Start-document blocks the worker needs (written by ``dual_camera_scan``).
REQUIRED_BLOCKS = ("uhs", "hs", "registration")
#: Seconds between two looks for the stop document of a run being recorded.
STOP_POLL_S = 0.5


@dataclass(frozen=True)
class RawBurst:
    """One burst of both cameras, as stored.

    Attributes
    ----------
    index : int
        Burst (event) number in the run, from 0.
    lr, hr : ndarray, (T, h, w) and (K, H, W)
        UHS and HS frames in the cameras' counts (usually uint16); read-only.
    lr_times_s, hr_times_s : ndarray, (T,) and (K,) float64
        Frame start times after the trigger.
    """

    index: int
    lr: NDArray[Any]
    hr: NDArray[Any]
    lr_times_s: NDArray[np.float64]
    hr_times_s: NDArray[np.float64]


@dataclass
class RawRun:
    """A raw run as the fusion worker sees it.

    Attributes
    ----------
    uid : str
        The full run uid.
    start, stop : dict
        The start document in the v1 names (see
        :func:`~xfusion_bluesky.stored_format.raw_start_v1`) and the stop document.
    node : BlueskyRunV3
        The Tiled node (``node["primary"]``, ...).
    num_bursts : int
        Events in the primary stream: the bursts recorded.
    missing : list of dict
        ``{"burst": k, "reason": ...}`` for each burst the start document
        announced (``num_points``) that the run did not record.
    """

    uid: str
    start: dict[str, Any]
    stop: dict[str, Any]
    node: Any
    num_bursts: int
    missing: list[dict[str, Any]] = field(default_factory=list)
    _parts: StreamParts | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def parts(self) -> StreamParts:
        """The primary stream's parts, listed once (see :class:`StreamParts`)."""
        if self._parts is None:
            self._parts = StreamParts(self.node)
        return self._parts

    @property
    def exit_status(self) -> str:
        """The raw run's ``exit_status``: success, abort or fail."""
        return str(self.stop.get("exit_status"))

    @property
    def lr_key(self) -> str:
        """Data key of the UHS image stack."""
        return str(self.start["uhs"].get("data_key", "uhs_image"))

    @property
    def hr_key(self) -> str:
        """Data key of the HS image stack."""
        return str(self.start["hs"].get("data_key", "hs_image"))

    @property
    def similarity(self) -> Similarity:
        """The HS field's transform onto the UHS fused grid (``registration`` block).

        A block of format 2 or earlier reads as scale ratio 4, no rotation.

        Raises
        ------
        RunNotFusableError
            The block holds no valid transform (a non-finite or zero value).
        """
        hs_shape = self.start["hs"]["frame_shape"]
        try:
            return Similarity.from_metadata(
                self.start["registration"],
                hs_shape=(int(hs_shape[0]), int(hs_shape[1])),
            )
        except (ValueError, TypeError, KeyError) as err:
            raise RunNotFusableError(
                f"the registration block does not read as a transform ({err}): "
                "run registration_scan again"
            ) from err

    @property
    def hs_latency_s(self) -> float:
        """The registration's HS − UHS trigger latency, seconds (0 if not measured)."""
        return float(self.start["registration"].get("hs_latency_s") or 0.0)

    def field_registration(self) -> FieldRegistration:
        """Return the common field of both cameras from the start document.

        The transform comes from the ``registration`` block, the field from the
        frame shapes (see :func:`~xfusion_bluesky.fusion.field.register_fields`):
        a crop for a whole-pixel registration, a one-step warp otherwise.

        Raises
        ------
        RunNotFusableError
            The transform is outside the accepted range, the registration was
            measured with other camera ROIs than this run's (stale), or the
            fields do not overlap; the message says to re-register.
        """
        from xfusion_bluesky.fusion.field import (
            check_registration_rois,
            register_fields,
        )

        reg = self.start["registration"]
        check_registration_rois(
            reg.get("measured_rois"),
            {name: self.start[name].get("roi") for name in ("uhs", "hs")},
        )
        return register_fields(
            tuple(self.start["uhs"]["frame_shape"]),
            tuple(self.start["hs"]["frame_shape"]),
            similarity=self.similarity,
        )

    def burst(self, index: int) -> RawBurst:
        """Read burst ``index`` from Tiled and check it.

        Raises
        ------
        RunNotFusableError
            A file is missing or unreadable, the frames do not match the start
            document, there are no HS frames, or frames hold NaN/inf.
        """
        stream = self.parts
        lr = _read(stream, self.lr_key, index, "UHS")
        hr = _read(stream, self.hr_key, index, "HS")
        lr_times = _read_times(stream, self.start["uhs"], index, lr.shape[0], "UHS")
        hr_times = _read_times(stream, self.start["hs"], index, hr.shape[0], "HS")
        if hr.shape[0] == 0:
            raise RunNotFusableError(
                f"burst {index} has no HS frames: the HS recorded nothing in the "
                "UHS window (check its delay and frame rate)"
            )
        for name, frames in (("UHS", lr), ("HS", hr)):
            if frames.ndim != 3:
                raise RunNotFusableError(
                    f"burst {index}: {name} data have shape {frames.shape}, "
                    "expected (frames, height, width)"
                )
            if frames.dtype.kind == "f" and not np.all(np.isfinite(frames)):
                bad = int(np.count_nonzero(~np.isfinite(frames).all(axis=(1, 2))))
                raise RunNotFusableError(
                    f"burst {index}: {bad} {name} frame(s) contain NaN or inf values"
                )
        return RawBurst(index, lr, hr, lr_times, hr_times)


def open_raw_run(raw: Any, uid: str, *, node: Any = None) -> RawRun:
    """Open raw run ``uid`` (a unique prefix works) and check its documents.

    Parameters
    ----------
    raw : CatalogOfBlueskyRuns
        The raw-run container (``bl.tiled``).
    uid : str
        Run uid; a unique prefix works.
    node : BlueskyRunV3, optional
        The run's node, if just looked up (:func:`wait_for_stop`): one request
        fewer.

    Returns
    -------
    RawRun

    Raises
    ------
    KeyError
        No such run.
    RunNotFinishedError
        The run has no stop document yet (still being recorded, or its
        RunEngine died before closing it).
    RunNotFusableError
        The run lacks the dual-camera metadata, recorded no burst, or its HDF5
        files are missing, truncated or corrupt.
    """
    if node is None:
        node = raw[uid]
    start = raw_start_v1(dict(node.start))
    full_uid = str(start["uid"])
    stop_doc = node.metadata.get("stop")
    if not stop_doc:
        raise RunNotFinishedError(
            f"raw run {full_uid} is still being recorded (no stop document yet), "
            "or its RunEngine stopped before closing it"
        )
    stop = dict(stop_doc)
    lacking = [key for key in REQUIRED_BLOCKS if key not in start]
    if lacking:
        raise RunNotFusableError(
            f"the raw run's start document lacks {', '.join(lacking)}: it was not "
            "recorded by dual_camera_scan, so the cameras cannot be matched"
        )
    num_bursts = stream_length(node)
    ended = _how_it_ended(stop)
    if num_bursts == 0:
        raise RunNotFusableError(f"the raw run recorded no bursts ({ended})")
    announced = int(start.get("num_points") or 0)
    missing = [
        {
            "burst": k,
            "reason": f"not recorded: {ended} after {num_bursts} of {announced} bursts",
        }
        for k in range(num_bursts, announced)
    ]
    run = RawRun(full_uid, start, stop, node, num_bursts, missing)
    _check_files(run.parts, (run.lr_key, run.hr_key))
    return run


def _how_it_ended(stop: dict[str, Any]) -> str:
    """Say how a run ended, for a missing burst's reason."""
    status = stop.get("exit_status")
    why = f" ({stop['reason']})" if stop.get("reason") else ""
    if status == "success":
        return f"the scan was stopped early{why}"
    return f"the scan ended with exit_status {status!r}{why}"


def wait_for_stop(raw: Any, raw_uid: str, wait_s: float = 0.0) -> Any:
    """Return raw run ``raw_uid``'s node once its stop document is in Tiled.

    Parameters
    ----------
    raw : CatalogOfBlueskyRuns
        The raw-run container.
    raw_uid : str
        The raw run (a unique uid prefix works).
    wait_s : float
        Longest wait for the stop document; 0: look once.

    Raises
    ------
    KeyError
        No such raw run.
    RunNotFinishedError
        Still no stop document after ``wait_s``.
    """
    deadline = time.monotonic() + max(0.0, float(wait_s))
    while True:
        node = raw[raw_uid]
        if node.metadata.get("stop"):
            return node
        if time.monotonic() >= deadline:
            break
        time.sleep(min(STOP_POLL_S, max(0.0, deadline - time.monotonic())))
    uid = str((node.metadata.get("start") or {}).get("uid") or raw_uid)
    waited = f" after {float(wait_s):g} s" if wait_s > 0 else ""
    raise RunNotFinishedError(
        f"raw run {uid} is still being recorded: no stop document{waited}. "
        "Nothing was written; fuse it once the scan has ended (if its RunEngine "
        "died, the run has no end to wait for: replay its document backup)"
    )


def stream_length(node: Any, stream: str = "primary") -> int:
    """Return the number of events of ``stream`` (0 if it does not exist)."""
    counts = (node.metadata.get("stop") or {}).get("num_events") or {}
    if stream in counts:
        return int(counts[stream])
    if stream not in node:
        return 0
    return int(node[stream]["time"].shape[0])


def _read(stream: Any, key: str, index: int, name: str) -> NDArray[Any]:
    """Read burst ``index`` of data key ``key``; wrap failures in a readable error."""
    if key not in stream:
        raise RunNotFusableError(f"the raw run has no {name} data (key {key!r})")
    try:
        frames = np.asarray(stream[key][index])
    except httpx.TransportError:
        raise  # Tiled unreachable: says nothing about the file (the caller retries)
    except Exception as err:
        response = getattr(err, "response", None)
        if getattr(response, "status_code", None) == 500:
            # The server failed on the file behind the array; say which one.
            files = ", ".join(_asset_paths(stream, key)) or "its HDF5 file"
            raise RunNotFusableError(
                f"the server could not read the {name} frames of burst {index} "
                f"from {files} (HTTP 500): missing, truncated or corrupt? The "
                "server's log says which"
            ) from err
        raise RunNotFusableError(
            f"could not read the {name} frames of burst {index} from Tiled "
            f"({type(err).__name__}: {_first_line(err)})"
        ) from err
    frames.flags.writeable = False
    return frames


def _asset_paths(stream: Any, key: str) -> list[str]:
    """Return the paths of the files behind data key ``key`` (none if not listed)."""
    try:
        sources = stream[key].data_sources() or []
    except Exception:  # older servers do not list data sources
        return []
    return [
        urlparse(asset.data_uri).path
        for source in sources
        for asset in getattr(source, "assets", [])
    ]


def _read_times(
    stream: Any, camera: dict[str, Any], index: int, num_frames: int, name: str
) -> NDArray[np.float64]:
    """Return burst ``index``'s frame times, or the nominal grid if not recorded."""
    key = camera.get("frame_times_key")
    if key and key in stream:
        times = np.asarray(_read(stream, key, index, name), dtype=np.float64).ravel()
        if times.size != num_frames:
            raise RunNotFusableError(
                f"burst {index}: {times.size} {name} frame times for "
                f"{num_frames} frames"
            )
        return times
    logger.warning("no %s frame times recorded: using the nominal frame grid", name)
    period = float(camera["frame_period_s"])
    start = float(camera.get("delay_s", 0.0))
    return start + period * np.arange(num_frames, dtype=np.float64)


def _check_files(stream: StreamParts, keys: tuple[str, ...]) -> None:
    """Fail fast on an HDF5 file that is missing or unreadable where this host sees it.

    Tiled answers a missing or truncated external file with HTTP 500, which its
    client retries for tens of seconds per read (about 100 s per run by default)
    and reports as the URL that failed; when the camera folder is mounted here,
    opening the file with h5py says what is wrong, and which file, at once.
    """
    for key in keys:
        if key not in stream:
            continue
        try:
            sources = stream[key].data_sources() or []
        except Exception:  # older servers do not list data sources: read instead
            logger.debug("no data sources listed for %s", key, exc_info=True)
            continue
        for source in sources:
            for asset in getattr(source, "assets", []):
                path = Path(urlparse(asset.data_uri).path)
                if not path.parent.is_dir():
                    continue  # not mounted here: Tiled's read is the check
                if not path.exists():
                    raise RunNotFusableError(
                        f"the HDF5 file {path} of {key!r} is missing (moved or "
                        "deleted after the scan)"
                    )
                parameters = getattr(source, "parameters", None) or {}
                _check_hdf5(path, key, parameters.get("dataset"))


def _check_hdf5(path: Path, key: str, dataset: str | None) -> None:
    """Open ``path`` and read the last frame of ``dataset``; raise if that fails.

    A file cut short (a full disk, a copy interrupted, a crash before the
    camera's file writer closed it) fails to open, or fails on its last chunks.
    """
    try:
        with h5py.File(path, "r", locking=False) as f:
            if dataset:
                data = f[dataset]
                if data.shape and data.shape[0]:
                    np.asarray(data[data.shape[0] - 1])
    except (OSError, KeyError, ValueError, RuntimeError) as err:
        raise RunNotFusableError(
            f"the HDF5 file {path} of {key!r} is truncated or corrupt "
            f"({_first_line(err)}): copy it again from the camera, or re-take "
            "the scan"
        ) from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else ""
