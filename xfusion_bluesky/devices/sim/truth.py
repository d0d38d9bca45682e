"""The simulation's ground truth: what the HS camera would have seen, noise-free.

A simulated raw run's start document carries a ``sim`` block (the scene family,
seed and speed, the UHS field at HR resolution, the HS mounting, and the data key
of each burst's seed), so the event it imaged can be rendered again at any instant.
:func:`ground_truth` renders it at the UHS frame times through the HS camera's
window and flips: the frames fusion tries to reconstruct, before any noise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xfusion_bluesky.devices.sim.event import SimEvent
from xfusion_bluesky.errors import InvalidInputError

__all__ = ["burst_seed_key", "ground_truth"]


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
        Instants after the trigger, e.g. the UHS frame times of one burst.
    burst_seed : int
        The burst's scene seed (the raw run's :func:`burst_seed_key` data).

    Returns
    -------
    ndarray, (T, H, W) float32
        In HS counts (the simulation's ``digitize`` scale, not rounded), on the
        HS frame as the camera is mounted (its offset and flips applied).

    Raises
    ------
    InvalidInputError
        The run was not simulated, or its HS window does not fit the field.
    """
    sim = _sim_block(start)
    event = SimEvent(
        sim["scene_family"],
        seed=int(sim["scene_seed"]),
        frame_period_s=float(sim["scene_frame_period_s"]),
        params=dict(sim.get("scene_params") or {}),
    )
    field_shape = (int(sim["field_shape_hr"][0]), int(sim["field_shape_hr"][1]))
    mount = sim.get("hs_mount") or {}
    y0, x0 = (int(v) for v in mount.get("offset_hr_px", (0, 0)))
    height, width = (int(v) for v in start["hs"]["frame_shape"])
    if min(y0, x0) < 0 or y0 + height > field_shape[0] or x0 + width > field_shape[1]:
        raise InvalidInputError(
            f"the HS window of {height}×{width} px at HR offset ({y0}, {x0}) does "
            f"not fit the simulated field of {field_shape[0]}×{field_shape[1]} px: "
            f"the start document of run {start.get('uid')} is inconsistent"
        )
    field = event.render(np.asarray(times_s), field_shape, seed=int(burst_seed))
    seen = field[:, y0 : y0 + height, x0 : x0 + width]
    if mount.get("flip_y"):
        seen = seen[:, ::-1, :]
    if mount.get("flip_x"):
        seen = seen[:, :, ::-1]
    full_scale = float(2 ** int(start["hs"].get("bit_depth", 16)) - 1)
    return np.ascontiguousarray(seen, dtype=np.float32) * np.float32(full_scale)


def _sim_block(start: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return the start document's ``sim`` block, or say the run has no truth."""
    sim = start.get("sim")
    if not sim:
        raise InvalidInputError(
            f"raw run {start.get('uid')} was not simulated: it has no ground truth "
            "(only runs of the simulated beamline carry a 'sim' block)"
        )
    return sim
