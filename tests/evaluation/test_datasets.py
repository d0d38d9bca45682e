import logging

import h5py
import numpy as np
import pytest

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.evaluation.config import EvaluationConfig
from xfusion_bluesky.evaluation.datasets import (
    RADIOGRAPH_FILE,
    default_radiographs,
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


def test_missing_radiographs_are_skipped_with_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        assert radiograph_sequences(tmp_path, num_frames=5) == []
    assert "real radiographs skipped" in caplog.text
    assert str(tmp_path) in caplog.text


def test_the_validation_radiographs_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("XFUSION_VALIDATION", raising=False)
    assert EvaluationConfig().radiographs is None  # not shipped: skipped
    monkeypatch.setenv("XFUSION_VALIDATION", str(tmp_path))
    assert EvaluationConfig().radiographs == tmp_path


def test_the_validation_radiographs_load_when_available():
    folder = default_radiographs()
    if folder is None or not (folder / RADIOGRAPH_FILE).is_file():
        pytest.skip("real validation radiographs not here (set XFUSION_VALIDATION)")
    first, second = radiograph_sequences(
        folder, num_frames=41, max_sequences=2, hr_shape=(128, 192)
    )
    assert (first.name, second.name) == ("radiographs-0", "radiographs-40")
    assert first.truth.shape == second.truth.shape == (41, 128, 160)
    assert first.truth.min() == 0
    assert first.truth.max() == 1
    # consecutive sequences share one frame (before each is scaled on its own)
    assert first.source["frames"] == [0, 40]
    assert second.source["frames"] == [40, 80]
    assert first.source["crop"] == [3, 0, 128, 160]
    # provenance names the file inside the repository, the same on every checkout
    assert first.source["file"] == "data/savu_i13_projections/savu_i13_projections.npz"
    # the percentile range docs/evaluation/summary.json recorded for this sequence
    np.testing.assert_allclose(
        first.source["range"], [0.06126632568427866, 0.7356771809540628], rtol=1e-12
    )
