"""The trigger: hand finished raw runs to the Prefect fusion deployment, never blocking.

:class:`PrefectSubmitter` has the ``submit(uid)`` a
:class:`~xfusion_bluesky.callbacks.FusionCallback` or a
:class:`~xfusion_bluesky.callbacks.TiledFeed` calls. ``submit`` only queues the
uid; a daemon thread reads the run's start document from Tiled, computes its
fusion key and creates the flow run with that key as Prefect's idempotency key
(:func:`submit_flow_run`). Nothing it meets (Prefect down, Tiled down, a bad
run) reaches the caller: it is logged, kept in ``results``, and the scheduled
catch-up submits the run later.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.orchestration import require_prefect
from xfusion_bluesky.orchestration.keys import FUSE_DEPLOYMENT, raw_tag, submission_key

__all__ = ["PrefectSubmitter", "Submission", "submit_flow_run"]

logger = logging.getLogger(__name__)


def submit_flow_run(
    deployment: str,
    raw_uid: str,
    idempotency_key: str,
    parameters: dict[str, Any] | None = None,
) -> str:
    """Create a flow run of the fusion ``deployment`` for one raw run; return its id.

    Parameters
    ----------
    deployment : str
        ``"flow/deployment"``, e.g. :data:`~.keys.FUSE_DEPLOYMENT`.
    raw_uid : str
        The raw run.
    idempotency_key : str
        Prefect returns the existing flow run for a key it has seen.
    parameters : dict, optional
        More flow parameters (``method``, ``model``); the rest are the
        deployment's defaults (its Tiled URI among them).
    """
    from prefect.deployments import run_deployment

    flow_run: Any = run_deployment(
        deployment,
        parameters={"raw_uid": raw_uid, **(parameters or {})},
        idempotency_key=idempotency_key,
        tags=[raw_tag(raw_uid)],
        timeout=0,  # submit only: a worker runs it
        as_subflow=False,  # a catch-up's submissions are runs of their own
    )
    return str(flow_run.id)


@dataclass(frozen=True)
class Submission:
    """What became of one ``submit(uid)``.

    Attributes
    ----------
    raw_uid : str
    flow_run_id : str or None
        None when it could not be submitted.
    key : str or None
        The idempotency key used.
    error : str
        Why it was not submitted; empty on success.
    """

    raw_uid: str
    flow_run_id: str | None
    key: str | None
    error: str = ""


class PrefectSubmitter:
    """Submit raw runs to the Prefect fusion deployment from a background thread.

    Parameters
    ----------
    tiled_uri : str
        The Tiled server holding the raw runs (start documents are read there).
    api_key : str, optional
        Its API key, when not in the URI.
    deployment : str
        The fusion deployment (``xfusion-bluesky deploy`` made it).
    method, model : str, optional
        Fuse with these instead of the deployment's own defaults (which
        ``deploy(method=..., model=...)`` set, and which are read from Prefect).

    Raises
    ------
    InvalidInputError
        Prefect is not installed.

    Examples
    --------
    >>> submitter = PrefectSubmitter(bl.connection.uri).start()  # doctest: +SKIP
    >>> bl.RE.subscribe(FusionCallback(submitter))  # doctest: +SKIP
    """

    def __init__(
        self,
        tiled_uri: str,
        *,
        api_key: str | None = None,
        deployment: str = FUSE_DEPLOYMENT,
        method: str | None = None,
        model: str | None = None,
    ) -> None:
        require_prefect("submitting runs to Prefect")  # else every run fails later
        self.tiled_uri = tiled_uri
        self.api_key = api_key
        self.deployment = deployment
        self.method = method
        self.model = model
        self.results: list[Submission] = []
        self.error: str | None = None
        self._jobs: queue.Queue[str | None] = queue.Queue()
        self._busy = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._catalogs: Any = None
        self._defaults: dict[str, Any] | None = None

    @property
    def state(self) -> str:
        """``"new"``, ``"running"`` or ``"stopped"``."""
        if self._thread is None:
            return "new"
        return "running" if self._thread.is_alive() else "stopped"

    @property
    def accepting(self) -> bool:
        """Whether ``submit`` hands runs on (also before ``start``: they wait)."""
        return self.state != "stopped"

    def start(self) -> PrefectSubmitter:
        """Start the submitting thread; return self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="xfusion-prefect-submit", daemon=True
            )
            self._thread.start()
        return self

    def submit(self, uid: str) -> None:
        """Queue raw run ``uid`` for submission; never blocks, never raises."""
        with self._lock:
            self._busy += 1
        self._jobs.put_nowait(str(uid))

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every queued uid is submitted or failed; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if self._busy == 0:
                    return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def close(self, timeout: float = 10.0) -> None:
        """Submit what is queued, then stop the thread (at most ``timeout`` s)."""
        if self._thread is not None and self._thread.is_alive():
            self._jobs.put_nowait(None)
            self._thread.join(timeout)
        if self._catalogs is not None:
            self._catalogs.root.context.close()
            self._catalogs = None

    def __enter__(self) -> PrefectSubmitter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            uid = self._jobs.get()
            if uid is None:
                return
            try:
                self.results.append(self._submit_one(uid))
            finally:
                with self._lock:
                    self._busy -= 1

    def _submit_one(self, uid: str) -> Submission:
        key = None
        try:
            start = self._raw(uid).start
            key = self._key(start)
            overrides = {
                name: value
                for name, value in (("method", self.method), ("model", self.model))
                if value is not None
            }
            flow_run = submit_flow_run(
                self.deployment, str(start["uid"]), key, overrides
            )
        except Exception as err:  # the caller's boundary: log, keep, go on
            reason = f"{type(err).__name__}: {err}"
            logger.warning(
                "raw run %s not submitted to Prefect (%s); the scheduled catch-up "
                "submits it later, or fuse it by hand (xfusion-bluesky fuse %s)",
                uid[:8],
                reason,
                uid[:8],
            )
            return Submission(uid, None, key, reason)
        logger.info("raw run %s submitted: flow run %s", uid[:8], flow_run)
        return Submission(uid, flow_run, key)

    def _raw(self, uid: str) -> Any:
        if self._catalogs is None:
            from xfusion_bluesky.catalog.connect import open_catalogs
            from xfusion_bluesky.catalog.lookup import one_api_key

            api_key = one_api_key(self.tiled_uri, self.api_key)
            uri = self.tiled_uri
            self._catalogs = open_catalogs(uri, api_key=api_key, create=False)
        return self._catalogs.raw[uid]

    def _key(self, start: Any) -> str:
        # The key must name what the flow run will fuse: the deployment's
        # method and model unless this submitter overrides them.
        defaults = self._deployment_defaults()
        method = self.method or defaults.get("method")
        model = self.model or defaults.get("model")
        return submission_key(dict(start), method=method, model=model)

    def _deployment_defaults(self) -> dict[str, Any]:
        if self._defaults is None:
            from prefect.client.orchestration import get_client
            from prefect.exceptions import ObjectNotFound

            with get_client(sync_client=True) as client:
                try:
                    found = client.read_deployment_by_name(self.deployment)
                except ObjectNotFound as err:
                    raise InvalidInputError(
                        f"Prefect at {client.api_url} has no deployment "
                        f"{self.deployment!r}: run `xfusion-bluesky deploy` there, "
                        "or name another (XFUSION_PREFECT_DEPLOYMENT, --deployment)"
                    ) from err
            self._defaults = dict(found.parameters or {})
        return self._defaults
