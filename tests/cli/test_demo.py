import re
import subprocess
import sys

import matplotlib.pyplot as plt
import pytest


@pytest.mark.slow
def test_demo_scans_fuses_automatically_and_scores(tmp_path):
    # A subprocess, as `make demo` runs it: an embedded Tiled app started in this
    # process would replace the session server's API key (tiled's settings are
    # process-wide). --quick: the worker fuses with bicubic (the chain, in seconds).
    out = subprocess.run(
        [sys.executable, "-m", "xfusion_bluesky", "demo", "--quick",
         "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=280,
    ).stdout  # fmt: skip
    raw = re.search(r"raw run ([0-9a-f-]{36})", out)
    derived = re.search(r"derived run ([0-9a-f-]{36}) \(bicubic, success\)", out)
    assert raw
    assert derived
    assert raw.group(1) != derived.group(1)
    assert re.search(r"scan-to-fused [\d.]+ s", out)
    scores = re.findall(r"^bicubic\s+([\d.]+)\s+([\d.]+)$", out, re.MULTILINE)
    assert len(scores) == 2  # the worker's frames, then fuse()'s: the same method
    (worker_db, worker_ssim), (direct_db, direct_ssim) = (
        (float(db), float(ssim)) for db, ssim in scores
    )
    assert worker_db == pytest.approx(direct_db, abs=0.05)  # uint16 rounding only
    assert worker_ssim == pytest.approx(direct_ssim, abs=0.002)
    assert 20 < worker_db < 60
    assert 'fetch_fused("http://127.0.0.1:' in out
    assert list((tmp_path / "beamline").rglob("uhs_*.h5"))
    for name in ("fusion_panel.png", "attention.png"):
        image = plt.imread(tmp_path / name)
        assert image.ndim == 3
        assert min(image.shape[:2]) > 200
        assert image[..., :3].std() > 0.05  # drawn, not a blank canvas
