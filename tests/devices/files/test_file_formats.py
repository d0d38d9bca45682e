"""open_recording(): TIFF, HDF5 and .cine read back with frames, times and rate."""

import os
import re

import h5py
import numpy as np
import pytest
from recordings import truncate_file, write_cine, write_hdf5, write_tiff

from xfusion_bluesky.devices.files.formats import open_recording
from xfusion_bluesky.devices.hdf5 import DATASET
from xfusion_bluesky.errors import RecordingError

RATE = 2e6
TIMES = np.arange(6) / RATE + 1e-7  # not i/rate exactly: the header's own times


@pytest.fixture
def frames(rng):
    return rng.integers(0, 4096, (6, 5, 7), dtype=np.uint16)


def test_multipage_tiff_reads_frames_times_and_rate(tmp_path, frames):
    path = write_tiff(
        tmp_path / "a.tif", frames, frame_times_s=TIMES, frame_rate_hz=RATE
    )
    rec = open_recording(path)
    assert (rec.format, rec.num_frames, rec.frame_shape) == ("tiff", 6, (5, 7))
    assert rec.dtype == np.uint16
    assert np.array_equal(rec.read(), frames)
    assert np.array_equal(rec.read(2, 4), frames[2:4])
    assert np.allclose(rec.frame_times_s, TIMES, rtol=0, atol=1e-15)
    assert rec.frame_rate_hz == RATE
    # An ImageJ hyperstack carries the rate only (finterval).
    rec = open_recording(
        write_tiff(tmp_path / "ij.tif", frames, frame_rate_hz=RATE, imagej=True)
    )
    assert np.array_equal(rec.read(), frames)
    assert rec.frame_times_s is None
    assert rec.frame_rate_hz == pytest.approx(RATE)


def test_hdf5_reads_area_detector_frame_times_and_finds_the_only_stack(
    tmp_path, frames
):
    rec = open_recording(write_hdf5(tmp_path / "ad.h5", frames, frame_times_s=TIMES))
    assert (rec.format, rec.dataset, rec.num_frames) == ("hdf5", DATASET, 6)
    assert np.array_equal(rec.read(), frames)
    assert np.allclose(rec.frame_times_s, TIMES, rtol=0, atol=1e-15)
    assert rec.frame_rate_hz == pytest.approx(RATE)
    assert rec.tiled_hdf5() == (rec.path, DATASET)  # Tiled reads HDF5 in place
    other = open_recording(
        write_hdf5(tmp_path / "o.h5", frames, dataset="/exchange/data")
    )
    assert other.dataset == "/exchange/data"
    assert other.frame_times_s is None
    assert np.array_equal(other.read(), frames)


@pytest.mark.slow  # importing pims takes ~1 s
def test_cine_reads_through_pims_with_per_frame_timestamps(tmp_path, frames):
    path = write_cine(
        tmp_path / "a.cine", frames, frame_rate_hz=RATE, frame_times_s=TIMES,
        trigger_time=1.7e9 + 0.123,
    )  # fmt: skip
    rec = open_recording(path)
    assert (rec.format, rec.num_frames, rec.frame_shape) == ("cine", 6, (5, 7))
    assert np.array_equal(rec.read(), frames)  # rows the right way up
    assert rec.frame_rate_hz == RATE
    assert rec.bit_depth == 12
    # 2⁻³² s timestamps, differenced without going through float epoch seconds.
    assert np.allclose(rec.frame_times_s, TIMES, rtol=0, atol=1e-9)
    assert rec.trigger_time == pytest.approx(1.7e9 + 0.123, abs=1e-6)
    # Tiled has no .cine adapter: an areaDetector HDF5 copy, times kept.
    target, _ = rec.tiled_hdf5()
    copy = open_recording(target)
    assert np.array_equal(copy.read(), frames)
    assert np.allclose(copy.frame_times_s, TIMES, rtol=0, atol=1e-9)
    (tmp_path / "junk.cine").write_bytes(b"not a cine file")
    with pytest.raises(RecordingError, match=r"junk\.cine: does not open as cine"):
        open_recording(tmp_path / "junk.cine")


@pytest.mark.parametrize(
    "write",
    [
        lambda p, f: write_tiff(p / "t.tif", f, frame_rate_hz=RATE),
        lambda p, f: write_hdf5(p / "t.h5", f, frame_times_s=TIMES),
        pytest.param(
            lambda p, f: write_cine(p / "t.cine", f, frame_rate_hz=RATE),
            marks=pytest.mark.slow,
        ),
    ],
    ids=["tiff", "hdf5", "cine"],
)
def test_a_truncated_recording_is_refused_naming_the_file(tmp_path, frames, write):
    path = truncate_file(write(tmp_path, frames), 0.7)
    with pytest.raises(RecordingError, match=re.escape(path.name)):
        open_recording(path)


def test_bad_files_are_refused_with_the_reason(tmp_path, frames):
    with pytest.raises(RecordingError, match="no such file"):
        open_recording(tmp_path / "missing.tif")
    with pytest.raises(RecordingError, match="unknown recording format"):
        open_recording(tmp_path / "x.avi")
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f.create_dataset(DATASET, shape=(0, 5, 7), dtype="<u2")
    with pytest.raises(RecordingError, match="no frames"):
        open_recording(tmp_path / "empty.h5")
    with h5py.File(tmp_path / "flat.h5", "w") as f:
        f.create_dataset(DATASET, data=frames[0])
    with pytest.raises(RecordingError, match="not a stack"):
        open_recording(tmp_path / "flat.h5")
    with h5py.File(tmp_path / "two.h5", "w") as f:
        f["a"], f["b"] = frames, frames
    with pytest.raises(RecordingError, match="several 3-D datasets"):
        open_recording(tmp_path / "two.h5")
    write_hdf5(tmp_path / "short.h5", frames, frame_times_s=TIMES)
    with h5py.File(tmp_path / "short.h5", "a") as f:
        f["/entry/data/data"].resize(4, axis=0)  # frames lost, times kept
    with pytest.raises(RecordingError, match="inconsistent frame count"):
        open_recording(tmp_path / "short.h5")


def test_tiff_converts_once_to_area_detector_hdf5_for_tiled(tmp_path, frames):
    tiff = open_recording(
        write_tiff(tmp_path / "b.tif", frames, frame_times_s=TIMES, frame_rate_hz=RATE)
    )
    target, dataset = tiff.tiled_hdf5()
    assert (target.name, dataset) == ("b.tif.h5", DATASET)
    copy = open_recording(target)
    assert np.array_equal(copy.read(), frames)
    assert np.allclose(copy.frame_times_s, TIMES, rtol=0, atol=1e-15)
    made = target.stat().st_mtime_ns
    assert tiff.tiled_hdf5()[0] == target
    assert target.stat().st_mtime_ns == made
    # An original newer than its copy (re-exported) is converted again.
    later = made / 1e9 + 5
    os.utime(tiff.path, (later, later))
    tiff.tiled_hdf5()
    assert target.stat().st_mtime_ns != made
    assert not list(tmp_path.glob(".*part"))  # no temporary left behind
