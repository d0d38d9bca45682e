import h5py
import numpy as np

from xfusion_bluesky.devices.hdf5 import DATASET, BurstAssets, NDFileHDF5Writer


def test_writer_uses_the_ndfilehdf5_default_layout(tmp_path, rng):
    frames = rng.integers(0, 1024, (4, 5, 6), dtype=np.uint16)
    writer = NDFileHDF5Writer(tmp_path / "a" / "x.h5", (5, 6))
    writer.write(0, frames, trigger_time=1.7e9, frame_times_s=np.arange(4) * 1e-6)
    with h5py.File(tmp_path / "a" / "x.h5", "r", swmr=True) as f:  # open for SWMR
        data = f[DATASET]
        assert data.dtype == np.uint16
        assert data.chunks == (1, 5, 6)
        assert np.array_equal(data[:], frames)
        assert f["/entry/instrument/detector/data"].id == data.id  # a hard link
        assert f["/entry"].attrs["NX_class"] == "NXentry"
        attrs = f["/entry/instrument/NDAttributes"]
        assert np.allclose(attrs["FrameTime"][:], [0, 1e-6, 2e-6, 3e-6])
        stamps = attrs["NDArrayTimeStamp"][:] - 1.7e9  # float64 POSIX: ~0.2 µs steps
        assert np.allclose(stamps, attrs["FrameTime"][:], atol=5e-7)
        assert list(attrs["NDArrayUniqueId"][:]) == [1, 2, 3, 4]
        assert attrs["NDArrayEpicsTSSec"][0] == int(1.7e9) - 631152000
    writer.close()


def test_rewritten_slot_and_truncation_on_close(tmp_path):
    writer = NDFileHDF5Writer(tmp_path / "x.h5", (2, 2))
    ones, twos = np.ones((3, 2, 2), np.uint16), np.full((3, 2, 2), 2, np.uint16)
    times = np.zeros(3)
    writer.write(0, ones, trigger_time=0.0, frame_times_s=times)
    writer.write(3, ones, trigger_time=0.0, frame_times_s=times)
    writer.write(3, twos, trigger_time=0.0, frame_times_s=times)  # re-taken burst
    writer.write(6, ones, trigger_time=0.0, frame_times_s=times)  # never emitted
    writer.close(6)
    with h5py.File(tmp_path / "x.h5") as f:
        assert f[DATASET].shape == (6, 2, 2)
        assert f[DATASET][3:].max() == 2
        assert f["/entry/instrument/NDAttributes/FrameTime"].shape == (6,)


def test_burst_assets_one_index_per_burst(tmp_path):
    assets = BurstAssets(str(tmp_path / "x.h5"), "uhs_image", 128, (16, 24))
    resource = assets.stream_resource_doc
    assert resource["uri"] == f"file://localhost{tmp_path / 'x.h5'}"
    assert resource["parameters"]["dataset"] == DATASET
    datums = [assets.stream_datum(i) for i in range(2)]
    assert [d["indices"] for d in datums] == [
        {"start": 0, "stop": 1},
        {"start": 1, "stop": 2},
    ]
    assert {d["stream_resource"] for d in datums} == {resource["uid"]}
