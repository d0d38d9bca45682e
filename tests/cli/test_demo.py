import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_scans_fuses_and_writes_the_panel(tmp_path):
    # A subprocess, as `make demo` runs it: an embedded Tiled app started in this
    # process would replace the session server's API key (tiled's settings are
    # process-wide).
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "xfusion_bluesky",
            "demo",
            "--out",
            str(tmp_path),
            "--frames",
            "11",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    assert "raw run " in out
    assert list((tmp_path / "beamline").rglob("uhs_*.h5"))
    assert "edvr_stf" in out
    assert (tmp_path / "fusion_panel.png").stat().st_size > 10_000
