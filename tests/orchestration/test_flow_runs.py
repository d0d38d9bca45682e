"""The fusion flow on a real Prefect server: what is retried, what is recorded."""

import contextlib
from types import SimpleNamespace

import httpx
import pytest

pytest.importorskip("prefect")

from xfusion_bluesky.orchestration import flows
from xfusion_bluesky.orchestration.local import LocalPrefect

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    from prefect.logging.handlers import APILogHandler

    with LocalPrefect(tmp_path_factory.mktemp("prefect")) as server:
        yield server
        APILogHandler().flush()  # the flow runs' logs, while the server listens


@pytest.fixture
def fake_fusion(prefect_server, prefect_settings, monkeypatch):
    """Run the flow in this process with ``fuse_run`` replaced by ``outcomes``."""
    import xfusion_bluesky.pipeline

    prefect_settings(prefect_server.env)
    calls = []

    def install(*outcomes):
        def fake_fuse_run(catalogs, raw_uid, **options):
            outcome = outcomes[len(calls)]
            calls.append(options)
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

        monkeypatch.setattr(xfusion_bluesky.pipeline, "fuse_run", fake_fuse_run)
        monkeypatch.setattr(
            flows, "_catalogs", lambda uri: contextlib.nullcontext(None)
        )
        # The delays of a real outage (5, 20, 60 s) are not the point here.
        monkeypatch.setattr(
            flows, "fuse_task", flows.fuse_task.with_options(retry_delay_seconds=0)
        )
        return calls

    return install


def derived(status, reason=""):
    return SimpleNamespace(
        uid="derived-1",
        status=status,
        reason=reason,
        outcome={"frames_written": 128},
        fusion={"key": "k"},
    )


def test_an_unavailable_tiled_is_retried_until_the_run_is_fused(fake_fusion):
    request = httpx.Request("GET", "http://tiled/api/v1")
    busy = httpx.HTTPStatusError(
        "503", request=request, response=httpx.Response(503, request=request)
    )
    calls = fake_fusion(httpx.ConnectError("refused"), busy, derived("success"))
    state = flows.fuse_raw_run("raw-1", "http://tiled/api/v1", return_state=True)
    assert state.is_completed()
    assert state.result()["derived_uid"] == "derived-1"
    assert len(calls) == 3
    assert calls[-1]["device"] == "cpu" or calls[-1]["device"].startswith("cuda")


def test_a_run_that_cannot_be_fused_fails_once_with_its_reason(fake_fusion):
    calls = fake_fusion(derived("failed", "no HR frames in burst 0"))
    state = flows.fuse_raw_run("raw-2", "http://tiled/api/v1", return_state=True)
    assert state.is_failed()
    assert "no HR frames in burst 0" in state.message
    assert len(calls) == 1  # recorded in Tiled: not retried


def test_an_error_of_the_run_itself_is_not_retried(fake_fusion):
    calls = fake_fusion(ValueError("bad model"), derived("success"))
    state = flows.fuse_raw_run("raw-3", "http://tiled/api/v1", return_state=True)
    assert state.is_failed()
    assert len(calls) == 1


def test_deploy_makes_both_deployments_on_a_process_pool(
    prefect_server, prefect_settings, capsys
):
    from prefect.client.orchestration import get_client

    from xfusion_bluesky.cli.main import main

    prefect_settings(prefect_server.env)
    uri = "http://tiled-host:8000/api/v1"
    args = ["deploy", "--tiled", uri, "--pool", "p1", "--method", "bicubic"]
    assert main([*args, "--catch-up-every-s", "120", "--gpus", "2"]) == 0
    printed = capsys.readouterr().out
    assert "xfusion-fuse-run/xfusion" in printed
    assert printed.count("prefect worker start --pool p1 --limit 1") == 2
    with get_client(sync_client=True) as client:
        assert client.read_work_pool("p1").type == "process"
        fuse = client.read_deployment_by_name("xfusion-fuse-run/xfusion")
        catch_up = client.read_deployment_by_name("xfusion-catch-up/xfusion")
    assert fuse.entrypoint == "xfusion_bluesky.orchestration.flows.fuse_raw_run"
    assert fuse.parameters["tiled_uri"] == uri
    assert fuse.parameters["method"] == "bicubic"
    assert fuse.job_variables["env"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30"
    assert catch_up.parameters["deployment"] == "xfusion-fuse-run/xfusion"
    assert catch_up.parameters["heartbeat_s"] == 30
    (schedule,) = catch_up.schedules
    assert schedule.schedule.interval.total_seconds() == 120
    assert catch_up.global_concurrency_limit.limit == 1
    assert catch_up.concurrency_options.collision_strategy.value == "CANCEL_NEW"
    # Deploying again updates, it does not add.
    assert main([*args, "--no-schedule"]) == 0
    with get_client(sync_client=True) as client:
        again = client.read_deployment_by_name("xfusion-fuse-run/xfusion")
    assert again.id == fuse.id


def test_a_running_flow_run_is_judged_by_its_process_then_its_heartbeats(
    prefect_server, prefect_settings
):
    import socket
    import subprocess
    import sys
    import time

    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.states import Running

    from xfusion_bluesky.orchestration.keys import writer_tag
    from xfusion_bluesky.orchestration.recovery import _is_alive

    prefect_settings(prefect_server.env)

    @flow(name="judged")
    def judged():
        pass

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    host = socket.gethostname()
    with get_client(sync_client=True) as client:

        def running(*tags):
            run = client.create_flow_run(judged, tags=list(tags))
            client.set_flow_run_state(run.id, Running(), force=True)
            return client.read_flow_run(run.id)

        live = running(writer_tag(host, prefect_server.process.pid))  # alive
        gone = running(writer_tag(host, ended.pid))
        elsewhere = running(writer_tag("another-node", 1))
        silent = running()
        assert _is_alive(client, live, heartbeat_s=None, stale_after_s=3600)
        assert not _is_alive(client, gone, heartbeat_s=None, stale_after_s=3600)
        # Another host's process cannot be checked: heartbeats, then age, decide.
        assert _is_alive(client, elsewhere, heartbeat_s=30, stale_after_s=3600)
        assert _is_alive(client, silent, heartbeat_s=None, stale_after_s=3600)
        time.sleep(1.5)
        assert not _is_alive(client, silent, heartbeat_s=0.4, stale_after_s=3600)
        assert not _is_alive(client, silent, heartbeat_s=None, stale_after_s=1)


def test_a_deployment_that_does_not_exist_is_named_in_the_submission_error(
    prefect_server, prefect_settings, tiled, fused_sim_run
):
    from xfusion_bluesky.orchestration.submit import PrefectSubmitter

    prefect_settings(prefect_server.env)
    with PrefectSubmitter(tiled.uri, deployment="no-such/flow") as submitter:
        submitter.submit(fused_sim_run.raw_uid)  # never raises
        assert submitter.wait_idle(60)
    (result,) = submitter.results
    assert result.flow_run_id is None
    assert "'no-such/flow'" in result.error
    assert "xfusion-bluesky deploy" in result.error
