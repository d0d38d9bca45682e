"""Create or update the fusion and catch-up deployments on a Prefect work pool.

``xfusion-bluesky deploy --tiled URL`` calls :func:`deploy`. Both flows are
deployed by module path (``xfusion_bluesky.orchestration.flows``), so a worker
needs this package installed and nothing pulled from storage. The work pool is a
``process`` pool: each ``prefect worker start --pool POOL --limit 1`` runs one flow
run at a time in a fresh process, one worker per GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.orchestration import require_prefect
from xfusion_bluesky.orchestration.keys import (
    CATCH_UP_FLOW,
    DEFAULT_NAME,
    DEFAULT_POOL,
    FUSE_FLOW,
)

__all__ = ["HEARTBEAT_S", "Deployed", "deploy", "worker_commands"]

#: Seconds between a fusion flow run's heartbeats (Prefect's minimum is 30): the
#: catch-up takes a flow run silent for three of them as lost.
HEARTBEAT_S = 30
#: Seconds between two catch-ups.
CATCH_UP_EVERY_S = 300.0


@dataclass(frozen=True)
class Deployed:
    """The deployments :func:`deploy` created or updated.

    Attributes
    ----------
    fuse, catch_up : str
        ``run_deployment`` names, ``"flow/deployment"``.
    pool : str
        The work pool.
    ids : tuple of str
        Their Prefect ids.
    """

    fuse: str
    catch_up: str
    pool: str
    ids: tuple[str, ...]


def deploy(
    tiled_uri: str,
    *,
    pool: str = DEFAULT_POOL,
    name: str = DEFAULT_NAME,
    method: str | None = None,
    model: str | None = None,
    catch_up_every_s: float | None = CATCH_UP_EVERY_S,
    since_s: float | None = 7 * 86400.0,
    heartbeat_s: int | None = HEARTBEAT_S,
    orphan_after_s: float | None = 3600.0,
) -> Deployed:
    """Create or update both deployments on ``pool`` (created if missing).

    Parameters
    ----------
    tiled_uri : str
        The Tiled server the flows read and write, without an API key: the
        workers take it from their environment (``XFUSION_FUSION_API_KEY``).
    pool : str
        The Prefect work pool (a ``process`` pool is made if there is none).
    name : str
        The deployments' name (``xfusion-fuse-run/NAME``, ``xfusion-catch-up/NAME``).
    method, model : str, optional
        Fuse every run with this method / checkpoint instead of what it asks for.
    catch_up_every_s : float, optional
        Seconds between scheduled catch-ups; None: no schedule.
    since_s : float, optional
        The catch-up looks this far back (s); None: every run.
    heartbeat_s : int, optional
        Fusion flow runs send a heartbeat this often (``>= 30``); None: none, and
        a lost flow run on another host is found only by its age.
    orphan_after_s : float, optional
        The catch-up marks raw runs without a stop document this long as orphaned.

    Returns
    -------
    Deployed

    Raises
    ------
    InvalidInputError
        The URI carries an API key (the Prefect UI shows parameters), the
        heartbeat is under Prefect's 30 s minimum, or Prefect is not installed.
    """
    require_prefect("deploy")
    from prefect.client.schemas.objects import (
        ConcurrencyLimitConfig,
        ConcurrencyLimitStrategy,
    )
    from prefect.types.entrypoint import EntrypointType

    from xfusion_bluesky.orchestration.flows import catch_up_runs, fuse_raw_run

    if "api_key" in parse_qs(urlsplit(tiled_uri).query):
        raise InvalidInputError(
            "the Tiled URI carries an API key, which the deployment would show in "
            "the Prefect UI: deploy the bare URI and give the workers the key in "
            "XFUSION_FUSION_API_KEY"
        )
    if heartbeat_s is not None and heartbeat_s < HEARTBEAT_S:
        raise InvalidInputError(
            f"heartbeat_s must be >= {HEARTBEAT_S} s (Prefect's minimum); "
            f"got {heartbeat_s}"
        )
    ensure_pool(pool)
    overrides = {"method": method, "model": model}
    env = (
        {}
        if heartbeat_s is None
        else {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(heartbeat_s)}
    )
    fuse: Any = fuse_raw_run.to_deployment(
        name=name,
        parameters={"tiled_uri": tiled_uri, **overrides},
        job_variables={"env": env},
        entrypoint_type=EntrypointType.MODULE_PATH,
        description="Fuse one raw run (xfusion-bluesky): Tiled in, derived run out.",
        tags=["xfusion"],
    )
    catch_up: Any = catch_up_runs.to_deployment(
        name=name,
        parameters={
            "tiled_uri": tiled_uri,
            "deployment": f"{FUSE_FLOW}/{name}",
            "since_s": since_s,
            "heartbeat_s": heartbeat_s,
            "orphan_after_s": orphan_after_s,
            **overrides,
        },
        interval=catch_up_every_s,
        # A catch-up that finds the last one still running has nothing to add.
        concurrency_limit=ConcurrencyLimitConfig(
            limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
        ),
        entrypoint_type=EntrypointType.MODULE_PATH,
        description="Submit every requested raw run with no finished derived run.",
        tags=["xfusion"],
    )
    ids = [runner.apply(work_pool_name=pool) for runner in (fuse, catch_up)]
    return Deployed(
        fuse=f"{FUSE_FLOW}/{name}",
        catch_up=f"{CATCH_UP_FLOW}/{name}",
        pool=pool,
        ids=tuple(str(i) for i in ids),
    )


def ensure_pool(pool: str) -> Any:
    """Return work pool ``pool``, created as a ``process`` pool when missing."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            return client.read_work_pool(pool)
        except ObjectNotFound:
            pass
        try:
            return client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        except ObjectAlreadyExists:  # another deploy made it meanwhile
            return client.read_work_pool(pool)


def worker_commands(pool: str, gpus: int = 1) -> list[str]:
    """Return the command that starts one Prefect worker per GPU on a node."""
    if gpus <= 0:
        return [f"XFUSION_DEVICE=cpu prefect worker start --pool {pool} --limit 1"]
    # Worker names are unique per pool: the host goes in.
    return [
        f"CUDA_VISIBLE_DEVICES={n} XFUSION_DEVICE=cuda prefect worker start "
        f'--pool {pool} --limit 1 --name "$(hostname -s)-gpu{n}"'
        for n in range(gpus)
    ]
