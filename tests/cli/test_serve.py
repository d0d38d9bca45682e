import json
from pathlib import Path

import pytest
from servers import ServedTiled, free_port, serve_command

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
    port = free_port()
    options = ["--data-dir", str(tmp_path), "--api-key", "secret", "--port", str(port)]
    assert main(["serve", *options, "--config-only"]) == 0
    config_path = capsys.readouterr().out.strip()
    assert json.loads(Path(config_path).read_text())["uvicorn"]["port"] == port
    command = serve_command(*options)
    with ServedTiled(command, port, tmp_path / "serve.log") as server:
        connection = connect(server.uri, api_key="secret", hdf5_dir=tmp_path / "hdf5")
        assert type(connection.raw).__name__ == "CatalogOfBlueskyRuns"
        connection.close()
