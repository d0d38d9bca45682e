"""Scale-out on Prefect: fusion as a deployment that many workers and GPUs share.

One beamline computer fuses with its own
:class:`~xfusion_bluesky.callbacks.FusionWorker`. A facility runs its post-run
processing on Prefect instead, as NSLS-II and ALS do:

- :mod:`~xfusion_bluesky.orchestration.flows`: the ``xfusion-fuse-run`` flow (one raw
  run through :func:`~xfusion_bluesky.pipeline.fuse_run`, with retries on transient
  Tiled errors) and the scheduled ``xfusion-catch-up`` flow;
- :mod:`~xfusion_bluesky.orchestration.deploy`: both deployments on a process work
  pool (``xfusion-bluesky deploy``), one ``prefect worker start --limit 1`` per GPU;
- :mod:`~xfusion_bluesky.orchestration.submit`: the trigger, a non-blocking submitter
  for ``FusionCallback`` (``setup(fusion="prefect")``) and the Tiled websocket feed
  (``xfusion-bluesky worker --prefect``);
- :mod:`~xfusion_bluesky.orchestration.recovery`: which pending runs the catch-up
  submits again, and which running flow runs lost their worker;
- :mod:`~xfusion_bluesky.orchestration.keys`: flow-run names, tags and idempotency keys.

Prefect is an optional extra (``pip install xfusion-bluesky[prefect]``): importing
this package imports neither Prefect nor torch; its modules do.
"""

import importlib.util

from xfusion_bluesky.errors import InvalidInputError

__all__ = ["require_prefect"]


def require_prefect(what: str) -> None:
    """Raise a clear error when Prefect (an optional extra) is not installed.

    Raises
    ------
    InvalidInputError
        Prefect does not import here; ``what`` says what needed it.
    """
    if importlib.util.find_spec("prefect") is None:
        raise InvalidInputError(
            f"{what} needs Prefect: pip install 'xfusion-bluesky[prefect]'"
        )
