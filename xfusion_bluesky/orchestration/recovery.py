"""The catch-up: submit what nobody fused, and re-run what a dead worker left.

First, every running flow run of the fusion deployment whose worker is gone (see
below) is set Crashed, so that Prefect shows what happened. Then every
fusion-requested raw run with a stop document and no finished derived run
(:func:`~xfusion_bluesky.catalog.progress.pending_runs`) is looked up among the
fusion deployment's flow runs by its tag (:func:`~.keys.raw_tag`):

- none: it is submitted with its fusion key as idempotency key (a trigger that
  submits it too makes no second flow run);
- one scheduled, pending or running on a live worker: it is left alone;
- one running on a worker that is gone: that flow run is set Crashed, and the
  raw run is submitted again under :func:`~.keys.rerun_key`, since Prefect would
  answer the crashed flow run's own key with the crashed run;
- only finished ones (failed after its retries, crashed, or completed while
  another writer held the run): submitted again, under the next re-run key;
- cancelled by a person: left alone, and reported.

A running flow run has lost its worker by the project's stale-run rule, the
one :func:`~xfusion_bluesky.catalog.progress.is_abandoned` applies to derived
runs: the process it tagged itself with (:func:`~.keys.writer_tag`) is gone from
this host. On another host, its Prefect heartbeats
(``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``, set by :func:`~.deploy.deploy`) stopped
for three periods; with no heartbeats, it has run longer than ``stale_after_s``.
A re-run is submitted only once every earlier flow run has ended, so its
``fuse_run`` takes any unfinished derived run of the same fusion as abandoned
(``stale_after_s=0``; a live writer of this host is still asked first), deletes
it and writes its own: the raw run still ends with exactly one.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, cast

from xfusion_bluesky.catalog.progress import STALE_AFTER_S, pending_runs, process_gone
from xfusion_bluesky.orchestration.keys import (
    base_key,
    raw_tag,
    rerun_key,
    submission_key,
    writer_of,
)

__all__ = ["Attempt", "CatchUpReport", "catch_up", "next_submission"]

logger = logging.getLogger(__name__)

#: Prefect state types of a flow run that will still fuse (or is fusing).
ACTIVE_STATES = frozenset({"SCHEDULED", "PENDING", "RUNNING", "PAUSED"})
#: Missed heartbeat periods after which a running flow run is taken as lost.
MISSED_HEARTBEATS = 3


@dataclass(frozen=True)
class Attempt:
    """One flow run of the fusion deployment for a raw run.

    Attributes
    ----------
    flow_run_id : str
    key : str or None
        Its idempotency key.
    state : str
        Prefect state type (``"RUNNING"``, ``"CRASHED"``, ...).
    alive : bool
        For a running flow run: whether its worker still fuses it.
    """

    flow_run_id: str
    key: str | None
    state: str
    alive: bool = True


def next_submission(
    key: str, attempts: Iterable[Attempt]
) -> tuple[str | None, list[str]]:
    """Decide what the catch-up does for one pending raw run.

    Parameters
    ----------
    key : str
        The raw run's fusion key.
    attempts : iterable of Attempt
        The flow runs that fuse this raw run (any key; only this fusion's count).

    Returns
    -------
    str or None
        The idempotency key to submit under; None: submit nothing.
    list of str
        Running flow runs whose worker is gone: to be set Crashed.
    """
    mine = [a for a in attempts if a.key is not None and base_key(a.key) == key]
    lost = [a.flow_run_id for a in mine if a.state == "RUNNING" and not a.alive]
    if any(a.state in ACTIVE_STATES and a.flow_run_id not in lost for a in mine):
        return None, lost
    if any(a.state == "CANCELLED" for a in mine):
        return None, lost  # a person stopped it; fuse it by hand if wanted
    return rerun_key(key, len(mine)), lost


@dataclass
class CatchUpReport:
    """What one catch-up did; ``as_dict()`` is the flow run's result."""

    pending: int = 0
    submitted: list[str] = field(default_factory=list)
    crashed: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return the report as plain values."""
        return asdict(self)

    def summary(self) -> str:
        """Return one line for the log."""
        return (
            f"{self.pending} pending raw run(s): {len(self.submitted)} submitted, "
            f"{len(self.waiting)} already on a worker, {len(self.crashed)} lost "
            f"flow run(s) set Crashed, {len(self.cancelled)} cancelled by hand, "
            f"{len(self.orphaned)} orphaned, {len(self.errors)} error(s)"
        )


def catch_up(
    catalogs: Any,
    deployment: str,
    *,
    method: str | None = None,
    model: str | None = None,
    since_s: float | None = 7 * 86400.0,
    heartbeat_s: float | None = None,
    orphan_after_s: float | None = None,
    stale_after_s: float = STALE_AFTER_S,
) -> CatchUpReport:
    """Submit every pending raw run that no live flow run fuses (module docstring).

    Parameters
    ----------
    catalogs : Catalogs
        The Tiled server's containers.
    deployment : str
        The fusion deployment, ``"flow/deployment"``.
    method, model : str, optional
        The fusion deployment's overrides, for the idempotency keys.
    since_s : float, optional
        Only raw runs started in the last ``since_s`` seconds; None: every one.
    heartbeat_s : float, optional
        The fusion flow runs' heartbeat period, when they send heartbeats.
    orphan_after_s : float, optional
        Mark raw runs without a stop document this long (s) as orphaned.
    stale_after_s : float
        A running flow run with no other sign of life is lost after this long.

    Returns
    -------
    CatchUpReport
    """
    from prefect.client.orchestration import get_client

    from xfusion_bluesky.orchestration.submit import submit_flow_run

    since = None if since_s is None else _now().timestamp() - float(since_s)
    report = CatchUpReport()
    if orphan_after_s is not None:
        report.orphaned = _mark_orphans(catalogs, orphan_after_s, since)
    uids = pending_runs(catalogs, since=since)
    report.pending = len(uids)
    with get_client(sync_client=True) as client:
        deployment_id = client.read_deployment_by_name(deployment).id
        # A lost flow run may have written its derived run before it died: no
        # raw run waits for it, but Prefect would show it Running for ever.
        for flow_run in _running(client, deployment_id):
            if not _is_alive(client, flow_run, heartbeat_s, stale_after_s):
                _set_crashed(client, str(flow_run.id))
                report.crashed.append(str(flow_run.id))
        for uid in uids:
            try:
                key = submission_key(
                    catalogs.raw[uid].start, method=method, model=model
                )
                attempts = _attempts(
                    client, deployment_id, uid, heartbeat_s, stale_after_s
                )
                submit_key, lost = next_submission(key, attempts)
                for flow_run_id in lost:
                    _set_crashed(client, flow_run_id)
                    report.crashed.append(flow_run_id)
                if submit_key is None:
                    cancelled = any(a.state == "CANCELLED" for a in attempts)
                    (report.cancelled if cancelled else report.waiting).append(uid)
                    continue
                # Every earlier attempt has ended: what it left unfinished is
                # abandoned, on whichever host it ran.
                rerun = {"stale_after_s": 0.0} if submit_key != key else None
                submit_flow_run(deployment, uid, submit_key, rerun)
                report.submitted.append(uid)
            except Exception as err:  # one bad run must not stop the others
                logger.exception("catch-up could not handle raw run %s", uid)
                report.errors.append(f"{uid}: {type(err).__name__}: {err}")
    return report


def _running(client: Any, deployment_id: Any) -> list[Any]:
    """Return the deployment's running flow runs."""
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    running = FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING]))
    return list(
        client.read_flow_runs(
            flow_run_filter=FlowRunFilter(state=running),
            deployment_filter=DeploymentFilter(
                id=DeploymentFilterId(any_=[deployment_id])
            ),
        )
    )


