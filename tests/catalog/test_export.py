import json
import sys

import h5py
import numpy as np
import pytest
from PIL import Image

from xfusion_bluesky.catalog import export
from xfusion_bluesky.catalog.export import export_fused, format_of
from xfusion_bluesky.errors import InvalidInputError, XFusionError


@pytest.fixture
def fused(fused_sim_run):
    return fused_sim_run


def test_the_suffix_names_the_format():
    assert format_of("a/b.H5") == format_of("x.nxs") == "h5"
    assert format_of("x.tif") == format_of("x.tiff") == "tiff"
    assert format_of("x.mp4") == "mp4"
    assert format_of("frames") == "png"
    with pytest.raises(InvalidInputError, match=r"suffix '\.jpg'"):
        format_of("x.jpg")


@pytest.mark.slow
def test_h5_holds_the_frames_every_record_and_the_documents(fused, tmp_path):
    path = export_fused(fused, tmp_path / "out.h5")
    frames = fused.frames.read()
    with h5py.File(path) as f:
        data = f["entry/data"]
        assert data["fused"].dtype == np.uint16
        np.testing.assert_array_equal(data["fused"][()], frames)
        for key in export.SCORE_KEYS:
            np.testing.assert_array_equal(data[key][()], getattr(fused, key))
        assert data["frame_times_s"].attrs["units"] == "s"
        provenance = f["entry/provenance"]
        assert provenance.attrs["derived_uid"] == fused.uid
        assert provenance.attrs["raw_uid"] == fused.raw_uid
        assert provenance.attrs["method"] == "bicubic"
        start = json.loads(provenance["start_document"][()])
        stop = json.loads(provenance["stop_document"][()])
    assert start["fusion"]["key"] == fused.fusion["key"]
    assert stop["exit_status"] == "success"
    # Not over an existing file unless asked to.
    with pytest.raises(InvalidInputError, match="exists: pass overwrite=True"):
        export_fused(fused, path)
    assert export_fused(fused, path, overwrite=True) == path


@pytest.mark.slow
def test_tiff_and_png_hold_the_frames_pixel_for_pixel(fused, tmp_path, monkeypatch):
    import tifffile

    frames = fused.frames.read()
    # Chunks of 50 frames: the writers must stitch them in order.
    monkeypatch.setattr(export, "CHUNK_BYTES", 50 * frames[0].nbytes)
    export_fused(fused, tmp_path / "a.tif")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "a.tif"), frames)
    with monkeypatch.context() as m:  # without tifffile: Pillow writes the pages
        m.setitem(sys.modules, "tifffile", None)
        export_fused(fused, tmp_path / "b.tiff")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "b.tiff"), frames)

    folder = export_fused(fused, tmp_path / "pngs", format="png")
    pngs = sorted(folder.glob("frame_*.png"))
    assert [p.name for p in pngs[:2]] == ["frame_00000.png", "frame_00001.png"]
    stack = np.stack([np.asarray(Image.open(p)) for p in pngs])
    assert stack.dtype == np.uint16
    np.testing.assert_array_equal(stack, frames)


def test_mp4_needs_ffmpeg_and_says_so(fused, tmp_path, monkeypatch):
    from matplotlib import animation

    if animation.writers.is_available("ffmpeg"):
        path = export_fused(fused, tmp_path / "m.mp4", fps=20)
        assert path.read_bytes()[4:8] == b"ftyp"  # an MP4 container
    monkeypatch.setattr(animation.writers, "is_available", lambda name: False)
    with pytest.raises(XFusionError, match="mp4 needs ffmpeg on the PATH"):
        export_fused(fused, tmp_path / "a.mp4")
    assert not (tmp_path / "a.mp4").exists()
    with pytest.raises(InvalidInputError, match="fps must be > 0"):
        export_fused(fused, tmp_path / "a.mp4", fps=0)


@pytest.mark.parametrize("format", ["h5", "tiff", "png", "mp4"])
@pytest.mark.parametrize("under", ["x", "deeper/x"])
def test_an_output_under_a_file_names_the_file_that_is_in_the_way(
    fused, tmp_path, format, under
):
    """``--out /etc/passwd/x.h5`` used to say only "File exists"."""
    blocker = tmp_path / "passwd"
    blocker.write_text("not a folder")
    out = blocker / under
    with pytest.raises(InvalidInputError) as info:
        export_fused(fused, out, format=format)
    message = str(info.value)
    assert f"cannot write {out}" in message
    assert f"{blocker} is a file, not a folder" in message
    assert blocker.read_text() == "not a folder"  # nothing lost


def test_an_output_folder_without_write_permission_is_named(fused, tmp_path):
    import os

    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.access(locked, os.W_OK):
        pytest.skip("this user writes anywhere (root)")
    with pytest.raises(InvalidInputError, match=f"no permission to write in {locked}"):
        export_fused(fused, locked / "x.h5")
