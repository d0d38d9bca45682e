"""Find and read derived (fused) runs: ``fetch_fused(bl.tiled, uid)`` in one call.

A notebook user holds either the catalog ``setup()`` returned (``bl.tiled``) or a
client opened from a URL; both work. :class:`FusedRun` reads lazily: ``.frames``
is the Tiled array itself, so ``run.frames[100:110]`` fetches ten frames, not
the whole video. It reads derived runs of every stored format (``docs/format.md``):
v1 runs, and v0 runs (``derived_from``, outcome in the start document, per-frame
``frame``/``hr_before``/``hr_after``) written before the format was versioned.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xfusion_bluesky.catalog.connect import Catalogs, open_catalogs
from xfusion_bluesky.catalog.derived import DERIVED_SPEC
from xfusion_bluesky.stored_format import DERIVED_LINK_KEYS

__all__ = [
    "FusedRun",
    "failed_runs_query",
    "fetch_fused",
    "find_by_key",
    "find_derived",
]

#: Per-frame keys of the ``primary`` stream: v1 name → v0 name.
_FRAME_KEYS = {
    "backward_attention": "backward_attention",
    "forward_attention": "forward_attention",
    "frame_time_s": "frame_time_s",
    "burst": "burst",
    "uhs_frame": "frame",
    "hs_before": "hr_before",
    "hs_after": "hr_after",
    "hr_at_reference": "hr_at_reference",
}
_NORMALIZED_KEYS = ("normalized_backward_attention", "normalized_forward_attention")

#: Seconds between two looks at the catalog while waiting for a derived run.
POLL_S = 0.5


@dataclass
class FusedRun:
    """A derived run: fused frames, attention scores and provenance.

    Attributes
    ----------
    node : BlueskyRunV3
        The derived run's Tiled node.
    catalogs : Catalogs
        Where it (and its raw run) live.
    """

    node: Any
    catalogs: Catalogs

    @classmethod
    def open(cls, catalogs: Catalogs, uid: str) -> FusedRun:
        """Return derived run ``uid`` of ``catalogs``."""
        return cls(catalogs.fused[uid], catalogs)

    @property
    def uid(self) -> str:
        """The derived run's uid."""
        return str(self.node.start["uid"])

    @property
    def metadata(self) -> dict[str, Any]:
        """The start document: ``raw_uid``, ``operation``, ``fusion``, ..."""
        return dict(self.node.start)

    @property
    def fusion(self) -> dict[str, Any]:
        """How it was fused: method, model, parameters (the start's ``fusion``)."""
        return dict(self.node.start.get("fusion") or {})

    @property
    def stop(self) -> dict[str, Any]:
        """The stop document; empty while the run is being written."""
        return dict(self.node.metadata.get("stop") or {})

    @property
    def outcome(self) -> dict[str, Any]:
        """How it ended: ``status``, ``bursts``, timings, a failure's ``traceback``.

        Empty while the run is being written. A v0 run kept these in its start
        document; they are read from there.
        """
        stop = self.stop
        if not stop:
            return {}
        if "outcome" in stop:
            return dict(stop["outcome"])
        start, fusion = self.node.start, self.fusion
        keys = ("finished", "wall_time_s", "frames_written", "bursts")
        return {
            "status": self.status,
            **{key: fusion[key] for key in keys if key in fusion},
            "traceback": str(start.get("traceback") or ""),
        }

    @property
    def raw_uid(self) -> str:
        """The raw run it was derived from."""
        start = self.node.start
        return str(next(start[key] for key in DERIVED_LINK_KEYS if key in start))

    @property
    def raw(self) -> Any:
        """The raw run's Tiled node."""
        return self.catalogs.raw[self.raw_uid]

    @property
    def finished(self) -> bool:
        """True once the run has a stop document."""
        return bool(self.node.metadata.get("stop"))

    @property
    def status(self) -> str:
        """``"success"``, ``"failed"``, or ``"running"`` while the worker writes it."""
        stop = self.node.metadata.get("stop")
        if not stop:
            return "running"
        return "success" if stop.get("exit_status") == "success" else "failed"

    @property
    def reason(self) -> str:
        """Why it failed (one line); empty for a success."""
        return str(self.stop.get("reason") or self.node.start.get("reason") or "")

    @property
    def frames(self) -> Any:
        """Fused frames, (T, H, W) uint16 in HS counts; lazy: slice what you need.

        Raises
        ------
        LookupError
            The run holds no frames (it failed before fusing).
        """
        if "primary" not in self.node:
            raise LookupError(
                f"derived run {self.uid} holds no frames (status {self.status!r}"
                + (f": {self.reason})" if self.reason else ")")
            )
        return self.node["primary"]["fused"]

    @cached_property
    def _scores(self) -> dict[str, NDArray[Any]]:
        out: dict[str, NDArray[Any]] = {}
        if "primary" in self.node:
            stream = self.node["primary"]
            for key, v0_key in _FRAME_KEYS.items():
                for stored in (key, v0_key):
                    if stored in stream:
                        out[key] = np.asarray(stream[stored].read())
                        break
        if "normalized" in self.node:
            for key in _NORMALIZED_KEYS:
                out[key] = np.asarray(self.node["normalized"][key].read())
        return out

    def _score(self, key: str) -> NDArray[Any]:
        if self.status == "running":
            self.__dict__.pop("_scores", None)  # still growing: read afresh
        return self._scores.get(key, np.empty(0))

    @property
    def backward_attention(self) -> NDArray[np.float64]:
        """Raw backward attention score per frame, (T,)."""
        return self._score("backward_attention").astype(np.float64)

    @property
    def forward_attention(self) -> NDArray[np.float64]:
        """Raw forward attention score per frame, (T,)."""
        return self._score("forward_attention").astype(np.float64)

    @property
    def normalized_backward_attention(self) -> NDArray[np.float64]:
        """Backward score normalised at the preceding HR frame (NaN if undefined)."""
        return self._score("normalized_backward_attention").astype(np.float64)

    @property
    def normalized_forward_attention(self) -> NDArray[np.float64]:
        """Forward score normalised at the preceding HR frame (NaN if undefined)."""
        return self._score("normalized_forward_attention").astype(np.float64)

    @property
    def frame_times_s(self) -> NDArray[np.float64]:
        """Each fused frame's time after the trigger, (T,)."""
        return self._score("frame_time_s").astype(np.float64)

    @property
    def uhs_frame(self) -> NDArray[np.int64]:
        """UHS frame number (in its raw burst) of each reference frame, (T,)."""
        return self._score("uhs_frame").astype(np.int64)

    @property
    def hs_before(self) -> NDArray[np.int64]:
        """HS frame number (in its raw burst) used as the HR frame before, (T,)."""
        return self._score("hs_before").astype(np.int64)

    @property
    def hs_after(self) -> NDArray[np.int64]:
        """HS frame number (in its raw burst) used as the HR frame after, (T,)."""
        return self._score("hs_after").astype(np.int64)

    @property
    def hr_at_reference(self) -> NDArray[np.bool_]:
        """The HS frame before was taken at the frame's own instant, (T,)."""
        return self._score("hr_at_reference").astype(bool)

    @property
    def burst(self) -> NDArray[np.int64]:
        """Raw burst number of each fused frame, (T,)."""
        return self._score("burst").astype(np.int64)

    def __repr__(self) -> str:
        return (
            f"<FusedRun {self.uid[:8]} of raw {self.raw_uid[:8]}: "
            f"{self.fusion.get('method')} {self.status}"
            + (f" ({self.reason})" if self.reason else "")
            + ">"
        )