def _attempts(
    client: Any,
    deployment_id: Any,
    uid: str,
    heartbeat_s: float | None,
    stale_after_s: float,
) -> list[Attempt]:
    """Return the deployment's flow runs for raw run ``uid``, judged alive or not."""
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterTags,
    )

    flow_runs = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[raw_tag(uid)])),
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
    )
    attempts = []
    for flow_run in flow_runs:
        state = flow_run.state.type.name if flow_run.state else "SCHEDULED"
        alive = True
        if state == "RUNNING":
            alive = _is_alive(client, flow_run, heartbeat_s, stale_after_s)
        attempts.append(
            Attempt(str(flow_run.id), flow_run.idempotency_key, state, alive)
        )
    return attempts


def _is_alive(
    client: Any,
    flow_run: Any,
    heartbeat_s: float | None,
    stale_after_s: float,
) -> bool:
    """Tell whether a running flow run's worker still fuses it (module docstring)."""
    writer = writer_of(flow_run.tags or [])
    if writer is not None:
        gone = process_gone(*writer)
        if gone is not None:
            return not gone
    started = flow_run.start_time or flow_run.expected_start_time
    if heartbeat_s:
        window = dt.timedelta(seconds=MISSED_HEARTBEATS * float(heartbeat_s))
        if started is not None and _now() - started < window:
            return True
        return _heard_since(client, flow_run.id, _now() - window)
    return started is None or (_now() - started).total_seconds() < stale_after_s


def _heard_since(client: Any, flow_run_id: Any, since: dt.datetime) -> bool:
    """Tell whether the flow run sent a heartbeat since ``since``."""
    from prefect.events.filters import (
        EventFilter,
        EventNameFilter,
        EventOccurredFilter,
        EventResourceFilter,
    )

    page = client.read_events(
        filter=EventFilter(
            event=EventNameFilter(name=["prefect.flow-run.heartbeat"]),
            resource=EventResourceFilter(id=[f"prefect.flow-run.{flow_run_id}"]),
            occurred=EventOccurredFilter(since=cast(Any, since)),
        ),
        limit=1,
    )
    return bool(page.events)


def _set_crashed(client: Any, flow_run_id: str) -> None:
    """Record in Prefect that a flow run lost its worker."""
    from prefect.states import Crashed

    message = "its worker is gone (xfusion catch-up): fused again by a re-run"
    client.set_flow_run_state(flow_run_id, Crashed(message=message), force=True)
    logger.warning("flow run %s lost its worker: set Crashed", flow_run_id)


def _mark_orphans(catalogs: Any, after_s: float, since: float | None) -> list[str]:
    """Mark raw runs with no stop document for ``after_s`` as orphaned."""
    from xfusion_bluesky.catalog.orphans import mark_orphan, orphaned_runs

    marked = []
    for uid, start in orphaned_runs(catalogs, after_s=after_s, since=since):
        mark_orphan(catalogs, uid, start, after_s=after_s)
        marked.append(uid)
    return marked


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
