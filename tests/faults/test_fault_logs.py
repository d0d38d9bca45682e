"""The API key never reaches the logs.

An embedded server's URI carries its key (``?api_key=...``); connect and the
beamline's setup logged that URI in clear text at INFO. Only this package's
loggers are checked: the profile and the CLI keep httpx/httpcore at WARNING.
"""

import logging

from xfusion_bluesky.beamline import setup
from xfusion_bluesky.settings import Settings


def _ours(caplog) -> str:
    return "\n".join(
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("xfusion_bluesky")
    )


def test_connect_and_setup_log_no_api_key(tmp_path, caplog, monkeypatch):
    for name in ("XFUSION_TILED_URL", "XFUSION_TILED_API_KEY", "XFUSION_FUSION"):
        monkeypatch.delenv(name, raising=False)
    caplog.set_level(logging.DEBUG, logger="xfusion_bluesky")
    # setup() connects to an embedded server of its own: one server start shows
    # what connect logs and what setup logs after it.
    bl = setup("sim", data_dir=tmp_path / "data", settings=Settings.from_env())
    try:
        key = bl.connection.client.context.api_key
        assert key
        assert key in bl.connection.uri  # the embedded server's URI has it
    finally:
        bl.close()
    assert "embedded Tiled server at" in _ours(caplog)  # connect's line
    assert "api_key=***" in _ours(caplog)  # the URI is logged, masked
    assert "beamline ready" in _ours(caplog)
    assert key not in _ours(caplog), _ours(caplog)
