"""Least privilege on a standalone server: one API key per role.

`serve --roles` makes three keys. Each must do exactly what its role needs:
acquisition writes raw runs, the fusion worker reads raw and writes fused only,
an analyst reads. Everything else gets 401 (no or unknown key) or 403.
"""

import os
import stat
import time
import warnings

import httpx
import numpy as np
import pytest
from bluesky import RunEngine
from servers import ServedTiled, free_port, serve_command

from xfusion_bluesky.callbacks import FusionWorker
from xfusion_bluesky.catalog import fetch_fused
from xfusion_bluesky.catalog.connect import (
    APIKeyMissingError,
    connect,
    open_catalogs,
    open_client,
)
from xfusion_bluesky.catalog.raw import subscribe_raw_writer
from xfusion_bluesky.plans.dual_camera import dual_camera_scan

# Slow: the server starts in ~5 s; the scan and its fusion take ~5 s more.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory, hdf5_dir):
    """`xfusion-bluesky serve --roles` on a free port: (URI, keys file)."""
    import json

    port = free_port()
    data = tmp_path_factory.mktemp("roles")
    log = data / "serve.log"
    env = {k: v for k, v in os.environ.items() if k != "XFUSION_TILED_API_KEY"}
    command = serve_command(
        "--roles",
        *("--data-dir", str(data), "--hdf5-dir", str(hdf5_dir)),
        *("--port", str(port)),
    )
    with ServedTiled(command, port, log, env=env) as server:
        path = data / "tiled" / "role_keys.json"
        keys = {
            role: entry["api_key"]
            for role, entry in json.loads(path.read_text()).items()
        }
        for key in keys.values():
            assert key not in log.read_text()  # printed: where, not what
        yield server.uri, keys, path


def _post_container(uri, key, parent, name):
    body = {
        "metadata": {},
        "structure_family": "container",
        "specs": [],
        "data_sources": [],
        "id": name,
    }
    headers = {"Authorization": f"Apikey {key}"} if key else {}
    return httpx.post(f"{uri}/metadata/{parent}", json=body, headers=headers)


def test_keys_file_is_owner_only_and_holds_three_distinct_keys(served):
    _, keys, path = served
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(keys) == {"acquisition", "fusion", "analyst"}
    assert len(set(keys.values())) == 3


def _read(uri, key, path):
    headers = {"Authorization": f"Apikey {key}", "Accept": "application/json"}
    return httpx.get(f"{uri}/array/full/{path}", headers=headers)


def test_each_key_can_do_exactly_its_role(served, hdf5_dir):
    uri, keys, _ = served
    acquisition = open_catalogs(uri, api_key=keys["acquisition"], create=True)
    fusion = open_catalogs(uri, api_key=keys["fusion"], create=True)
    analyst = open_catalogs(uri, api_key=keys["analyst"], create=False)
    try:
        # Allowed: acquisition writes raw, fusion writes fused, everyone reads.
        acquisition.raw.write_array(np.arange(3), key="a_raw_array")
        fusion.fused.write_array(np.arange(4), key="a_fused_array")
        for role in keys:
            assert _read(uri, keys[role], "raw/a_raw_array").json() == [0, 1, 2]
            assert _read(uri, keys[role], "fused/a_fused_array").json() == [0, 1, 2, 3]
        assert analyst.raw is not None
        assert analyst.fused is not None
    finally:
        for catalogs in (acquisition, fusion, analyst):
            catalogs.root.context.close()
    # Forbidden: fusion writes raw, acquisition writes fused, analyst writes.
    assert _post_container(uri, keys["fusion"], "raw", "x").status_code == 403
    assert _post_container(uri, keys["acquisition"], "fused", "x").status_code == 403
    for parent in ("", "raw", "fused"):
        status = _post_container(uri, keys["analyst"], parent, "x").status_code
        assert status in (401, 403), parent
    for role, path in [
        ("fusion", "raw/a_raw_array"),
        ("analyst", "raw/a_raw_array"),
        ("acquisition", "fused/a_fused_array"),
        ("analyst", "fused/a_fused_array"),
    ]:
        headers = {"Authorization": f"Apikey {keys[role]}"}
        response = httpx.delete(f"{uri}/metadata/{path}", headers=headers)
        assert response.status_code in (401, 403), (role, path, response.text)
        response = httpx.put(
            f"{uri}/array/full/{path}",
            content=np.zeros(3, dtype=int).tobytes(),
            headers={**headers, "Content-Type": "application/octet-stream"},
        )
        assert response.status_code in (401, 403), (role, path, response.text)
    assert _read(uri, keys["analyst"], "raw/a_raw_array").json() == [0, 1, 2]
    # No key or a wrong one: nothing at all, and no login prompt.
    assert _post_container(uri, None, "raw", "x").status_code == 401
    assert _post_container(uri, "00" * 36, "raw", "x").status_code == 401
    assert httpx.get(f"{uri}/metadata/raw").status_code == 401
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        with pytest.raises(APIKeyMissingError, match="--api-key KEY or set XFUSION"):
            open_client(uri)


def test_a_scan_and_its_fusion_with_the_role_keys(served, hdf5_dir, sim_devices):
    uri, keys, _ = served
    since = time.time()
    connection = connect(uri, api_key=keys["acquisition"], hdf5_dir=hdf5_dir)
    try:
        RE = RunEngine()
        subscribe_raw_writer(RE, connection.raw)
        (uid,) = RE(dual_camera_scan())
        options = {"method": "bicubic", "since": since, "mode": "thread"}
        with FusionWorker(uri, api_key=keys["fusion"], **options) as worker:
            assert worker.wait_idle(120), worker.error
        analyst = open_catalogs(uri, api_key=keys["analyst"], create=False)
        try:
            fused = fetch_fused(analyst, uid)
            assert fused.status == "success", fused.reason
            assert fused.frames.shape == (128, 64, 96)
        finally:
            analyst.root.context.close()
    finally:
        connection.close()
