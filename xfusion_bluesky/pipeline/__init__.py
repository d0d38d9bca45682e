"""One raw run in, one derived run out: read from Tiled, align, fuse, write back.

:func:`fuse_run` is what the fusion worker calls for every finished run and what
``xfusion-bluesky fuse UID`` calls by hand. It never raises for a run that cannot
be fused: the failure is written to the catalog as a derived run whose stop
document has ``exit_status="fail"`` and a one-line ``reason``, and the caller
moves on. Only what is not the run's fault raises, before anything is written: a
run still being recorded (a final outcome now would be wrong later) and the
caller's own mistakes (a model file that does not exist, an unknown method). A
run stopped or aborted part-way is fused burst by burst: every complete burst is
fused and each missing one is recorded with its reason (``missing_bursts``).
It is idempotent: a fusion is identified by (raw uid, method, model
sha256, parameters) and asking again returns the existing derived run unless
``force=True`` (the lookups live in :mod:`~xfusion_bluesky.catalog.progress`).
One burst is fused by :mod:`~xfusion_bluesky.pipeline.burst`; the HS latency is
applied and checked by :mod:`~xfusion_bluesky.pipeline.timing`. Tiled's share
runs beside the fusion (:mod:`~xfusion_bluesky.pipeline.overlap`): the next
burst is read and the fused frames are written on threads of their own, with
the outcomes of the sequential order.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from typing import Any

import numpy as np
import torch

from xfusion_bluesky import __version__
from xfusion_bluesky.catalog.choice import (
    DEFAULT_METHOD,
    requested_fusion_key,
    requested_method,
)
from xfusion_bluesky.catalog.connect import Catalogs, open_catalogs
from xfusion_bluesky.catalog.derived import (
    DerivedRunWriter,
    frames_per_request,
    short_traceback,
    write_failed_run,
)
from xfusion_bluesky.catalog.progress import STALE_AFTER_S, existing_fusion
from xfusion_bluesky.catalog.queries import FusedRun
from xfusion_bluesky.catalog.reader import (
    RawBurst,
    RawRun,
    open_raw_run,
    wait_for_stop,
)
from xfusion_bluesky.errors import (
    InvalidInputError,
    RunNotFusableError,
    XFusionError,
    tiled_unavailable,
)
from xfusion_bluesky.fusion.adaptation import AdaptSettings
from xfusion_bluesky.fusion.field import FieldRegistration
from xfusion_bluesky.fusion.model.loader import load_network
from xfusion_bluesky.fusion.normalization import PERCENTILES
from xfusion_bluesky.pipeline import overlap
from xfusion_bluesky.pipeline.burst import (
    PreparedBurst,
    check_latency,
    fuse_burst,
    lr_period_s,
    prepare_burst,
    read_burst,
)
from xfusion_bluesky.pipeline.overlap import (
    HostThread,
    ReadAhead,
    WriteBehind,
    settle,
)
from xfusion_bluesky.pipeline.timing import timing_start, timing_summary
from xfusion_bluesky.stored_format import raw_start_v1

__all__ = ["DEFAULT_METHOD", "fuse_run"]

logger = logging.getLogger(__name__)


def fuse_run(
    target: Any,
    raw_uid: str,
    *,
    method: str | None = None,
    model: str | os.PathLike[str] | None = None,
    lr_separation: int | None = None,
    force: bool = False,
    device: str = "cpu",
    batch_size: int | None = None,
    progress: bool = False,
    stale_after_s: float = STALE_AFTER_S,
    wait_s: float = 0.0,
    hr_passthrough: bool = True,
    adapt: AdaptSettings | None = None,
) -> FusedRun:
    """Fuse raw run ``raw_uid`` and write the result to Tiled as a derived run.

    Parameters
    ----------
    target : str, Tiled node, TiledConnection or Beamline
        Where the runs are (see :func:`~xfusion_bluesky.catalog.connect.open_catalogs`).
    raw_uid : str
        The raw run (a unique uid prefix works).
    method : str, optional
        ``"edvr_stf"``, ``"edvr"``, ``"bicubic"``, …; default the start document's
        ``fusion.method``, else ``"edvr_stf"``.
    model : str or path, optional
        Checkpoint for the network methods; None: the shipped weights.
    lr_separation : int, optional
        Default the start document's ``fusion.lr_separation``, else 1.
    force : bool
        Fuse again even if an identical derived run exists.
    device : str
        Where the network runs.
    batch_size : int, optional
        Windows per forward pass; ``fuse_iter`` halves it after an out-of-memory
        error and goes on from the first frame not yet fused.
    progress : bool
        Show a progress bar per burst.
    stale_after_s : float
        An unfinished derived run this old, written by a process that cannot be
        checked, is replaced.
    wait_s : float
        How long to wait for the stop document of a run still being recorded;
        0: do not wait.
    hr_passthrough : bool
        A UHS frame with an HS frame of its own instant gets that HS frame (on
        the fused grid) instead of the network's output; False keeps the output.
    adapt : AdaptSettings, optional
        Fine-tune a copy of the network on each burst's own HS frames before
        fusing it (``fuse(adapt=...)``); the recipe goes in the start document,
        each burst's held-out gain and adapted weights' sha256 in the outcome.

    Returns
    -------
    FusedRun
        The derived run: new, or the existing one. ``status`` is ``"success"``
        (every complete burst fused; ``missing_bursts`` in its outcome lists the
        others, and ``reason`` sums them up) or ``"failed"`` (with ``reason``).

    Raises
    ------
    KeyError
        No raw run ``raw_uid``.
    RunNotFinishedError
        The raw run has no stop document (after ``wait_s``).
    InvalidInputError
        A usage error: ``model`` does not exist or does not fit ``method``, an
        unknown method, a model for a method without one.

    Nothing is written to the catalog when this raises.
    """
    catalogs = open_catalogs(target)
    node = wait_for_stop(catalogs.raw, raw_uid, wait_s)
    try:
        raw_start = raw_start_v1(dict(node.start))
        format_error: ValueError | None = None
    except ValueError as err:  # written by a newer stored format: say so, in Tiled
        raw_start, format_error = dict(node.start), err
    full_uid = str(raw_start["uid"])
    requested = raw_start.get("fusion") or {}
    method = method or requested_method(raw_start)
    separation = int(lr_separation or requested.get("lr_separation") or 1)

    fusion: dict[str, Any] = {
        "method": method,
        "lr_separation": separation,
        "normalization": {"mode": "percentile", "percentiles": list(PERCENTILES)},
        "output": {"dtype": "uint16", "scale": "HS counts"},
        "device": device,
        "hr_passthrough": bool(hr_passthrough),
        "adapt": adapt.to_dict() if adapt is not None else None,
        "versions": _versions(),
        "started": time.time(),
    }
    try:
        loaded = load_network(method, model, device=device)
        load_error: BaseException | None = None
    except (InvalidInputError, TypeError):
        raise  # the caller's arguments: not the run's outcome
    except FileNotFoundError as err:
        if model is not None:
            raise InvalidInputError(f"model={os.fspath(model)!r}: {err}") from err
        loaded, load_error = None, err  # the shipped weights are not installed
    except Exception as err:
        loaded, load_error = None, err
    model_info = (
        loaded.info
        if loaded is not None
        else {"name": None, "path": os.fspath(model) if model else None, "sha256": None}
    )
    fusion["model"] = model_info
    fusion["key"] = requested_fusion_key(
        full_uid,
        method,
        model_info,
        separation,
        hr_passthrough=hr_passthrough,
        adapt=fusion["adapt"],
    )
    if not force:
        existing = existing_fusion(catalogs, fusion["key"], stale_after_s=stale_after_s)
        if existing is not None:
            logger.info("raw run %s already fused: %s", full_uid, existing.uid)
            return existing
    if format_error is not None:
        return _record_failure(
            catalogs, full_uid, fusion, str(format_error), format_error, raw_start
        )
    if load_error is not None:
        reason = f"the model for {method!r} does not load: {_one_line(load_error)}"
        return _record_failure(
            catalogs, full_uid, fusion, reason, load_error, raw_start
        )
    if loaded is None:  # unreachable: a failed load returned above
        raise RuntimeError("model neither loaded nor failed")
    try:
        run = open_raw_run(catalogs.raw, full_uid, node=node)
        registration = run.field_registration()
    except Exception as err:
        if tiled_unavailable(err):
            raise  # Tiled is unavailable: no outcome is known yet (see below)
        return _record_failure(catalogs, full_uid, fusion, _reason(err), err, raw_start)
    fusion["registration"] = {**run.start["registration"], **registration.metadata()}
    fusion["timing"] = timing_start(run.start["registration"])
    grid_window = registration.grid_window
    writer = DerivedRunWriter(
        catalogs.fused,
        raw_uid=full_uid,
        fusion=fusion,
        frame_shape=(grid_window[2], grid_window[3]),
        raw_start=raw_start,
    )
    options = {
        "method": method,
        "network": loaded.network,
        "lr_separation": separation,
        "device": device,
        "batch_size": batch_size,
        "progress": progress,
        "hr_passthrough": hr_passthrough,
        "adapt": adapt,
    }
    threaded = overlap.OVERLAP
    writer.missing_bursts.extend(run.missing)
    with HostThread(threaded) as host:
        reads = ReadAhead(
            host, functools.partial(_read, run, registration), run.num_bursts
        )
        try:
            max_pending = frames_per_request(writer.frame_shape)
            with WriteBehind(threaded=threaded, max_pending=max_pending) as sink:
                sink.call(_open, writer, reads)
                last_error = _fuse_bursts(
                    writer, sink, host, reads, run, registration, options
                )
            _finish(writer, run, last_error)
        except Exception as err:
            if tiled_unavailable(err):
                # Tiled went away or failed mid-run (a restart, a network cut, a
                # 5xx): not this run's outcome. Its unfinished derived run is
                # replaced by the next try, whose writer finds it gone.
                raise
            if not writer.is_open:
                raise  # the derived run could not be opened: nothing to end
            writer.fail(_reason(err), short_traceback(err))
    return FusedRun.open(catalogs, writer.uid)


def _open(writer: DerivedRunWriter, reads: ReadAhead[Any]) -> None:
    """Open the derived run once burst 0 is read (on the writer's side).

    Tiled answers about one request at a time: the burst the fusion waits for
    goes first, and the start document follows while the fusion runs.
    """
    if reads.first is not None:
        settle(reads.first)
    writer.open()


def _fuse_bursts(
    writer: DerivedRunWriter,
    sink: WriteBehind,
    host: HostThread,
    reads: ReadAhead[tuple[RawBurst, PreparedBurst | Exception]],
    run: RawRun,
    registration: FieldRegistration,
    options: dict[str, Any],
) -> RunNotFusableError | None:
    """Fuse every readable burst into ``writer``; return the last read error."""
    last_error: RunNotFusableError | None = None
    for k in range(run.num_bursts):
        try:  # a burst that cannot be read is left out, not the whole run
            burst, prepared = reads.get(k)
        except RunNotFusableError as err:
            logger.warning("raw run %s: burst %d left out: %s", run.uid, k, err)
            writer.missing_bursts.append({"burst": k, "reason": _one_line(err)})
            last_error = err
            continue
        if isinstance(prepared, Exception):
            raise prepared
        # Checked on the host thread while the burst is fused.
        latency = functools.partial(
            host.submit, check_latency, run, burst, registration
        )
        record = fuse_burst(writer, sink, run, prepared, latency, **options)
        writer.bursts.append(record)
    return last_error


def _finish(
    writer: DerivedRunWriter, run: RawRun, last_error: RunNotFusableError | None
) -> None:
    """End the derived run: a success if any burst was fused, else failed."""
    writer.missing_bursts.sort(key=lambda item: int(item["burst"]))
    writer.timing = timing_summary(run.hs_latency_s, writer.bursts, lr_period_s(run))
    summary = _missing_summary(writer.missing_bursts, run)
    if writer.bursts:
        writer.close(reason=summary)
    else:
        writer.fail(summary, short_traceback(last_error) if last_error else None)


def _read(
    run: RawRun, registration: FieldRegistration, k: int
) -> tuple[RawBurst, PreparedBurst | Exception]:
    """Read burst ``k`` (an error leaves it out) and prepare it (an error fails all)."""
    burst = read_burst(run, k)
    try:
        return burst, prepare_burst(run, burst, registration)
    except Exception as err:  # raised again where the burst is fused
        return burst, err


def _missing_summary(missing: list[dict[str, Any]], run: RawRun) -> str:
    """One line on the bursts left out; "" for a complete fusion of a complete run."""
    total = run.num_bursts + len(run.missing)
    if not missing:
        if run.exit_status == "success":
            return ""
        why = f" ({run.stop['reason']})" if run.stop.get("reason") else ""
        return (
            f"the raw run ended with exit_status {run.exit_status!r}{why}: "
            f"fused the {total} burst(s) it recorded"
        )[:300]
    fused = total - len(missing)
    if len(missing) == 1 and total == 1:
        return str(missing[0]["reason"])
    first = missing[0]
    more = f" (+{len(missing) - 1} more)" if len(missing) > 1 else ""
    return (
        f"fused {fused} of {total} bursts; burst {first['burst']}: "
        f"{first['reason']}{more}"
    )[:300]


def _record_failure(
    catalogs: Catalogs,
    raw_uid: str,
    fusion: dict[str, Any],
    reason: str,
    err: BaseException,
    raw_start: dict[str, Any],
) -> FusedRun:
    uid = write_failed_run(
        catalogs.fused,
        raw_uid=raw_uid,
        fusion=fusion,
        reason=reason,
        traceback=short_traceback(err),
        raw_start=raw_start,
    )
    return FusedRun.open(catalogs, uid)


def _reason(err: BaseException) -> str:
    """One line a scientist understands: ours verbatim, others with their type."""
    if isinstance(err, XFusionError):
        return _one_line(err)
    if isinstance(err, torch.OutOfMemoryError | MemoryError):
        return (
            "out of memory even with one window per batch: use a smaller ROI or "
            "a bigger GPU"
        )
    return f"{type(err).__name__}: {_one_line(err)}"


def _one_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0][:300] if lines else type(err).__name__


def _versions() -> dict[str, str]:
    import bluesky
    import event_model
    import tiled

    return {
        "xfusion_bluesky": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "bluesky": bluesky.__version__,
        "event_model": event_model.__version__,
        "tiled": tiled.__version__,
    }
