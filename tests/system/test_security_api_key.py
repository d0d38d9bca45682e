"""A facility-style Tiled server (`tiled serve config`, API key required).

Writes without the key are refused; a worker given the key fuses and writes.
"""

import gc
import time
import warnings

import httpx
import pytest
from bluesky import RunEngine
from servers import ServedTiled, free_port, tiled_config_command, write_tiled_config

from xfusion_bluesky.callbacks import FusionWorker
from xfusion_bluesky.catalog import fetch_fused
from xfusion_bluesky.catalog.connect import connect
from xfusion_bluesky.catalog.raw import subscribe_raw_writer
from xfusion_bluesky.plans.dual_camera import dual_camera_scan

# Slow: the module's server starts in ~5 s, and the worker's scan takes ~4 s more.
pytestmark = pytest.mark.slow

KEY = "facilitysecret42"  # Tiled accepts alphanumeric keys only


@pytest.fixture(scope="module")
def facility(tmp_path_factory, hdf5_dir):
    """Serve a SQLite catalog that requires KEY on a free port; yield its URI."""
    port = free_port()
    root = tmp_path_factory.mktemp("facility")
    config = write_tiled_config(root, hdf5_dir, api_key=KEY, port=port)
    command = tiled_config_command(config)
    with ServedTiled(command, port, root / "server.log") as server:
        yield server.uri


def _create_container(uri, headers):
    body = {
        "metadata": {},
        "structure_family": "container",
        "specs": [],
        "data_sources": [],
        "id": "intruder",
    }
    return httpx.post(f"{uri}/metadata/", json=body, headers=headers)


def test_write_without_the_key_is_refused(facility):
    assert _create_container(facility, {}).status_code == 401
    wrong = {"Authorization": "Apikey not-the-key"}
    assert _create_container(facility, wrong).status_code == 401
    assert httpx.get(f"{facility}/metadata/").status_code == 401  # nor a read


def test_worker_with_the_key_fuses_and_writes(facility, hdf5_dir, sim_devices):
    since = time.time()
    connection = connect(facility, api_key=KEY, hdf5_dir=hdf5_dir)
    try:
        RE = RunEngine()
        subscribe_raw_writer(RE, connection.raw)
        (uid,) = RE(dual_camera_scan())
        options = {"method": "bicubic", "since": since, "mode": "thread"}
        with FusionWorker(facility, api_key=KEY, **options) as worker:
            assert worker.wait_idle(120)
        fused = fetch_fused(connection.raw, uid)
        assert fused.status == "success", fused.reason
        assert fused.frames.shape == (128, 64, 96)
        # tiled 0.2.20's from_uri does not close its HTTP client when the server
        # refuses it (constructors.from_context raises first): let it go quietly.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            keyless = FusionWorker(facility, mode="thread", since=since).start()
            assert not keyless.wait_idle(60)
            keyless.close()
            gc.collect()
        assert "requires an API key: pass --api-key KEY" in keyless.error
    finally:
        connection.close()
