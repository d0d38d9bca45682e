import pytest

from xfusion_bluesky.cli.main import main
from xfusion_bluesky.pipeline import fuse_run


@pytest.mark.slow
def test_show_writes_the_panel_and_says_which_frame(
    tiled, raw_uid, server, tmp_path, capsys
):
    fused = fuse_run(tiled.client, raw_uid, method="bicubic")
    out = tmp_path / "show.png"
    assert main(["show", raw_uid[:8], "--out", str(out), *server]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"wrote {out}: derived run {fused.uid[:8]}")
    assert "UHS frame 56" in printed  # midway between the HS frames at 48 and 64
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert main(["show", fused.uid, "--frame", "128", *server]) == 1
    assert "frame must be in 0 … 127" in capsys.readouterr().err
    assert main(["show", fused.uid, "--burst", "3", *server]) == 1
    assert "burst must be one of [0]" in capsys.readouterr().err
