"""The registration file: a raw run's ``registration`` block as JSON; read, check, make.

An ingested pair of recordings carries no registration of its own, so
``xfusion-bluesky ingest`` takes one from a file (``--registration FILE``): a JSON
object with the keys of a raw run's ``registration`` block (``docs/format.md``).
:func:`measure_registration` makes one from a recording pair of a static,
textured target (``xfusion-bluesky register``), by averaging each camera's
frames and measuring them with :func:`~xfusion_bluesky.calibration.measure_geometry`;
the block of any version-1 or later raw run, saved as JSON, is one too.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xfusion_bluesky.errors import InvalidInputError, RegistrationError
from xfusion_bluesky.geometry import (
    GRID,
    MAX_ROTATION_DEG,
    SCALE_RATIO_RANGE,
    Similarity,
)

__all__ = [
    "HOW_TO_GET_ONE",
    "average_frames",
    "check_fits",
    "measure_registration",
    "read_registration",
    "registration_block",
    "sha256_of",
    "write_registration",
]

#: What a refusal says about getting a registration file.
HOW_TO_GET_ONE = (
    "measure one from a recording pair of a static, textured target with "
    "`xfusion-bluesky register --uhs FILE --hs FILE -o registration.json`, or save "
    "a raw run's registration block with `xfusion-bluesky register --from-run UID "
    "-o registration.json`"
)
#: Frames averaged at once when a target recording is averaged (bounds memory).
_CHUNK_FRAMES = 32
#: How far a stored ``matrix_hr`` may differ from the one its parameters give.
_MATRIX_TOLERANCE = 1e-6


def registration_block(
    similarity: Similarity,
    uhs_shape: tuple[int, int],
    *,
    measured_by: str,
    uncertainty: Mapping[str, Any] | None = None,
    measured_at: float | None = None,
    measured_rois: Mapping[str, Any] | None = None,
    pixel_size_ratio: float | None = None,
    hs_latency_s: float = 0.0,
    hs_latency_std_s: float | None = None,
    latency_measured_by: str = "nominal",
) -> dict[str, Any]:
    """Return a version-3 ``registration`` block (every key of ``docs/format.md``).

    Parameters
    ----------
    similarity : Similarity
        The HS image's transform onto the UHS frame's fused grid.
    uhs_shape : (int, int)
        UHS frame ``(height, width)`` the transform is for.
    measured_by : str
        Provenance (``register:<file>``, ``registration_scan:<id>``, ...).
    uncertainty, measured_at, measured_rois : optional
        As the measurement gave them; None: not measured (nominal).
    pixel_size_ratio : float, optional
        Effective UHS / HS pixel size; default the transform's scale ratio.
    hs_latency_s, hs_latency_std_s, latency_measured_by
        The HS camera's trigger latency relative to the UHS (0: nominal).
    """
    block = similarity.metadata()
    offset = block["offset_hr_px"]
    ratio = similarity.scale_ratio if pixel_size_ratio is None else pixel_size_ratio
    block.update(
        {
            "scale": GRID,
            "offset_lr_px": [float(v) / GRID for v in offset],
            "uhs_shape": [int(v) for v in uhs_shape],
            "pixel_size_ratio": float(ratio),
            "measured_by": str(measured_by),
            "uncertainty": None if uncertainty is None else dict(uncertainty),
            "measured_at": None if measured_at is None else float(measured_at),
            "measured_rois": None if measured_rois is None else dict(measured_rois),
            "hs_latency_s": float(hs_latency_s),
            "hs_latency_std_s": (
                None if hs_latency_std_s is None else float(hs_latency_std_s)
            ),
            "latency_measured_by": str(latency_measured_by),
        }
    )
    return block


def read_registration(path: str | Path) -> dict[str, Any]:
    """Read and check a registration file; return its block in version-3 form.

    Parameters
    ----------
    path : str or Path
        A JSON object with at least ``offset_hr_px``, ``hs_shape`` and
        ``uhs_shape``; ``scale_ratio`` and ``rotation_deg`` default to 4 and 0
        (a version-1 block), the flips to False, the latency to 0.

    Returns
    -------
    dict
        The block as :func:`registration_block` writes it.

    Raises
    ------
    InvalidInputError
        No such file, not JSON, a key missing or out of range (the message names
        the key and the value), or a stored ``matrix_hr`` that its parameters
        do not give.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise InvalidInputError(
            f"registration file {path} does not exist: {HOW_TO_GET_ONE}"
        )
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidInputError(
            f"registration file {path} is not readable JSON ({err}): {HOW_TO_GET_ONE}"
        ) from err
    if not isinstance(stored, dict):
        raise InvalidInputError(
            f"registration file {path} holds a {type(stored).__name__}, not a JSON "
            "object with the keys of a raw run's registration block"
        )
    return _check_block(stored, path)


