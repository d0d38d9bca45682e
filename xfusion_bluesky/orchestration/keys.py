"""Names shared by the flows, their deployments and their submitters.

A flow run that fuses raw run ``uid`` carries the tag :func:`raw_tag` and, as its
Prefect idempotency key, the fusion key ``fuse_run`` gives the derived run
(:func:`submission_key`): a stop document seen twice (callback and websocket,
a catch-up racing the trigger) makes one flow run. A flow run that crashed keeps
its key, so its re-run gets another one (:func:`rerun_key`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "CATCH_UP_FLOW",
    "DEFAULT_NAME",
    "DEFAULT_POOL",
    "FUSE_DEPLOYMENT",
    "FUSE_FLOW",
    "base_key",
    "raw_tag",
    "rerun_key",
    "submission_key",
    "writer_of",
    "writer_tag",
]

#: The flow that fuses one raw run, and the one that catches up on missed runs.
FUSE_FLOW = "xfusion-fuse-run"
CATCH_UP_FLOW = "xfusion-catch-up"
#: Default deployment name (both flows) and work pool.
DEFAULT_NAME = "xfusion"
DEFAULT_POOL = "xfusion"
#: ``run_deployment`` name of the default fusion deployment.
FUSE_DEPLOYMENT = f"{FUSE_FLOW}/{DEFAULT_NAME}"
#: Separates a fusion key from its re-run number in an idempotency key.
RERUN_MARK = ":rerun-"
#: Prefix of the tag a fusion flow run gives itself: the process that fuses it.
WRITER_TAG = "writer:"


def raw_tag(raw_uid: str) -> str:
    """Return the tag of every flow run that fuses raw run ``raw_uid``."""
    return f"raw:{raw_uid}"


def writer_tag(host: str, pid: int) -> str:
    """Return the tag naming the process (host and pid) that runs a flow run."""
    return f"{WRITER_TAG}{host}:{int(pid)}"


def writer_of(tags: Iterable[str]) -> tuple[str, int] | None:
    """Return the (host, pid) a flow run's :func:`writer_tag` names, if it has one."""
    for tag in tags:
        if tag.startswith(WRITER_TAG):
            host, _, pid = tag[len(WRITER_TAG) :].rpartition(":")
            if host and pid.isdigit():
                return host, int(pid)
    return None


def rerun_key(key: str, attempt: int) -> str:
    """Return the idempotency key of the ``attempt``-th flow run of fusion ``key``.

    Attempt 0 is the key itself. Two catch-ups that see the same attempts make the
    same key, so they still submit one re-run between them.
    """
    return key if attempt == 0 else f"{key}{RERUN_MARK}{int(attempt)}"


def base_key(idempotency_key: str) -> str:
    """Return the fusion key in a flow run's idempotency key (undoes ``rerun_key``)."""
    return idempotency_key.split(RERUN_MARK)[0]


def submission_key(
    raw_start: Mapping[str, Any],
    *,
    method: str | None = None,
    model: str | None = None,
) -> str:
    """Return the fusion key ``fuse_run`` will give this raw run's derived run.

    Parameters
    ----------
    raw_start : mapping
        The raw run's start document.
    method, model : str, optional
        The deployment's overrides of the requested method and of the shipped
        weights (None: as ``fuse_run`` defaults them).

    Notes
    -----
    The key names the weights by their sha256, so this loads the network (and
    imports torch) once per process; the loader keeps it for the next call.
    """
    from xfusion_bluesky.catalog.choice import requested_fusion_key, requested_method
    from xfusion_bluesky.fusion.model.loader import load_network

    method = method or requested_method(raw_start)
    requested = raw_start.get("fusion") or {}
    separation = int(requested.get("lr_separation") or 1)
    info = load_network(method, model).info
    return requested_fusion_key(str(raw_start["uid"]), method, info, separation)
