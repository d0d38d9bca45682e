import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from xfusion_bluesky.catalog.connect import connect
from xfusion_bluesky.catalog.server import server_config
from xfusion_bluesky.cli.main import main
from xfusion_bluesky.errors import InvalidInputError


def test_config_needs_a_key_and_accepts_postgresql(tmp_path):
    with pytest.raises(InvalidInputError, match="an API key is required"):
        server_config(data_dir=tmp_path, hdf5_dir=tmp_path, api_key="")
    config = server_config(
        data_dir=tmp_path,
        hdf5_dir=tmp_path / "h5",
        api_key="k",
        catalog_uri="postgresql://u:p@db/tiled",
    )
    args = config["trees"][0]["args"]
    assert args["uri"] == "postgresql://u:p@db/tiled"
    assert args["readable_storage"] == [str(tmp_path / "h5")]
    assert "postgresql://u:p@db/tiled" in args["writable_storage"]


@pytest.mark.slow
def test_serve_runs_a_server_the_beamline_can_use(tmp_path, capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = ["serve", "--data-dir", str(tmp_path), "--api-key", "secret"]
    assert main([*argv, "--port", str(port), "--config-only"]) == 0
    config_path = capsys.readouterr().out.strip()
    assert json.loads(Path(config_path).read_text())["uvicorn"]["port"] == port
    server = subprocess.Popen(
        [sys.executable, "-m", "xfusion_bluesky", *argv, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(240):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        else:
            pytest.fail("the served Tiled never became healthy")
        uri = f"http://127.0.0.1:{port}/api/v1"
        connection = connect(uri, api_key="secret", hdf5_dir=tmp_path / "hdf5")
        assert type(connection.raw).__name__ == "CatalogOfBlueskyRuns"
        connection.close()
    finally:
        server.terminate()
        server.wait(10)