def _check_block(stored: dict[str, Any], path: Path) -> dict[str, Any]:
    lacking = [k for k in ("offset_hr_px", "hs_shape", "uhs_shape") if k not in stored]
    if lacking:
        raise InvalidInputError(
            f"registration file {path} lacks {', '.join(lacking)}: it must hold a "
            f"raw run's registration block; {HOW_TO_GET_ONE}"
        )
    uhs_shape = _shape(stored["uhs_shape"], "uhs_shape", path)
    hs_shape = _shape(stored["hs_shape"], "hs_shape", path)
    try:
        similarity = Similarity.from_metadata(stored, hs_shape=hs_shape)
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"registration file {path}: {err}") from err
    low, high = SCALE_RATIO_RANGE
    if not low <= similarity.scale_ratio <= high:
        raise InvalidInputError(
            f"registration file {path}: scale_ratio {similarity.scale_ratio:g} is "
            f"outside {low:g} … {high:g} (UHS / HS pixel size): not a registration of "
            "this kind of camera pair, or a failed measurement; measure it again"
        )
    if abs(similarity.rotation_deg) > MAX_ROTATION_DEG:
        raise InvalidInputError(
            f"registration file {path}: rotation_deg {similarity.rotation_deg:g} is "
            f"beyond ±{MAX_ROTATION_DEG:g}°: re-mount the HS camera or measure again"
        )
    if stored.get("matrix_hr") is not None:
        matrix = np.asarray(stored["matrix_hr"], dtype=np.float64)
        expected = similarity.matrix()[:2]
        if matrix.shape != (2, 3) or not np.allclose(
            matrix, expected, atol=_MATRIX_TOLERANCE
        ):
            raise InvalidInputError(
                f"registration file {path}: matrix_hr {matrix.tolist()} is not the "
                "matrix its scale_ratio, rotation_deg, offset_hr_px and flips give "
                f"({np.round(expected, 6).tolist()}): the file was edited by hand? "
                "Drop matrix_hr or measure again"
            )
    for key in ("uncertainty", "measured_rois"):
        if stored.get(key) is not None and not isinstance(stored[key], dict):
            raise InvalidInputError(
                f"registration file {path}: {key} must be an object or null; got "
                f"{stored[key]!r}"
            )
    for role, roi in (stored.get("measured_rois") or {}).items():
        if role not in ("uhs", "hs") or _roi(roi) is None:
            raise InvalidInputError(
                f"registration file {path}: measured_rois must map uhs and hs to "
                f"[min_y, min_x, size_y, size_x]; got {role!r}: {roi!r}"
            )
    latency = _number(stored.get("hs_latency_s", 0.0), "hs_latency_s", path)
    std = stored.get("hs_latency_std_s")
    return registration_block(
        similarity,
        uhs_shape,
        measured_by=str(stored.get("measured_by") or f"registration file {path.name}"),
        uncertainty=stored.get("uncertainty"),
        measured_at=stored.get("measured_at"),
        measured_rois=(
            None
            if stored.get("measured_rois") is None
            else {k: _roi(v) for k, v in stored["measured_rois"].items()}
        ),
        pixel_size_ratio=stored.get("pixel_size_ratio"),
        hs_latency_s=latency,
        hs_latency_std_s=(
            None if std is None else _number(std, "hs_latency_std_s", path)
        ),
        latency_measured_by=str(stored.get("latency_measured_by") or "nominal"),
    )


def _shape(value: Any, key: str, path: Path) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in value)
    except (TypeError, ValueError):
        height = width = 0
    if height < 1 or width < 1:
        raise InvalidInputError(
            f"registration file {path}: {key} must be [height, width] in pixels; "
            f"got {value!r}"
        )
    return height, width


def _roi(value: Any) -> list[int] | None:
    """Return ``[min_y, min_x, size_y, size_x]`` as ints, or None if it is not one."""
    try:
        roi = [int(v) for v in value]
    except (TypeError, ValueError):
        return None
    ok = len(roi) == 4 and min(roi[:2]) >= 0 and min(roi[2:]) >= 1
    return roi if ok else None


def _number(value: Any, key: str, path: Path) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise InvalidInputError(
            f"registration file {path}: {key} must be a finite number; got {value!r}"
        )
    return number


