import pytest

from xfusion_bluesky.callbacks.feeds import parse_address
from xfusion_bluesky.callbacks.loop import redact
from xfusion_bluesky.callbacks.worker import FusionWorker
from xfusion_bluesky.settings import Settings


def test_api_key_is_passed_once():
    in_uri = "http://h:1/api/v1?api_key=abc"
    assert FusionWorker(in_uri, mode="thread", api_key="abc").api_key is None
    assert FusionWorker("http://h:1/api/v1", mode="thread", api_key="k").api_key == "k"
    with pytest.raises(ValueError, match="pass one"):
        FusionWorker(in_uri, mode="thread", api_key="other")


def test_api_keys_stay_out_of_logs():
    assert (
        redact("http://h/api/v1?api_key=s3cret&x=1")
        == "http://h/api/v1?api_key=***&x=1"
    )
    worker = FusionWorker("http://h/api/v1?api_key=s3cret", mode="thread")
    assert "s3cret" not in repr(worker)


def test_zmq_address_must_be_host_and_port():
    assert parse_address("127.0.0.1:5578") == ("127.0.0.1", 5578)
    for bad in ("5578", "localhost", "host:port"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_address(bad)


def test_fusion_setting():
    assert Settings.from_env({}).fusion == "process"
    assert Settings.from_env({"XFUSION_FUSION": "OFF"}).fusion == "off"
    with pytest.raises(ValueError, match="XFUSION_FUSION"):
        Settings.from_env({"XFUSION_FUSION": "gpu"})


def test_worker_that_cannot_reach_tiled_says_so_without_the_key():
    # Port 9 (discard) on loopback: nothing listens; the thread reports and ends.
    uri = "http://127.0.0.1:9/api/v1?api_key=s3cret"
    worker = FusionWorker(uri, mode="thread", connect_wait_s=0).start()
    try:
        assert not worker.wait_idle(30)
        assert "cannot open Tiled at http://127.0.0.1:9/api/v1?api_key=***" in (
            worker.error
        )
        assert "s3cret" not in worker.error
    finally:
        worker.close()


def test_setup_refuses_an_unknown_fusion_mode_before_starting_anything(tmp_path):
    from xfusion_bluesky.beamline import setup

    with pytest.raises(ValueError, match="fusion must be"):
        setup("sim", data_dir=tmp_path, fusion="gpu")
    assert not (tmp_path / "tiled").exists()
