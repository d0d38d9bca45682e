"""Find and read derived (fused) runs: ``fetch_fused(bl.tiled, uid)`` in one call.

A notebook user holds either the catalog ``setup()`` returned (``bl.tiled``) or a
client opened from a URL; both work. :class:`FusedRun` reads lazily: ``.frames``
is the Tiled array itself, so ``run.frames[100:110]`` fetches ten frames, not
the whole video. It reads derived runs of every stored format (``docs/format.md``):
v1 runs, and v0 runs (``derived_from``, outcome in the start document, per-frame
``frame``/``hr_before``/``hr_after``) written before the format was versioned.

A raw run can have several derived runs: the one its start document requested
(``fusion.method``) and baselines fused by hand. :func:`pick_fused` is the one
rule every lookup by raw uid follows (``fetch_fused``, ``show``, ``export``):
the requested method unless the caller names another.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xfusion_bluesky.catalog.choice import (
    DEFAULT_METHOD,
    pick_fused,
    report_choice,
    requested_method,
)
from xfusion_bluesky.catalog.connect import Catalogs, open_catalogs
from xfusion_bluesky.catalog.derived import DERIVED_SPEC
from xfusion_bluesky.catalog.waiting import (
    RUNNING_POLL_S,
    WaitProgress,
    not_found_message,
)
from xfusion_bluesky.stored_format import DERIVED_LINK_KEYS

__all__ = [
    "DEFAULT_METHOD",
    "FusedRun",
    "failed_runs_query",
    "fetch_fused",
    "find_by_key",
    "find_derived",
    "pick_fused",
    "requested_method",
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
    "hr_passed_through": "hr_passed_through",
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
    def method(self) -> str:
        """The fusion method (``fusion.method``): ``"edvr_stf"``, ``"bicubic"``, ..."""
        return str(self.fusion.get("method"))

    @property
    def missing_bursts(self) -> list[dict[str, Any]]:
        """Raw bursts not fused, each ``{"burst": k, "reason": ...}``; [] if none.

        Derived runs written before format 2 have no record: read as [].
        """
        return [dict(item) for item in self.outcome.get("missing_bursts") or []]

    @property
    def frames_written(self) -> int:
        """Fused frames stored so far; all of them once the run is finished.

        A worker sends frames in batches, so a running fusion shows its frames a
        batch behind.
        """
        try:
            return int(self.node["primary"]["fused"].shape[0])
        except KeyError:
            return 0

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
    def hr_passed_through(self) -> NDArray[np.bool_]:
        """The fused frame is the HS frame of its own instant, (T,).

        All False for runs stored before version 4, which never did it.
        """
        stored = self._score("hr_passed_through")
        if stored.size == 0:
            return np.zeros(self.hr_at_reference.shape, dtype=bool)
        return stored.astype(bool)

    @property
    def adaptations(self) -> list[dict[str, Any] | None]:
        """Each fused burst's adaptation record (held-out gain, weights' sha256).

        None for a burst fused without adaptation; see ``fuse(adapt=...)``.
        """
        return [b.get("adaptation") for b in self.outcome.get("bursts") or []]

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
    catalogs = open_catalogs(target, create=False)
    if catalogs.fused is None:
        return []
    return _derived_of(catalogs, str(_raw_start(catalogs, raw_uid)["uid"]))


def _derived_of(catalogs: Catalogs, full_uid: str) -> list[FusedRun]:
    from tiled.queries import Key

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
    progress: bool | None = None,
) -> FusedRun:
    """Return the fused result of raw run ``raw_uid``: one call in a notebook.

    Parameters
    ----------
    target : str, Tiled node, TiledConnection or Beamline
        ``bl.tiled``, a client from ``tiled.client.from_uri``, or a URI.
    raw_uid : str
        The raw run (a unique prefix works).
    wait : float, optional
        Seconds to wait for the worker to finish it; None returns at once. While
        a fusion runs, its frames written of the total are logged (INFO) and
        shown as a bar.
    method : str, optional
        The method's derived run; default the method the raw run requested
        (``fusion.method`` of its start document, else ``"edvr_stf"``), see
        :func:`pick_fused`.
    progress : bool, optional
        Show a progress bar while waiting for a running fusion; None: only on a
        terminal.

    Returns
    -------
    FusedRun
        Of that method: the newest finished successful derived run; else the
        newest finished one (a failure, with ``reason``); else one still being
        written (``wait=None``).

    Raises
    ------
    LookupError
        No derived run of that method (within ``wait`` seconds, if given); the
        message lists the methods there are, or says how far a running fusion
        got.
    KeyError
        No raw run ``raw_uid``.
    """
    deadline = None if wait is None else time.monotonic() + float(wait)
    catalogs = open_catalogs(target, create=False)
    raw_start = _raw_start(catalogs, raw_uid)
    full_uid, requested = str(raw_start["uid"]), requested_method(raw_start)
    waiting = WaitProgress(progress)
    try:
        while True:
            if catalogs.fused is None:  # no worker has written anything yet
                catalogs = open_catalogs(catalogs.root, create=False)
            runs = [] if catalogs.fused is None else _derived_of(catalogs, full_uid)
            candidates = pick_fused(runs, requested=requested, method=method)
            finished = [run for run in candidates if run.finished]
            succeeded = [run for run in finished if run.status == "success"]
            if succeeded or finished:
                chosen = (succeeded or finished)[-1]
                report_choice(chosen, requested, method)
                return chosen
            timed_out = deadline is not None and time.monotonic() >= deadline
            if candidates and deadline is None:
                return candidates[-1]
            if deadline is None or timed_out:
                raise LookupError(
                    not_found_message(
                        full_uid, runs, candidates, method or requested, wait
                    )
                )
            if candidates:
                waiting.show(candidates[-1])
            left = max(0.0, deadline - time.monotonic())
            time.sleep(min(RUNNING_POLL_S if candidates else POLL_S, left))
    finally:
        waiting.close()


def _raw_start(catalogs: Catalogs, raw_uid: str) -> dict[str, Any]:
    if catalogs.raw is None:
        return {"uid": raw_uid}
    return dict(catalogs.raw[raw_uid].start)


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
