"""`xfusion-bluesky ingest` refuses every mistake before anything is written.

Tiny recordings (UHS 6 × 8×12 px, HS 2 × 32×48 px): each refusal exits 1 with the
reason on stderr, leaves the catalog's raw runs as they were and no converted
file beside the recordings. The ingest that succeeds, and its fusion, are in
``tests/system/test_ingest.py``.
"""

import json

import numpy as np
import pytest
from recordings import write_hdf5, write_tiff

from xfusion_bluesky.cli.main import main
from xfusion_bluesky.geometry import Similarity
from xfusion_bluesky.ingest import registration_block, write_registration

UHS_RATE, HS_RATE = 2e6, 250e3


@pytest.fixture
def files(tmp_path):
    """A UHS TIFF without times, an HS TIFF with its rate, a registration file."""
    rng = np.random.default_rng(0)
    uhs = write_tiff(
        tmp_path / "uhs.tif", rng.integers(0, 1023, (6, 8, 12), dtype=np.uint16)
    )
    hs = write_tiff(
        tmp_path / "hs.tif",
        rng.integers(0, 4095, (2, 32, 48), dtype=np.uint16),
        frame_rate_hz=HS_RATE,
    )
    block = registration_block(Similarity((32, 48)), (8, 12), measured_by="test")
    registration = write_registration(tmp_path / "registration.json", block)
    return {"uhs": uhs, "hs": hs, "registration": registration, "dir": tmp_path}


def argv(files, *extra, registration=True):
    args = ["ingest", "--uhs", str(files["uhs"]), "--hs", str(files["hs"])]
    if registration:
        args += ["--registration", str(files["registration"])]
    return [*args, *extra]


def refused(args, server, tiled, files, capsys):
    """Run the verb; check it failed, wrote nothing; return its stderr."""
    before = len(tiled.raw)
    assert main([*args, *server]) == 1
    err = capsys.readouterr().err
    assert len(tiled.raw) == before  # nothing written to the catalog
    assert not list(files["dir"].glob("*.*.h5"))  # no conversion left behind
    return err


def test_a_missing_registration_is_refused_and_says_how_to_get_one(
    files, server, tiled, capsys
):
    err = refused(
        argv(files, "--uhs-rate", "2e6", registration=False),
        server,
        tiled,
        files,
        capsys,
    )
    assert "a registration is required (--registration FILE)" in err
    assert "xfusion-bluesky register --uhs FILE --hs FILE" in err
    assert "--from-run UID" in err


def test_a_registration_for_other_frames_is_refused(files, server, tiled, capsys):
    block = registration_block(Similarity((40, 48)), (8, 12), measured_by="test")
    write_registration(files["registration"], block)
    err = refused(argv(files, "--uhs-rate", "2e6"), server, tiled, files, capsys)
    assert "was measured for HS frames of 40×48 px" in err
    assert "the recording's are 32×48 px" in err


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "is not readable JSON"),
        ("[1, 2]", "holds a list, not a JSON object"),
        ('{"hs_shape": [32, 48]}', "lacks offset_hr_px, uhs_shape"),
        (
            '{"offset_hr_px": [0, 0], "hs_shape": [32, 48], "uhs_shape": [8, 12], '
            '"measured_rois": {"uhs": [0, 0, 9, 12]}}',
            "measured with a UHS ROI of 9×12 px",
        ),
        (
            '{"offset_hr_px": [0, 0], "hs_shape": [32, 48], "uhs_shape": [8, 12], '
            '"matrix_hr": [[1, 0, 0], [0, 1, 2]]}',
            "is not the matrix its scale_ratio",
        ),
    ],
)
def test_a_broken_registration_file_is_refused(
    files, server, tiled, capsys, text, reason
):
    files["registration"].write_text(text)
    err = refused(argv(files, "--uhs-rate", "2e6"), server, tiled, files, capsys)
    assert reason in err
    assert str(files["registration"]) in err


def test_a_registration_out_of_range_is_refused(files, server, tiled, capsys):
    block = json.loads(files["registration"].read_text())
    block.update(scale_ratio=5.0, matrix_hr=None)
    files["registration"].write_text(json.dumps(block))
    err = refused(argv(files, "--uhs-rate", "2e6"), server, tiled, files, capsys)
    assert "scale_ratio 5 is outside 3.5 … 4.5" in err


