import runpy
from pathlib import Path

import pytest

STARTUP = Path(__file__).parents[2] / "profile" / "startup"


@pytest.fixture(autouse=True)
def _session_server_keeps_its_key():
    """Put back the API key Tiled held before the profile started its own server.

    Tiled keeps one settings object per process and each new server writes its
    key there: without this, the session's server refuses its own key (401) in
    every later test.
    """
    from tiled.server.settings import get_settings

    settings = get_settings()
    key = settings.single_user_api_key
    yield
    settings.single_user_api_key = key


@pytest.mark.slow
def test_profile_startup_then_dual_camera_scan(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XFUSION_DATA", str(tmp_path))
    monkeypatch.setenv("XFUSION_BEAMLINE", "sim")
    namespace: dict = {}
    for path in sorted(STARTUP.glob("[0-9][0-9]-*.py")):  # as IPython runs them
        namespace = runpy.run_path(str(path), init_globals=namespace)
    assert "RE(dual_camera_scan())" in capsys.readouterr().out
    try:
        (uid,) = namespace["RE"](namespace["dual_camera_scan"]())
        assert namespace["raw"][-1].start["uid"] == uid
        assert namespace["raw"][uid].start["uhs"]["frames_per_burst"] == 128
    finally:
        namespace["bl"].close()
