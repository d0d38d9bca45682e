"""The stored format: its version, and the v0 → v1 view that keeps old runs readable.

``docs/format.md`` is the reference for every key a raw or derived run stores.
Runs written before the format was versioned (v0: no ``xfusion_format`` key)
stay in the catalog untouched; readers see them through :func:`raw_start_v1`
and the fallbacks of :class:`~xfusion_bluesky.catalog.queries.FusedRun`, so the
rest of the package only knows the current names.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = [
    "DERIVED_LINK_KEYS",
    "FORMAT_KEY",
    "FORMAT_VERSION",
    "format_version",
    "raw_start_v1",
    "registration_v1",
]

#: Start-document key holding the format version of raw and derived runs.
FORMAT_KEY = "xfusion_format"
#: The version this code writes. 2 adds the derived run's ``outcome.missing_bursts``
#: and the orphan marker (``fusion.orphaned``); raw runs are as in 1. 3 adds the
#: full similarity registration and the measured latency (raw and derived runs),
#: and runs from cameras that only write files or from ingested recordings. 4 adds
#: the HR pass-through and the per-run adaptation of derived runs; raw runs are as
#: in 3.
FORMAT_VERSION = 4
#: Start-document keys that link a derived run to its raw run: v1, then v0.
DERIVED_LINK_KEYS = ("raw_uid", "derived_from")

# v0 → v1 renames inside a raw run's start document, block by block.
_V0_BLOCKS = {"lr": "uhs", "hr": "hs"}
_V0_TIMING = {
    "lr_frames_per_hr_frame": "hr_separation",
    "hr_offset_lr_frames": "hs_offset_uhs_periods",
}
_V0_REGISTRATION = {
    "flip_ud": "flip_y",
    "flip_lr": "flip_x",
    "hr_shape": "hs_shape",
    "lr_shape": "uhs_shape",
}


def format_version(start: dict[str, Any]) -> int:
    """Return the stored-format version of a run's start document (0 if unmarked).

    Raises
    ------
    ValueError
        The run was written by a newer format than this code reads.
    """
    version = int(start.get(FORMAT_KEY, 0))
    if version > FORMAT_VERSION:
        raise ValueError(
            f"run {start.get('uid')} is stored in format {FORMAT_KEY}={version}, "
            f"newer than this xfusion-bluesky reads ({FORMAT_VERSION}): upgrade it"
        )
    return version


def raw_start_v1(start: dict[str, Any]) -> dict[str, Any]:
    """Return a raw run's start document with the v1 names, whatever it was written in.

    Parameters
    ----------
    start : dict
        The start document as stored (not modified).

    Returns
    -------
    dict
        A copy in which v0's ``lr``/``hr`` blocks are ``uhs``/``hs``, flips are
        ``flip_y``/``flip_x`` and the HR spacing is ``timing.hr_separation``; a v1
        document comes back as an equal copy.
    """
    out = copy.deepcopy(dict(start))
    if format_version(out) >= 1:
        return out
    for old, new in _V0_BLOCKS.items():
        if old in out and new not in out:
            out[new] = out.pop(old)
    _rename(out.get("timing"), _V0_TIMING)
    _rename(out.get("registration"), _V0_REGISTRATION)
    _rename((out.get("sim") or {}).get("hs_mount"), _V0_REGISTRATION)
    return out


def registration_v1(block: dict[str, Any]) -> dict[str, Any]:
    """Return a registration record with v1 names (``flip_y``/``flip_x``, ...).

    A derived run's ``fusion.registration`` copies the raw run's block, so a v0
    derived run holds ``flip_ud``/``flip_lr`` there; this reads both.
    """
    out = dict(block)
    _rename(out, _V0_REGISTRATION)
    return out


def _rename(block: dict[str, Any] | None, names: dict[str, str]) -> None:
    if not isinstance(block, dict):
        return
    for old, new in names.items():
        if old in block and new not in block:
            block[new] = block.pop(old)