def test_a_registration_off_the_uhs_field_is_refused(files, server, tiled, capsys):
    block = registration_block(
        Similarity((32, 48), offset_hr_px=(40.0, 0.0)), (8, 12), measured_by="test"
    )
    write_registration(files["registration"], block)
    err = refused(argv(files, "--uhs-rate", "2e6"), server, tiled, files, capsys)
    assert "does not overlap the UHS field" in err


def test_a_file_that_does_not_open_is_refused(files, server, tiled, capsys):
    files["uhs"].write_bytes(b"not a TIFF at all")
    err = refused(argv(files, "--uhs-rate", "2e6"), server, tiled, files, capsys)
    assert str(files["uhs"]) in err
    assert "does not open as tiff" in err


def test_frames_that_are_not_2d_are_refused(files, server, tiled, capsys):
    write_tiff(files["hs"], np.zeros((2, 32, 48, 3), dtype=np.uint8))
    err = refused(argv(files, "--uhs-rate", "2e6"), server, tiled, files, capsys)
    assert str(files["hs"]) in err
    assert "not a stack of grayscale frames" in err


def test_swapped_files_are_refused_as_wrong_shapes(files, server, tiled, capsys):
    args = ["ingest", "--uhs", str(files["hs"]), "--hs", str(files["uhs"])]
    args += ["--registration", str(files["registration"]), "--hs-rate", "2e6"]
    err = refused(args, server, tiled, files, capsys)
    assert "(8×12 px) are no bigger than the UHS frames" in err
    assert "are --uhs and --hs swapped?" in err


def test_a_rate_nobody_gave_is_asked_for(files, server, tiled, capsys):
    err = refused(argv(files), server, tiled, files, capsys)
    assert f"the UHS recording {files['uhs']} has no frame times or rate" in err
    assert "give --uhs-rate HZ" in err


def test_a_rate_that_contradicts_the_header_is_refused(files, server, tiled, capsys):
    err = refused(
        argv(files, "--uhs-rate", "2e6", "--hs-rate", "200e3"),
        server,
        tiled,
        files,
        capsys,
    )
    assert "--hs-rate 200000 Hz does not match the header" in err
    assert "(250000 Hz, 2 frames)" in err


def test_frame_times_that_do_not_match_the_frame_count_are_refused(
    files, server, tiled, capsys
):
    frames = np.zeros((6, 8, 12), dtype=np.uint16)
    write_tiff(files["uhs"], frames, frame_times_s=np.arange(5) / UHS_RATE)
    err = refused(argv(files), server, tiled, files, capsys)
    assert "5 frame times for 6 frames" in err


def test_hs_frames_outside_the_uhs_burst_are_refused(files, server, tiled, capsys):
    err = refused(
        argv(files, "--uhs-rate", "2e6", "--hs-delay", "1e-3"),
        server,
        tiled,
        files,
        capsys,
    )
    assert "none of the 2 HS frames" in err
    assert "falls within the UHS burst" in err
    assert "set --hs-delay" in err


def test_an_hs_faster_than_the_uhs_is_refused(files, server, tiled, capsys):
    err = refused(argv(files, "--uhs-rate", "100e3"), server, tiled, files, capsys)
    assert "the HS records faster (250000 Hz) than the UHS (100000 Hz)" in err


@pytest.mark.slow  # converts both files and asks the server: ~1 s
def test_files_the_server_cannot_read_are_refused_and_the_copy_removed(
    files, server, tiled, capsys
):
    # tmp_path is outside the session server's readable storage (its HDF5 folder).
    err = refused(argv(files, "--uhs-rate", "2e6"), server, tiled, files, capsys)
    assert "the Tiled server cannot read the UHS file" in err
    assert str(files["dir"]) in err
    assert sorted(p.name for p in files["dir"].iterdir()) == [
        "hs.tif",
        "registration.json",
        "uhs.tif",
    ]


def test_an_hdf5_recording_is_refused_too_when_its_dataset_is_not_there(
    files, server, tiled, capsys
):
    write_hdf5(files["dir"] / "uhs.h5", np.zeros((6, 8, 12), dtype=np.uint16))
    files["uhs"] = files["dir"] / "uhs.h5"
    err = refused(
        argv(files, "--uhs-rate", "2e6", "--uhs-dataset", "/exchange/data"),
        server,
        tiled,
        files,
        capsys,
    )
    assert "no dataset '/exchange/data'" in err
