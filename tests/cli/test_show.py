import numpy as np
import pytest

from xfusion_bluesky.cli.main import main
from xfusion_bluesky.cli.show import load_burst
from xfusion_bluesky.pipeline import fuse_run


@pytest.mark.slow
def test_show_draws_the_frame_between_two_hs_frames(
    tiled, raw_uid, server, tmp_path, capsys
):
    fused = fuse_run(tiled.client, raw_uid, method="bicubic")
    burst = load_burst(fused, 0)
    np.testing.assert_array_equal(burst.hr_index, np.arange(0, 128, 16))
    assert burst.default_frame() == 56  # midway between HS frames at 48 and 64
    panel = burst.panel(57)
    labels = [label for label, _ in panel.images]
    assert labels[0].startswith("UHS frame 57")
    assert labels[2].startswith("nearest HS frame (#4, at UHS frame 64, Δ = -7)")
    np.testing.assert_array_equal(panel.images[1][1], fused.frames[57])
    np.testing.assert_array_equal(
        panel.images[2][1], fused.raw["primary"]["hs_image"][0, 4]
    )
    # The upsampled UHS frame is the bicubic baseline's frame, in HS counts.
    np.testing.assert_allclose(panel.images[0][1], fused.frames[57], atol=1.0)

    out = tmp_path / "show.png"
    assert main(["show", raw_uid[:8], "--out", str(out), *server]) == 0
    assert "UHS frame 56" in capsys.readouterr().out
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 20_000

    assert main(["show", fused.uid, "--frame", "128", *server]) == 1
    assert "--frame must be in 0 … 127" in capsys.readouterr().err
