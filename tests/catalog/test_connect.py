import subprocess
import sys

import pytest

from xfusion_bluesky.catalog.connect import check_readable_storage, ensure_run_container


def test_raw_container_is_a_v3_run_catalog(tiled, hdf5_dir):
    specs = tiled.client["raw"].specs
    assert [(s.name, s.version) for s in specs] == [("CatalogOfBlueskyRuns", "3.0")]
    assert type(tiled.raw).__name__ == "CatalogOfBlueskyRuns"
    check_readable_storage(tiled.client, hdf5_dir)  # the embedded server can read it
    assert not [key for key in tiled.client if key.startswith("xfusion_storage")]


_REFUSED = """
import sys
from tiled.server import SimpleTiledServer
from xfusion_bluesky.catalog.connect import StorageNotReadableError, connect
with SimpleTiledServer() as server:  # no readable storage at all
    try:
        connect(server.uri, hdf5_dir=sys.argv[1])
    except StorageNotReadableError as err:
        print("refused:", err)
"""


@pytest.mark.slow
def test_server_that_cannot_read_the_hdf5_dir_is_refused_at_setup(tmp_path):
    # A second in-process Tiled app would replace the session server's API key
    # (tiled keeps its settings process-wide), so this server runs in a subprocess.
    out = subprocess.run(
        [sys.executable, "-c", _REFUSED, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert "refused:" in out.stdout
    assert "readable storage" in out.stdout


def _conflict(status):
    import httpx
    from tiled.client.utils import ClientError

    request = httpx.Request("POST", "http://tiled/api/v1/metadata/")
    response = httpx.Response(status, request=request)
    return ClientError(f"{status}: /raw", request, response)


class _RacedClient(dict):
    """A root where another client creates the container first."""

    def __init__(self, status):
        super().__init__()
        self.status = status

    def __contains__(self, key):
        return False  # checked before the other client's create

    def create_container(self, key, specs):
        self[key] = "created by the other client"
        raise _conflict(self.status)


def test_a_container_created_by_another_client_meanwhile_is_used():
    assert (
        ensure_run_container(_RacedClient(409), "raw") == "created by the other client"
    )
    with pytest.raises(Exception, match="403"):
        ensure_run_container(_RacedClient(403), "raw")
