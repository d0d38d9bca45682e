"""Which derived run a raw uid names: the one rule every lookup by raw uid follows.

A raw run can have several derived runs: the fusion its start document requested
(``fusion.method``, by default ``edvr_stf``) and baselines fused by hand.
``fetch_fused``, ``show``, ``export`` and ``evaluate`` look a raw uid up through
:func:`pick_fused`, so they all show the requested fusion unless told another
method, never merely the newest one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xfusion_bluesky.catalog.queries import FusedRun

__all__ = [
    "DEFAULT_METHOD",
    "pick_fused",
    "report_choice",
    "requested_fusion_key",
    "requested_method",
]

logger = logging.getLogger("xfusion_bluesky.catalog.queries")

#: The method a raw run gets when its start document names none: such runs were
#: recorded before the plans named one, when every run was fused with EDVR-STF.
DEFAULT_METHOD = "edvr_stf"


def requested_method(raw_start: Mapping[str, Any]) -> str:
    """Return the fusion method a raw run's start document requests.

    Parameters
    ----------
    raw_start : mapping
        The raw run's start document (any stored format).

    Returns
    -------
    str
        Its ``fusion.method``, else :data:`DEFAULT_METHOD`.
    """
    fusion = raw_start.get("fusion")
    method = fusion.get("method") if isinstance(fusion, Mapping) else None
    return str(method or DEFAULT_METHOD)


def requested_fusion_key(
    raw_uid: str,
    method: str,
    model_info: Mapping[str, Any],
    lr_separation: int,
    *,
    hr_passthrough: bool = True,
    adapt: Mapping[str, Any] | None = None,
) -> str:
    """Return the fusion key ``fuse_run`` gives this fusion of a raw run.

    One function for ``fuse_run`` and for whoever must know the key before
    fusing (a Prefect submission's idempotency key), so the two never differ.

    Parameters
    ----------
    raw_uid : str
        The raw run's full uid.
    method : str
        The fusion method.
    model_info : mapping
        ``LoadedModel.info``: its ``sha256``, else its ``path``, names the model.
    lr_separation : int
        The LR separation.
    hr_passthrough : bool
        The HR frame at its own instant replaces the method's output.
    adapt : mapping, optional
        ``AdaptSettings.to_dict()`` when the network is adapted to the run.
    """
    from xfusion_bluesky.catalog.derived import fusion_key

    return fusion_key(
        raw_uid,
        method,
        model_info.get("sha256") or model_info.get("path"),
        lr_separation=int(lr_separation),
        normalize=True,
        # Only what differs from the defaults: a default fusion keeps the key it
        # had before these options, so runs fused then are found, not fused again.
        **({} if hr_passthrough else {"hr_passthrough": False}),
        **({} if adapt is None else {"adapt": dict(adapt)}),
    )


def pick_fused(
    runs: Sequence[FusedRun], *, requested: str, method: str | None = None
) -> list[FusedRun]:
    """Return the derived runs a lookup by raw uid chooses from, oldest first.

    The one rule for every lookup by raw uid: ``method`` when the caller names
    one; else the method the raw run requested; else, when the raw run has no
    derived run of that method (a worker set to another method), all of them.
    Of those, the caller takes the newest successful, else the newest finished,
    else one still being written.

    Parameters
    ----------
    runs : sequence of FusedRun
        Every derived run of the raw run (:func:`find_derived`), oldest first.
    requested : str
        The raw run's requested method (:func:`requested_method`).
    method : str, optional
        The method the caller asks for.

    Returns
    -------
    list of FusedRun
        The candidates; empty when ``method`` has no derived run.
    """
    if method is not None:
        return [run for run in runs if run.method == method]
    mine = [run for run in runs if run.method == requested]
    return mine or list(runs)


def report_choice(run: FusedRun, requested: str, method: str | None) -> None:
    """Log a warning when the default lookup gave another method than the requested."""
    if method is None and run.method != requested:
        logger.warning(
            "raw run %s requested %s, which has no derived run: this is its %s one "
            "(%s); name a method to choose",
            run.raw_uid,
            requested,
            run.method,
            run.uid,
        )
