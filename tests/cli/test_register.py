"""`xfusion-bluesky register`: the registration file `ingest` needs, measured or saved.

The target pair is the simulation's static texture seen by a UHS (binned 4×) and
an HS mounted with a known similarity (ratio 4.1, 0.7°, a sub-pixel offset); the
file must give that transform back within the issue's 0.2 grid px.
"""

import json

import numpy as np
import pytest
from recordings import write_tiff

from xfusion_bluesky.cli.main import main
from xfusion_bluesky.devices.sim.targets import render_target
from xfusion_bluesky.geometry import Similarity, resample
from xfusion_bluesky.ingest import read_registration
from xfusion_bluesky.synthetic.degradation import bin_frames

UHS_SHAPE, HS_SHAPE = (16, 24), (56, 80)
TRUTH = Similarity(HS_SHAPE, scale_ratio=4.1, rotation_deg=0.7, offset_hr_px=(6.3, 5.6))


def target_pair(folder, *, blank=False, frames=3, seed=3):
    """Write a static-target recording pair (TIFF), a little noisy; return paths."""
    field_shape = (4 * UHS_SHAPE[0], 4 * UHS_SHAPE[1])
    target = "blank" if blank else "static"
    field = render_target(target, np.zeros(1), field_shape, seed=seed)[0]
    rng = np.random.default_rng(seed)
    uhs = bin_frames(np.repeat(field[None], frames, axis=0), 4) * 1000
    hs = resample(field, TRUTH.matrix(), HS_SHAPE)[None].repeat(frames, axis=0) * 4000
    noisy = [
        np.clip(np.rint(a + rng.normal(0, 2.0, a.shape)), 0, 4095).astype(np.uint16)
        for a in (uhs, hs)
    ]
    uhs_path = write_tiff(folder / "uhs.tif", noisy[0])
    return uhs_path, write_tiff(folder / "hs.tif", noisy[1])


def test_register_measures_a_static_target_pair(tmp_path, capsys):
    uhs, hs = target_pair(tmp_path)
    out = tmp_path / "registration.json"
    assert main(["register", "--uhs", str(uhs), "--hs", str(hs), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"registration {out}" in printed
    assert "scale ratio  4.1" in printed
    block = read_registration(out)
    measured = Similarity.from_metadata(block)
    assert measured.point_rms_hr_px(TRUTH) < 0.2
    assert abs(measured.scale_ratio - 4.1) < 4.1e-3
    assert abs(measured.rotation_deg - 0.7) < 0.05
    assert block["uhs_shape"] == list(UHS_SHAPE)
    assert block["measured_by"] == "register:uhs.tif"
    assert block["measured_rois"] == {"uhs": [0, 0, 16, 24], "hs": [0, 0, 56, 80]}
    assert block["uncertainty"]["point_rms_hr_px"] < 0.2
    assert block["hs_latency_s"] == 0.0
    assert block["latency_measured_by"] == "nominal"
    # The file is plain JSON with the raw run's block keys.
    stored = json.loads(out.read_text())
    np.testing.assert_allclose(stored["matrix_hr"], measured.matrix()[:2])


def test_a_target_without_texture_is_refused_and_nothing_written(tmp_path, capsys):
    uhs, hs = target_pair(tmp_path, blank=True)
    out = tmp_path / "registration.json"
    assert main(["register", "--uhs", str(uhs), "--hs", str(hs), "-o", str(out)]) == 1
    assert "texture" in capsys.readouterr().err
    assert not out.exists()


def test_an_existing_file_is_kept_and_the_options_are_checked(tmp_path, capsys):
    out = tmp_path / "registration.json"
    out.write_text("{}")
    for args in (
        ["register", "--uhs", "a.tif", "--hs", "b.tif", "-o", str(out)],
        ["register", "--uhs", "a.tif", "-o", str(tmp_path / "new.json")],
        ["register", "--from-run", "abc", "--uhs", "a.tif", "--hs", "b.tif", "-o", "x"],
    ):
        with pytest.raises(SystemExit) as info:
            main(args)
        assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"{out} exists: pass --overwrite" in err
    assert "give --uhs FILE and --hs FILE, or --from-run UID" in err
    assert out.read_text() == "{}"


@pytest.mark.slow  # a sim scan
def test_register_saves_a_raw_runs_block(raw_uid, server, tiled, tmp_path, capsys):
    out = tmp_path / "from_run.json"
    assert main(["register", "--from-run", raw_uid[:8], "-o", str(out), *server]) == 0
    stored = json.loads(out.read_text())
    assert stored == tiled.raw[raw_uid].start["registration"]
    block = read_registration(out)  # what ingest reads
    assert block["hs_shape"] == [64, 96]
    assert block["uhs_shape"] == [16, 24]
    argv = ["register", "--from-run", "0000dead", "-o", str(out), "--overwrite"]
    assert main([*argv, *server]) == 1
    assert "no raw run '0000dead'" in capsys.readouterr().err
