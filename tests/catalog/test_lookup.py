import pytest

from xfusion_bluesky.catalog.lookup import (
    check_raw_uid,
    open_server,
    resolve_fused,
    server_address,
)
from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.settings import Settings


def _settings(**environ):
    return Settings.from_env({"XFUSION_DATA": "/tmp/unused", **environ})


def test_the_server_comes_from_the_arguments_else_the_environment():
    env = _settings(XFUSION_TILED_URL="http://env/api/v1", XFUSION_TILED_API_KEY="k")
    assert server_address(settings=env) == ("http://env/api/v1", "k")
    assert server_address("http://mine/api/v1", "s", settings=env) == (
        "http://mine/api/v1",
        "s",
    )
    with pytest.raises(InvalidInputError, match="pass --tiled URI or set XFUSION"):
        server_address(settings=_settings())


@pytest.fixture
def fused(fused_sim_run):
    return fused_sim_run


@pytest.fixture
def catalogs(tiled):
    catalogs, uri = open_server(tiled.uri, settings=_settings())
    assert uri == tiled.uri
    yield catalogs
    catalogs.root.context.close()


def test_a_raw_or_a_derived_uid_names_the_derived_run(fused, catalogs, tiled):
    assert resolve_fused(catalogs, fused.uid).uid == fused.uid
    assert resolve_fused(catalogs, fused.raw_uid[:8]).uid == fused.uid
    with pytest.raises(LookupError, match="no raw or derived run '0000dead' on"):
        resolve_fused(catalogs, "0000dead", uri=tiled.uri)


def test_a_derived_uid_where_a_raw_one_belongs_is_explained(fused, catalogs, tiled):
    check_raw_uid(catalogs, fused.raw_uid)  # no error
    with pytest.raises(LookupError, match=f"of raw run {fused.raw_uid}: give"):
        check_raw_uid(catalogs, fused.uid)
    with pytest.raises(LookupError, match="api_key=\\*\\*\\*") as info:
        check_raw_uid(catalogs, "0000dead", uri=tiled.uri)
    assert "check the uid" in str(info.value)
