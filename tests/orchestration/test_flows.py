"""The fusion flow's body and what its task retries."""

import contextlib

import httpx
import pytest

from xfusion_bluesky.catalog.connect import open_catalogs
from xfusion_bluesky.errors import tiled_unavailable
from xfusion_bluesky.orchestration import flows


def _status_error(code):
    request = httpx.Request("GET", "http://tiled/api/v1/metadata/raw")
    response = httpx.Response(code, request=request)
    return httpx.HTTPStatusError(f"{code}", request=request, response=response)


@pytest.mark.parametrize(
    ("err", "transient"),
    [
        (httpx.ConnectError("refused"), True),
        (httpx.ReadTimeout("slow"), True),
        (_status_error(503), True),
        (_status_error(500), True),
        (_status_error(404), False),
        (_status_error(401), False),
        (ValueError("bad run"), False),
        (KeyError("no such run"), False),
        (None, False),
    ],
)
def test_only_an_unavailable_tiled_is_retried(err, transient):
    assert tiled_unavailable(err) is transient


def test_the_task_body_fuses_the_run_and_reports_the_derived_run(
    tiled, fused_sim_run, monkeypatch
):
    catalogs = open_catalogs(tiled.client)  # the session's: not to be closed
    opened = contextlib.nullcontext(catalogs)
    monkeypatch.setattr(flows, "_catalogs", lambda uri: opened)
    outcome = flows.fuse_task.fn(
        fused_sim_run.raw_uid, "unused", "bicubic", None, "cpu", None, 0.0
    )
    assert outcome["status"] == "success"
    assert outcome["derived_uid"] == fused_sim_run.uid  # found, not fused twice
    assert outcome["key"] == fused_sim_run.fusion["key"]


def test_the_worker_environment_picks_the_device(monkeypatch):
    monkeypatch.setenv("XFUSION_DEVICE", "cuda:3")
    assert flows.worker_device() == "cuda:3"
    assert flows.worker_device("cpu") == "cpu"
    monkeypatch.setenv("XFUSION_DEVICE", "auto")
    assert flows.worker_device() in ("cpu", "cuda")