def find_derived(target: Any, raw_uid: str) -> list[FusedRun]:
    """List every derived run of raw run ``raw_uid``, oldest first.

    Parameters
    ----------
    target : str, Tiled node, TiledConnection or Beamline
        Where the runs are (``bl.tiled`` works).
    raw_uid : str
        The raw run (a unique prefix works).
    """
    from tiled.queries import Key

    catalogs = open_catalogs(target, create=False)
    if catalogs.fused is None:
        return []
    full_uid = _full_uid(catalogs, raw_uid)
    runs: dict[str, FusedRun] = {}
    for link in DERIVED_LINK_KEYS:  # v1 runs, then runs stored before v1
        for run in _search(catalogs, Key(f"start.{link}") == full_uid):
            runs.setdefault(run.uid, run)
    return sorted(runs.values(), key=_start_time)


def failed_runs_query() -> Any:
    """Return the Tiled query that finds every failed derived run, in one search.

    Examples
    --------
    >>> failed = bl.tiled.fused.search(failed_runs_query())  # doctest: +SKIP
    >>> [run.metadata["stop"]["reason"] for run in failed.values()]  # doctest: +SKIP
    """
    from tiled.queries import Key

    return Key("stop.exit_status") == "fail"


def find_by_key(catalogs: Catalogs, key: str) -> list[FusedRun]:
    """List the derived runs whose fusion identity is ``key``, oldest first."""
    from tiled.queries import Key

    return _search(catalogs, Key("start.fusion.key") == key)