def check_fits(
    block: Mapping[str, Any],
    uhs_shape: tuple[int, int],
    hs_shape: tuple[int, int],
    *,
    source: str = "the registration",
) -> None:
    """Refuse a registration that is not for frames of these shapes, or no overlap.

    Parameters
    ----------
    block : mapping
        A registration block (:func:`read_registration`).
    uhs_shape, hs_shape : (int, int)
        The recordings' frame shapes.
    source : str
        What the block came from, for the messages (the file's path).

    Raises
    ------
    InvalidInputError
        ``uhs_shape``/``hs_shape`` or the measured ROIs' sizes differ from the
        frames, or the HS field misses the UHS field (less than one UHS pixel).
    """
    for key, shape in (("uhs_shape", uhs_shape), ("hs_shape", hs_shape)):
        stored = tuple(int(v) for v in block[key])
        if stored != tuple(shape):
            raise InvalidInputError(
                f"{source} was measured for {key.split('_')[0].upper()} frames of "
                f"{stored[0]}×{stored[1]} px, but the recording's are "
                f"{shape[0]}×{shape[1]} px: {HOW_TO_GET_ONE}"
            )
    rois = block.get("measured_rois") or {}
    for role, shape in (("uhs", uhs_shape), ("hs", hs_shape)):
        roi = rois.get(role)
        if roi is not None and tuple(int(v) for v in roi[2:]) != tuple(shape):
            raise InvalidInputError(
                f"{source} was measured with a {role.upper()} ROI of "
                f"{int(roi[2])}×{int(roi[3])} px, but the recording's frames are "
                f"{shape[0]}×{shape[1]} px: {HOW_TO_GET_ONE}"
            )
    similarity = Similarity.from_metadata(block, hs_shape=hs_shape)
    height, width = hs_shape
    top, left, bottom, right = -0.5, -0.5, height - 0.5, width - 0.5
    corners = similarity.map_points(
        [(top, left), (top, right), (bottom, left), (bottom, right)]
    )
    field = (GRID * uhs_shape[0], GRID * uhs_shape[1])
    low = np.maximum(corners.min(axis=0), -0.5)
    high = np.minimum(corners.max(axis=0), np.asarray(field, dtype=np.float64) - 0.5)
    if np.any(high - low < GRID):
        raise InvalidInputError(
            f"with {source}, the HS field (grid y {corners[:, 0].min():.1f} … "
            f"{corners[:, 0].max():.1f}, x {corners[:, 1].min():.1f} … "
            f"{corners[:, 1].max():.1f}) does not overlap the UHS field (0 … "
            f"{field[0]} × 0 … {field[1]} on the 4× grid) by one UHS pixel: the "
            f"registration is for another camera setup; {HOW_TO_GET_ONE}"
        )


def write_registration(path: str | Path, block: Mapping[str, Any]) -> Path:
    """Write ``block`` as an indented JSON registration file; return its path."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(block), indent=2) + "\n", encoding="utf-8")
    return path


def average_frames(recording: Any) -> NDArray[np.float64]:
    """Return the mean frame of a recording, read a few frames at a time."""
    total = np.zeros(tuple(recording.frame_shape), dtype=np.float64)
    count = int(recording.num_frames)
    for start in range(0, count, _CHUNK_FRAMES):
        frames = np.asarray(recording.read(start, min(start + _CHUNK_FRAMES, count)))
        total += frames.astype(np.float64).sum(axis=0)
    return total / max(count, 1)


def measure_registration(
    uhs_path: str | Path,
    hs_path: str | Path,
    *,
    uhs_dataset: str | None = None,
    hs_dataset: str | None = None,
) -> dict[str, Any]:
    """Measure the registration block of a recording pair of a static target.

    Each camera's frames are averaged (less noise: the target does not move),
    then :func:`~xfusion_bluesky.calibration.measure_geometry` measures the HS
    image's similarity transform and flips.

    Parameters
    ----------
    uhs_path, hs_path : str or Path
        The UHS and HS recordings (TIFF, HDF5, .cine) of the target.
    uhs_dataset, hs_dataset : str, optional
        The frames' dataset in an HDF5 file (default: found by the reader).

    Returns
    -------
    dict
        A registration block (:func:`registration_block`): ``measured_by``
        ``register:<UHS file name>``, ``measured_rois`` the whole frames, the
        latency nominal (0: a static target cannot tell it).

    Raises
    ------
    RecordingError
        A file does not open, or holds no frames.
    RegistrationError
        Too little texture, no overlap, a transform out of range.
    """
    from xfusion_bluesky.calibration import measure_geometry
    from xfusion_bluesky.devices.files.formats import open_recording

    uhs = open_recording(uhs_path, dataset=uhs_dataset)
    hs = open_recording(hs_path, dataset=hs_dataset)
    for name, recording in (("UHS", uhs), ("HS", hs)):
        if len(tuple(recording.frame_shape)) != 2:
            raise RegistrationError(
                f"the {name} recording {recording.path} holds frames of shape "
                f"{tuple(recording.frame_shape)}, not 2-D images"
            )
    measured = measure_geometry(average_frames(uhs), average_frames(hs))
    uhs_shape = tuple(int(v) for v in uhs.frame_shape)
    hs_shape = tuple(int(v) for v in hs.frame_shape)
    return registration_block(
        measured.similarity,
        (uhs_shape[0], uhs_shape[1]),
        measured_by=f"register:{Path(uhs.path).name}",
        uncertainty=measured.uncertainty,
        measured_at=time.time(),
        measured_rois={"uhs": [0, 0, *uhs_shape], "hs": [0, 0, *hs_shape]},
    )


def sha256_of(path: str | Path) -> str:
    """Return the hex sha256 of a (small) file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
