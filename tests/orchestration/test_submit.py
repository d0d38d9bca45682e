"""The trigger: submissions keyed like the derived run, never raising into bluesky."""

import pytest

from xfusion_bluesky.callbacks import FusionCallback
from xfusion_bluesky.orchestration import submit
from xfusion_bluesky.orchestration.deploy import deploy
from xfusion_bluesky.orchestration.keys import raw_tag
from xfusion_bluesky.orchestration.submit import PrefectSubmitter
from xfusion_bluesky.plans.dual_camera import dual_camera_scan
from xfusion_bluesky.settings import Settings


@pytest.fixture
def recorded(monkeypatch):
    """Record flow-run submissions instead of making them."""
    calls = []

    def fake(deployment, raw_uid, key, parameters=None):
        calls.append((deployment, raw_uid, key, parameters))
        return f"flow-run-{len(calls)}"

    monkeypatch.setattr(submit, "submit_flow_run", fake)
    monkeypatch.setattr(
        PrefectSubmitter, "_deployment_defaults", lambda self: {"method": "bicubic"}
    )
    return calls


def test_a_finished_run_is_submitted_under_its_fusion_key(
    tiled, fused_sim_run, recorded
):
    with PrefectSubmitter(tiled.uri, deployment="fuse/here") as submitter:
        submitter.submit(fused_sim_run.raw_uid[:8])  # a uid prefix works too
        assert submitter.wait_idle(30)
    key = fused_sim_run.fusion["key"]
    assert recorded == [("fuse/here", fused_sim_run.raw_uid, key, {})]
    (result,) = submitter.results
    assert result.flow_run_id == "flow-run-1"
    assert result.error == ""


def test_an_unknown_run_or_an_unreachable_prefect_is_logged_not_raised(
    tiled, fused_sim_run, prefect_settings, caplog
):
    # Nothing listens there; no retries, or the client tries for a minute.
    prefect_settings(
        {"PREFECT_API_URL": "http://127.0.0.1:9/api", "PREFECT_CLIENT_MAX_RETRIES": "0"}
    )
    with PrefectSubmitter(tiled.uri) as submitter:
        submitter.submit("no-such-run")
        submitter.submit(fused_sim_run.raw_uid)
        assert submitter.wait_idle(60)
    missing, unreachable = submitter.results
    assert missing.flow_run_id is None
    assert "KeyError" in missing.error
    assert unreachable.flow_run_id is None
    assert "ConnectError" in unreachable.error or "connect" in unreachable.error
    assert "catch-up submits it later" in caplog.text


def test_the_beamline_submits_each_scan_to_prefect_from_its_stop_document(
    sim_bl, recorded, monkeypatch
):
    monkeypatch.setenv("XFUSION_PREFECT_DEPLOYMENT", "fuse/beamline")
    submitter = sim_bl.start_fusion("prefect")
    try:
        assert isinstance(submitter, PrefectSubmitter)
        (uid,) = sim_bl.RE(dual_camera_scan())
        assert submitter.wait_idle(30)
    finally:
        sim_bl.stop_fusion()
    assert submitter.results[0].error == ""
    assert [call[:2] for call in recorded] == [("fuse/beamline", uid)]
    assert not submitter.accepting


def test_the_callback_never_raises_when_the_submitter_does():
    class Broken:
        def submit(self, uid):
            raise RuntimeError("boom")

    callback = FusionCallback(Broken())
    callback("start", {"uid": "u1", "fusion": {"requested": True}})
    callback("stop", {"run_start": "u1", "exit_status": "success"})  # no raise


def test_prefect_is_a_fusion_mode_of_the_profile():
    assert Settings.from_env({"XFUSION_FUSION": "prefect"}).fusion == "prefect"
    assert raw_tag("x") == "raw:x"


def test_without_prefect_installed_the_submitter_says_how_to_get_it(monkeypatch):
    import importlib.util

    from xfusion_bluesky.errors import InvalidInputError

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "prefect" else real(name, *a),
    )
    with pytest.raises(InvalidInputError, match=r"xfusion-bluesky\[prefect\]"):
        PrefectSubmitter("http://tiled:8000/api/v1")
    with pytest.raises(InvalidInputError, match=r"xfusion-bluesky\[prefect\]"):
        deploy("http://tiled:8000/api/v1")
