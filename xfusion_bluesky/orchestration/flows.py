"""The Prefect flows: fuse one raw run, and catch up on the runs nobody fused.

``xfusion-fuse-run`` wraps :func:`~xfusion_bluesky.pipeline.fuse_run` for one raw
run. Its task is retried when Tiled is unreachable or answers 5xx (the run's
outcome is not known yet); a run that cannot be fused is recorded by ``fuse_run``
as a ``failed`` derived run, as everywhere else, and the flow run ends Failed
with that reason, without a retry. ``xfusion-catch-up`` runs on a schedule and
hands every fusion-requested raw run without a finished derived run to
:func:`~xfusion_bluesky.orchestration.recovery.catch_up`.

The worker's environment chooses where a flow run fuses, so one deployment
serves every GPU: ``XFUSION_DEVICE`` (``cuda:1``; default: CUDA when present) and
``XFUSION_TORCH_THREADS``. The Tiled API key comes from the worker's environment
too (``XFUSION_FUSION_API_KEY``, else ``XFUSION_TILED_API_KEY``): it never goes
into a deployment's parameters, which the Prefect UI shows.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed

from xfusion_bluesky.catalog.progress import STALE_AFTER_S
from xfusion_bluesky.errors import tiled_unavailable
from xfusion_bluesky.orchestration.keys import (
    CATCH_UP_FLOW,
    FUSE_DEPLOYMENT,
    FUSE_FLOW,
    writer_tag,
)

__all__ = [
    "RETRY_DELAYS_S",
    "catch_up_runs",
    "fuse_raw_run",
    "worker_device",
]

#: Waits before the task's retries on a transient Tiled error (s).
RETRY_DELAYS_S = [5.0, 20.0, 60.0]
#: Seconds a flow run waits for a raw run's stop document to reach Tiled.
STOP_WAIT_S = 30.0


def _retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's ``retry_condition_fn``: retry only a transient Tiled error."""
    try:
        err = state.result(raise_on_failure=False)
    except Exception as failure:  # the result itself could not be read
        err = failure
    return tiled_unavailable(err if isinstance(err, BaseException) else None)


def worker_device(device: str | None = None) -> str:
    """Return the torch device a flow run fuses on.

    ``device``, else the worker's ``XFUSION_DEVICE``, else CUDA when torch sees
    a GPU, else the CPU. With ``CUDA_VISIBLE_DEVICES=N`` per worker, ``cuda``
    is that worker's GPU.
    """
    chosen = device or os.environ.get("XFUSION_DEVICE") or "auto"
    if chosen != "auto":
        return chosen
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@contextlib.contextmanager
def _catalogs(tiled_uri: str) -> Iterator[Any]:
    """Open the Tiled server with the worker's API key; close it afterwards."""
    from xfusion_bluesky.catalog.connect import open_catalogs
    from xfusion_bluesky.catalog.lookup import server_address
    from xfusion_bluesky.settings import Settings

    uri, api_key = server_address(tiled_uri, Settings.from_env().fusion_api_key)
    catalogs = open_catalogs(uri, api_key=api_key)
    try:
        yield catalogs
    finally:
        catalogs.root.context.close()


@task(
    name="fuse-run",
    retries=len(RETRY_DELAYS_S),
    retry_delay_seconds=RETRY_DELAYS_S,
    retry_condition_fn=_retry_if_transient,
    cache_policy=NO_CACHE,
)
def fuse_task(
    raw_uid: str,
    tiled_uri: str,
    method: str | None,
    model: str | None,
    device: str,
    batch_size: int | None,
    wait_s: float,
    stale_after_s: float | None = None,
) -> dict[str, Any]:
    """Fuse one raw run through ``fuse_run``; return the derived run's outcome."""
    from xfusion_bluesky.pipeline import fuse_run

    with _catalogs(tiled_uri) as catalogs:
        fused = fuse_run(
            catalogs,
            raw_uid,
            method=method,
            model=model,
            device=device,
            batch_size=batch_size,
            wait_s=wait_s,
            stale_after_s=STALE_AFTER_S if stale_after_s is None else stale_after_s,
        )
        return {
            "raw_uid": raw_uid,
            "derived_uid": fused.uid,
            "status": fused.status,
            "reason": fused.reason,
            "frames": fused.outcome.get("frames_written"),
            "key": fused.fusion.get("key"),
            "device": device,
        }