def fetch_fused(
    target: Any,
    raw_uid: str,
    *,
    wait: float | None = None,
    method: str | None = None,
) -> FusedRun:
    """Return the fused result of raw run ``raw_uid``: one call in a notebook.

    Parameters
    ----------
    target : str, Tiled node, TiledConnection or Beamline
        ``bl.tiled``, a client from ``tiled.client.from_uri``, or a URI.
    raw_uid : str
        The raw run (a unique prefix works).
    wait : float, optional
        Seconds to wait for the worker to finish it; None returns at once.
    method : str, optional
        Only derived runs of this method.

    Returns
    -------
    FusedRun
        The newest finished successful derived run; else the newest finished one
        (a failure, with ``reason``); else one still being written (``wait=None``).

    Raises
    ------
    LookupError
        No derived run of ``raw_uid`` (within ``wait`` seconds, if given).
    KeyError
        No raw run ``raw_uid``.
    """
    deadline = None if wait is None else time.monotonic() + float(wait)
    catalogs = open_catalogs(target, create=False)
    while True:
        if catalogs.fused is None:  # no worker has written anything yet
            catalogs = open_catalogs(catalogs.root, create=False)
        runs = [
            run
            for run in find_derived(catalogs, raw_uid)
            if method in (None, run.fusion.get("method"))
        ]
        finished = [run for run in runs if run.finished]
        succeeded = [run for run in finished if run.status == "success"]
        if succeeded or finished:
            return (succeeded or finished)[-1]
        if deadline is None or time.monotonic() >= deadline:
            if runs and deadline is None:
                return runs[-1]
            waited = "" if wait is None else f" within {wait:g} s"
            raise LookupError(
                f"raw run {raw_uid} has no "
                + ("finished " if runs else "")
                + f"derived run{waited}: is a fusion worker running? "
                "(`xfusion-bluesky worker` or `xfusion-bluesky fuse UID`)"
            )
        time.sleep(POLL_S)


def _full_uid(catalogs: Catalogs, raw_uid: str) -> str:
    if catalogs.raw is None:
        return raw_uid
    return str(catalogs.raw[raw_uid].start["uid"])


def _search(catalogs: Catalogs, query: Any) -> list[FusedRun]:
    hits = catalogs.fused.search(query)
    runs = [
        FusedRun(node, catalogs)
        for node in hits.values()
        if any(spec.name == DERIVED_SPEC for spec in node.specs)
    ]
    return sorted(runs, key=_start_time)


def _start_time(run: FusedRun) -> float:
    return float(run.node.start.get("time", 0.0))
