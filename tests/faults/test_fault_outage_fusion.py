"""Tiled going away while a run is fused is not that run's outcome.

Seen in the fault soak: the server was restarted while the worker fused a good
run; the read failed with ``ConnectError``, the server was back within the
client's retries, and the run was recorded as ``failed`` for good — or, had the
read been a burst's, that burst as "missing". Now an unreachable Tiled, or one
that answers 5xx, raises out of ``fuse_run`` with nothing final written (a
Prefect task retries it), and the next try fuses the run.
"""

from __future__ import annotations

import httpx
import pytest
from fault_raw_runs import burst_arrays, make_raw_run_writer


@pytest.fixture
def write_raw_run(tiled, hdf5_dir):
    return make_raw_run_writer(tiled.raw, hdf5_dir)


def _server_error(code):
    request = httpx.Request("GET", "http://tiled/api/v1/array/full/raw")
    response = httpx.Response(code, request=request)
    return httpx.HTTPStatusError(f"{code}", request=request, response=response)


@pytest.mark.parametrize("where", ["opening the run", "reading a burst"])
@pytest.mark.parametrize(
    "error",
    [httpx.ConnectError("[Errno 111] Connection refused"), _server_error(503)],
    ids=["refused", "503"],
)
def test_an_unreachable_tiled_leaves_no_outcome_and_the_next_try_fuses(
    tiled, write_raw_run, monkeypatch, where, error
):
    from xfusion_bluesky.catalog import find_derived
    from xfusion_bluesky.catalog.reader import RawRun
    from xfusion_bluesky.pipeline import fuse_run

    uid = write_raw_run(**burst_arrays(), num_bursts=2)

    def unreachable(*args, **kwargs):
        raise error

    if where == "opening the run":
        monkeypatch.setattr(RawRun, "field_registration", unreachable)
    else:
        monkeypatch.setattr(RawRun, "burst", unreachable)
    with pytest.raises(type(error)):
        fuse_run(tiled.raw, uid, method="bicubic")
    assert not [run for run in find_derived(tiled.raw, uid) if run.finished]

    monkeypatch.undo()  # Tiled is back
    fused = fuse_run(tiled.raw, uid, method="bicubic")
    assert fused.status == "success", fused.reason
    assert fused.missing_bursts == []
    # The unfinished derived run of the first try was replaced, not kept beside.
    assert [run.uid for run in find_derived(tiled.raw, uid)] == [fused.uid]
