import json
from pathlib import Path

import pytest
from servers import free_port

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


def test_serve_config_only_writes_the_key_and_port_it_was_given(tmp_path, capsys):
    port = free_port()
    options = ["--data-dir", str(tmp_path), "--api-key", "secret", "--port", str(port)]
    assert main(["serve", *options, "--config-only"]) == 0
    config_path = capsys.readouterr().out.strip()
    config = json.loads(Path(config_path).read_text())
    assert config["uvicorn"]["port"] == port
    assert config["authentication"]["single_user_api_key"] == "secret"
    # The server it runs, used by a beamline: tests/faults/test_fault_serve.py
    # (one server start for both).