@flow(name=FUSE_FLOW, log_prints=False, validate_parameters=True)
def fuse_raw_run(
    raw_uid: str,
    tiled_uri: str,
    method: str | None = None,
    model: str | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    wait_s: float = STOP_WAIT_S,
    stale_after_s: float | None = None,
) -> Any:
    """Fuse raw run ``raw_uid`` of the Tiled server at ``tiled_uri`` into a derived run.

    Parameters
    ----------
    raw_uid : str
        The raw run.
    tiled_uri : str
        The Tiled server (``http://host:8000/api/v1``), without an API key.
    method, model : str, optional
        Override the start document's method; a checkpoint instead of the shipped
        weights.
    device : str, optional
        Default :func:`worker_device`.
    batch_size : int, optional
        Windows per forward pass.
    wait_s : float
        How long to wait for the stop document of a run still being written.
    stale_after_s : float, optional
        Replace an unfinished derived run of the same fusion this old (s) when
        its writer cannot be checked; a re-run gets 0, since the catch-up
        submits one only once every earlier flow run has ended. Default
        ``fuse_run``'s.

    Returns
    -------
    dict or State
        The outcome (derived uid, status, reason, frames); a Failed state with
        the reason when the derived run records a failure.
    """
    threads = os.environ.get("XFUSION_TORCH_THREADS")
    if threads:
        import torch

        torch.set_num_threads(max(1, int(threads)))
    device = worker_device(device)
    _tag_writer()
    outcome = fuse_task(
        raw_uid, tiled_uri, method, model, device, batch_size, wait_s, stale_after_s
    )
    logger = get_run_logger()
    logger.info(
        "raw run %s: %s -> derived run %s on %s%s",
        raw_uid[:8],
        outcome["status"],
        outcome["derived_uid"],
        device,
        f": {outcome['reason']}" if outcome["reason"] else "",
    )
    if outcome["status"] == "failed":
        # Recorded in Tiled already; Failed makes it visible in the Prefect UI.
        return Failed(message=f"fusion failed: {outcome['reason']}", data=outcome)
    return outcome


def _tag_writer() -> None:
    """Tag this flow run with its host and pid: the catch-up checks them.

    Best effort: without the tag, a lost flow run is found by its heartbeats
    or its age instead.
    """
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(flow_run.id)
            tag = writer_tag(socket.gethostname(), os.getpid())
            client.update_flow_run(run.id, tags=[*run.tags, tag])
    except Exception:  # the fusion matters more than the tag
        get_run_logger().warning("could not tag the flow run with its process")


@flow(name=CATCH_UP_FLOW, log_prints=False, validate_parameters=True)
def catch_up_runs(
    tiled_uri: str,
    deployment: str = FUSE_DEPLOYMENT,
    method: str | None = None,
    model: str | None = None,
    since_s: float | None = 7 * 86400.0,
    heartbeat_s: float | None = None,
    orphan_after_s: float | None = 3600.0,
) -> dict[str, Any]:
    """Submit every fusion-requested raw run that has no finished derived run.

    Parameters
    ----------
    tiled_uri : str
        The Tiled server, without an API key.
    deployment : str
        The fusion deployment (``flow/deployment``).
    method, model : str, optional
        The fusion deployment's overrides, for the idempotency keys.
    since_s : float, optional
        Only raw runs started in the last ``since_s`` seconds; None: all.
    heartbeat_s : float, optional
        The fusion flow runs' heartbeat period (s), when the deployment sets one:
        a running flow run silent for three periods lost its worker.
    orphan_after_s : float, optional
        Mark raw runs without a stop document this long as orphaned; None: never.

    Returns
    -------
    dict
        :class:`~xfusion_bluesky.orchestration.recovery.CatchUpReport` as a dict.
    """
    from xfusion_bluesky.orchestration.recovery import catch_up

    with _catalogs(tiled_uri) as catalogs:
        report = catch_up(
            catalogs,
            deployment,
            method=method,
            model=model,
            since_s=since_s,
            heartbeat_s=heartbeat_s,
            orphan_after_s=orphan_after_s,
        )
    get_run_logger().info("%s", report.summary())
    return report.as_dict()
