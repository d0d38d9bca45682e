"""The simulation's ground truth: the event, noise-free, at the cameras' true instants.

A simulated raw run's start document carries a ``sim`` block (the scene family,
seed and speed, the UHS field at HR resolution, the HS mounting, each camera's
trigger latency, and the data key of each burst's seed), so the event it imaged
can be rendered again at any instant.

- :func:`field_truth` renders it on the fused grid (the UHS field at 4×), cropped
  to a window, at the UHS frames' true instants: what a fused frame is scored
  against, whatever the HS geometry.
- :func:`ground_truth` renders it through the HS camera's mount at the same
  instants: the HS view fusion reconstructed before version 3 (still right for
  every run of the aligned simulation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xfusion_bluesky.devices.sim.event import HSMount, SimEvent
from xfusion_bluesky.errors import InvalidInputError

__all__ = ["burst_seed_key", "field_truth", "ground_truth"]


def burst_seed_key(start: Mapping[str, Any]) -> str:
    """Return the data key of the per-burst scene seed in a simulated raw run.

    Parameters
    ----------
    start : mapping
        The raw run's start document.

    Raises
    ------
    InvalidInputError
        The run was not simulated.
    """
    return str(_sim_block(start)["burst_seed_key"])


def field_truth(
    start: Mapping[str, Any],
    times_s: NDArray[np.floating[Any]],
    *,
    burst_seed: int,
    grid_window: Sequence[int],
) -> NDArray[np.float32]:
    """Render the simulated event on the fused grid, noise-free, at the UHS instants.

    Parameters
    ----------
    start : mapping
        The raw run's start document (``sim`` and ``hs`` blocks).
    times_s : ndarray, (T,) float
        Recorded UHS frame times (nominal, after the trigger); the event is
        rendered at these plus the UHS camera's latency (``sim.uhs_latency_s``,
        0 for runs that predate it): the instants the UHS really imaged.
    burst_seed : int
        The burst's scene seed (the raw run's :func:`burst_seed_key` data).
    grid_window : [y0, x0, h, w]
        The fused frames' window on the fused grid of the full UHS frame (the
        derived run's ``fusion.registration.grid_window``).

    Returns
    -------
    ndarray, (T, h, w) float32
        In HS counts (the simulation's ``digitize`` scale, not rounded).

    Raises
    ------
    InvalidInputError
        The run was not simulated, or the window leaves the simulated field.
    """
    sim = _sim_block(start)
    field_shape = _field_shape(sim)
    y0, x0, height, width = (int(v) for v in grid_window)
    if (
        min(y0, x0) < 0
        or min(height, width) < 1
        or y0 + height > field_shape[0]
        or x0 + width > field_shape[1]
    ):
        raise InvalidInputError(
            f"grid_window {list(grid_window)} does not fit the simulated field of "
            f"{field_shape[0]}×{field_shape[1]} HR px of run {start.get('uid')}; "
            "give [y0, x0, h, w] inside it (the derived run's grid_window)"
        )
    instants = np.asarray(times_s, dtype=np.float64) + _latency(sim, "uhs")
    field = _event(sim).render(instants, field_shape, seed=int(burst_seed))
    window = field[:, y0 : y0 + height, x0 : x0 + width]
    return np.ascontiguousarray(window, dtype=np.float32) * _full_scale(start)


def ground_truth(
    start: Mapping[str, Any],
    times_s: NDArray[np.floating[Any]],
    *,
    burst_seed: int,
) -> NDArray[np.float32]:
    """Render the HS camera's view of a simulated event at ``times_s``, noise-free.

    Parameters
    ----------
    start : mapping
        The raw run's start document; it has a ``sim`` block (written by
        ``dual_camera_scan`` on simulated devices) and an ``hs`` block with the
        HS ``frame_shape`` and ``bit_depth``.
    times_s : ndarray, (T,) float
        Instants after the trigger, e.g. the UHS frame times of one burst; the
        event is rendered at these plus the UHS latency (as :func:`field_truth`).
    burst_seed : int
        The burst's scene seed (the raw run's :func:`burst_seed_key` data).

    Returns
    -------
    ndarray, (T, H, W) float32
        In HS counts (the simulation's ``digitize`` scale, not rounded), on the
        HS frame as the camera is mounted (its offset and flips applied; a
        misaligned mount resampled as the camera renders it).

    Raises
    ------
    InvalidInputError
        The run was not simulated, or its HS view does not fit the field.
    """
    sim = _sim_block(start)
    field_shape = _field_shape(sim)
    mount = HSMount.from_metadata(sim.get("hs_mount"))
    height, width = (int(v) for v in start["hs"]["frame_shape"])
    try:
        mount.check_fits((height, width), field_shape)
    except InvalidInputError as err:
        raise InvalidInputError(
            f"{err}: the start document of run {start.get('uid')} is inconsistent"
        ) from None
    instants = np.asarray(times_s, dtype=np.float64) + _latency(sim, "uhs")
    field = _event(sim).render(instants, field_shape, seed=int(burst_seed))
    seen = mount.view(field, (height, width))
    return np.ascontiguousarray(seen, dtype=np.float32) * _full_scale(start)


def _event(sim: Mapping[str, Any]) -> SimEvent:
    return SimEvent(
        sim["scene_family"],
        seed=int(sim["scene_seed"]),
        frame_period_s=float(sim["scene_frame_period_s"]),
        params=dict(sim.get("scene_params") or {}),
        target=str(sim.get("target", "event")),
    )


def _field_shape(sim: Mapping[str, Any]) -> tuple[int, int]:
    return (int(sim["field_shape_hr"][0]), int(sim["field_shape_hr"][1]))


def _latency(sim: Mapping[str, Any], camera: str) -> float:
    return float(sim.get(f"{camera}_latency_s", 0.0) or 0.0)


def _full_scale(start: Mapping[str, Any]) -> np.float32:
    return np.float32(2 ** int(start["hs"].get("bit_depth", 16)) - 1)


def _sim_block(start: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return the start document's ``sim`` block, or say the run has no truth."""
    sim = start.get("sim")
    if not sim:
        raise InvalidInputError(
            f"raw run {start.get('uid')} was not simulated: it has no ground truth "
            "(only runs of the simulated beamline carry a 'sim' block)"
        )
    return sim
