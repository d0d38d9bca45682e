import json
import sys

import h5py
import numpy as np
import pytest
from PIL import Image

from xfusion_bluesky.catalog import fetch_fused
from xfusion_bluesky.cli.main import main
from xfusion_bluesky.pipeline import fuse_run


@pytest.fixture
def fused(tiled, raw_uid):
    return fuse_run(tiled.client, raw_uid, method="bicubic")


@pytest.mark.slow
def test_h5_holds_frames_scores_and_provenance(fused, server, tmp_path, capsys):
    path = tmp_path / "out.h5"
    # A raw uid names its newest successful fusion.
    assert (
        main(["export", fused.raw_uid, "--format", "h5", "--out", str(path), *server])
        == 0
    )
    assert f"wrote {path}" in capsys.readouterr().out
    expected = fetch_fused(fused.catalogs.root, fused.raw_uid)
    with h5py.File(path) as f:
        data = f["entry/data"]
        np.testing.assert_array_equal(data["fused"][()], expected.frames.read())
        assert data["fused"].dtype == np.uint16
        np.testing.assert_array_equal(data["frame_times_s"][()], expected.frame_times_s)
        np.testing.assert_array_equal(data["hr_before"][()], expected.hr_before)
        np.testing.assert_array_equal(
            data["normalized_backward_attention"][()],
            expected.normalized_backward_attention,
        )
        assert f["entry/provenance"].attrs["derived_uid"] == fused.uid
        start = json.loads(f["entry/provenance/start_document"][()])
        assert start["fusion"]["key"] == fused.metadata["fusion"]["key"]
    # Not over an existing file unless asked to.
    argv = ["export", fused.uid, "--format", "h5", "--out", str(path), *server]
    assert main(argv) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0


@pytest.mark.slow
def test_tiff_png_and_mp4(fused, server, tmp_path, monkeypatch, capsys):
    import tifffile
    from matplotlib import animation

    frames = fused.frames.read()
    base = ["export", fused.uid[:8], *server]
    assert main([*base, "--format", "tiff", "--out", str(tmp_path / "a.tif")]) == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "a.tif"), frames)
    with monkeypatch.context() as m:  # without tifffile: Pillow writes the pages
        m.setitem(sys.modules, "tifffile", None)
        assert main([*base, "--format", "tiff", "--out", str(tmp_path / "b.tif")]) == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "b.tif"), frames)

    assert main([*base, "--format", "png", "--out", str(tmp_path / "png")]) == 0
    pngs = sorted((tmp_path / "png").glob("frame_*.png"))
    assert len(pngs) == frames.shape[0]
    np.testing.assert_array_equal(np.asarray(Image.open(pngs[37])), frames[37])

    if animation.writers.is_available("ffmpeg"):
        assert main([*base, "--format", "mp4", "--out", str(tmp_path / "m.mp4")]) == 0
        assert (tmp_path / "m.mp4").stat().st_size > 1000
    monkeypatch.setattr(animation.writers, "is_available", lambda name: False)
    capsys.readouterr()
    assert main([*base, "--format", "mp4", "--out", str(tmp_path / "a.mp4")]) == 1
    assert "mp4 needs ffmpeg on the PATH" in capsys.readouterr().err
    assert not (tmp_path / "a.mp4").exists()


@pytest.mark.slow
def test_a_failed_run_has_nothing_to_export(raw_uid, tiled, server, tmp_path, capsys):
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"")
    failed = fuse_run(tiled.client, raw_uid, model=broken)
    assert failed.status == "failed"
    argv = ["export", failed.uid, "--format", "h5", "--out", str(tmp_path / "x.h5")]
    assert main([*argv, *server]) == 1
    assert "holds no frames (status 'failed': the model" in capsys.readouterr().err
