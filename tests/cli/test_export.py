import h5py
import pytest

from xfusion_bluesky.cli.main import main
from xfusion_bluesky.pipeline import fuse_run


@pytest.mark.slow
def test_export_names_the_format_by_suffix_and_keeps_files(
    tiled, raw_uid, server, tmp_path, monkeypatch, capsys
):
    fused = fuse_run(tiled.client, raw_uid, method="bicubic")
    path = tmp_path / "out.h5"
    # A raw uid names its newest successful fusion.
    assert main(["export", raw_uid, "--out", str(path), *server]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {path} (128 frames 64×96 px of derived run {fused.uid}" in printed
    with h5py.File(path) as f:
        assert f["entry/data/fused"].shape == (128, 64, 96)

    argv = ["export", fused.uid[:8], "--out", str(path), *server]
    assert main(argv) == 1  # not over an existing file unless asked to
    assert "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0

    monkeypatch.chdir(tmp_path)  # the default name, in the working folder
    assert main(["export", fused.uid, "--format", "png", *server]) == 0
    assert len(list((tmp_path / f"fused_{fused.uid[:8]}_png").glob("*.png"))) == 128
    assert main(["export", fused.uid, "--out", "a.jpg", *server]) == 1
    assert "cannot tell the format of 'a.jpg'" in capsys.readouterr().err


def test_a_failed_run_has_nothing_to_export(raw_uid, tiled, server, tmp_path, capsys):
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"")
    failed = fuse_run(tiled.client, raw_uid, model=broken)
    assert failed.status == "failed"
    argv = ["export", failed.uid, "--out", str(tmp_path / "x.h5"), *server]
    assert main(argv) == 1
    assert "holds no frames (status 'failed': the model" in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()
