import h5py
import numpy as np
import pytest

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.evaluation.datasets import (
    load_frames,
    radiograph_sequences,
    user_sequence,
)


def test_frames_load_from_npy_npz_and_hdf5(tmp_path, rng):
    frames = rng.random((3, 4, 5)).astype(np.float32)
    np.save(tmp_path / "a.npy", frames)
    np.savez(tmp_path / "b.npz", frames=frames)
    with h5py.File(tmp_path / "c.h5", "w") as h5:
        h5["entry/data/data"] = frames
        h5["other"] = frames[0]
    with h5py.File(tmp_path / "d.h5", "w") as h5:
        h5["x/y"] = frames
        h5["z"] = frames
    for name in ("a.npy", "b.npz", "c.h5", "d.h5:/z"):
        np.testing.assert_array_equal(load_frames(tmp_path / name), frames)
    with pytest.raises(InvalidInputError, match="name one"):
        load_frames(tmp_path / "d.h5")
    frames.tofile(tmp_path / "e.raw")
    with pytest.raises(InvalidInputError, match="unknown frame file type"):
        load_frames(tmp_path / "e.raw")
    with pytest.raises(FileNotFoundError):
        load_frames(tmp_path / "missing.npy")


def test_user_sequence_scales_the_truth_like_the_hr_frames(tmp_path, rng):
    truth = 100 + 50 * rng.random((5, 8, 8))
    np.save(tmp_path / "lr.npy", truth[:, ::4, ::4])
    np.save(tmp_path / "hr.npy", truth[[0, 4]])
    np.save(tmp_path / "truth.npy", truth)
    (tmp_path / "index.txt").write_text("0\n4\n")
    seq = user_sequence(
        tmp_path / "lr.npy",
        tmp_path / "hr.npy",
        tmp_path / "index.txt",
        truth=tmp_path / "truth.npy",
    )
    assert seq.hr_index.tolist() == [0, 4]
    assert seq.truth.min() >= 0
    assert seq.truth.max() <= 1
    np.save(tmp_path / "bad.npy", truth[:4])
    with pytest.raises(InvalidInputError, match="one HR-size frame per LR frame"):
        user_sequence(
            tmp_path / "lr.npy", tmp_path / "hr.npy", [0, 4], truth=tmp_path / "bad.npy"
        )


def test_missing_radiographs_are_skipped(tmp_path):
    assert radiograph_sequences(tmp_path, num_frames=5) == []
