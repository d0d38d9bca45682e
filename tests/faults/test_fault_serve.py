"""`xfusion-bluesky serve` prints only what is true.

tiled's `serve config` printed a URL with a random key the server refused,
because the configured key is applied after the banner is printed.
"""

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow  # the server takes ~5 s to start

KEY = "servesecret42"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(tmp_path: Path, port: int, *extra: str) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / "serve.log"
    env = {**os.environ, "XFUSION_TILED_API_KEY": KEY}
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "xfusion_bluesky", "serve"),
                *("--data-dir", str(tmp_path), "--port", str(port), *extra),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    return process, log


def _wait_healthy(process: subprocess.Popen, port: int, log: Path) -> None:
    for _ in range(240):
        if process.poll() is not None:
            pytest.fail(log.read_text()[-2000:])
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    pytest.fail("the served Tiled never became healthy")


def test_serve_prints_no_key_the_server_refuses(tmp_path):
    port = _free_port()
    process, log = _serve(tmp_path, port)
    try:
        _wait_healthy(process, port, log)
        time.sleep(0.5)  # let the banner reach the log
        text = log.read_text()
        for key in re.findall(r"api_key=([A-Za-z0-9]+)", text):
            response = httpx.get(
                f"http://127.0.0.1:{port}/api/v1/metadata/",
                headers={"Authorization": f"Apikey {key}"},
            )
            assert response.status_code == 200, (
                f"serve printed key {key[:4]}... that the server refuses:\n{text}"
            )
        assert KEY not in text  # the configured key is not echoed either
        # What is printed is the address to use and where its key comes from.
        assert f"http://127.0.0.1:{port}/api/v1" in text
        assert "XFUSION_TILED_API_KEY" in text
    finally:
        process.terminate()
        process.wait(10)
