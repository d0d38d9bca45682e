"""Find and read derived (fused) runs: ``fetch_fused(bl.tiled, uid)`` in one call.

A notebook user holds either the catalog ``setup()`` returned (``bl.tiled``) or a
client opened from a URL; both work. :class:`FusedRun` reads lazily: ``.frames``
is the Tiled array itself, so ``run.frames[100:110]`` fetches ten frames, not
the whole video.
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

__all__ = ["FusedRun", "fetch_fused", "find_by_key", "find_derived"]

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
        """The start document: ``derived_from``, ``fusion``, ``status``, ..."""
        return dict(self.node.start)

    @property
    def raw_uid(self) -> str:
        """The raw run it was derived from."""
        return str(self.node.start["derived_from"])

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
        stop = self.node.metadata.get("stop") or {}
        return str(self.node.start.get("reason") or stop.get("reason") or "")

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
        for stream, keys in (
            (
                "primary",
                (
                    "backward_attention",
                    "forward_attention",
                    "frame_time_s",
                    "burst",
                    "frame",
                    "hr_before",
                    "hr_after",
                    "hr_at_reference",
                ),
            ),
            (
                "normalized",
                ("normalized_backward_attention", "normalized_forward_attention"),
            ),
        ):
            if stream not in self.node:
                continue
            for key in keys:
                out[key] = np.asarray(self.node[stream][key].read())
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
    def hr_before(self) -> NDArray[np.int64]:
        """HS frame (in its raw burst) used as "before", (T,)."""
        return self._score("hr_before").astype(np.int64)

    @property
    def hr_after(self) -> NDArray[np.int64]:
        """HS frame (in its raw burst) used as "after", (T,)."""
        return self._score("hr_after").astype(np.int64)

    @property
    def hr_at_reference(self) -> NDArray[np.bool_]:
        """The HS frame before was taken at the frame's own instant, (T,)."""
        return self._score("hr_at_reference").astype(bool)

    @property
    def burst(self) -> NDArray[np.int64]:
        """Raw burst number of each fused frame, (T,)."""
        return self._score("burst").astype(np.int64)

    def __repr__(self) -> str:
        fusion = self.metadata.get("fusion") or {}
        return (
            f"<FusedRun {self.uid[:8]} of raw {self.raw_uid[:8]}: "
            f"{fusion.get('method')} {self.status}"
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
    return _search(catalogs, Key("start.derived_from") == full_uid)


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
            if method in (None, (run.metadata.get("fusion") or {}).get("method"))
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
    return sorted(runs, key=lambda run: float(run.node.start.get("time", 0.0)))
