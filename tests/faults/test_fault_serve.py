"""`xfusion-bluesky serve` prints only what is true.

tiled's `serve config` printed a URL with a random key the server refused,
because the configured key is applied after the banner is printed.
"""

import os
import re
import time

import httpx
import pytest
from servers import ServedTiled, free_port, serve_command

from xfusion_bluesky.catalog.connect import connect

pytestmark = pytest.mark.slow  # the server takes ~5 s to start

KEY = "servesecret42"


def test_serve_prints_no_key_the_server_refuses(tmp_path):
    port = free_port()
    command = serve_command("--data-dir", str(tmp_path), "--port", str(port))
    env = {**os.environ, "XFUSION_TILED_API_KEY": KEY}
    with ServedTiled(command, port, tmp_path / "serve.log", env=env) as server:
        time.sleep(0.5)  # let the banner reach the log
        text = server.log.read_text()
        for key in re.findall(r"api_key=([A-Za-z0-9]+)", text):
            response = httpx.get(
                f"{server.uri}/metadata/",
                headers={"Authorization": f"Apikey {key}"},
            )
            assert response.status_code == 200, (
                f"serve printed key {key[:4]}... that the server refuses:\n{text}"
            )
        assert KEY not in text  # the configured key is not echoed either
        # What is printed is the address to use and where its key comes from.
        assert f"http://127.0.0.1:{port}/api/v1" in text
        assert "XFUSION_TILED_API_KEY" in text
        # A server the beamline can use (was tests/cli/test_serve.py's own server).
        connection = connect(server.uri, api_key=KEY, hdf5_dir=tmp_path / "hdf5")
        try:
            assert type(connection.raw).__name__ == "CatalogOfBlueskyRuns"
        finally:
            connection.close()
