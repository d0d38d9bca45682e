"""A truncated or corrupt HDF5 file gives a fast, clear failure.

Reading a truncated file through Tiled used to end in HTTP 500 answers that
Tiled's client retried for tens of seconds (26.5 s measured with its default
retries; about 100 s in the report), and the reason named a URL, not the file.
Now the fusion fails within a second with a reason naming the file, and the
server goes on serving.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from fault_raw_runs import burst_arrays, make_raw_run_writer


@pytest.fixture
def write_raw_run(tiled, hdf5_dir):
    return make_raw_run_writer(tiled.raw, hdf5_dir)


def _truncate(path, keep: float = 0.5) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(int(size * keep))


@pytest.mark.slow
@pytest.mark.parametrize("key", ["hs_image", "uhs_image"])
def test_a_truncated_file_fails_fast_and_the_server_still_serves(
    tiled, write_raw_run, key
):
    from xfusion_bluesky.pipeline import fuse_run

    arrays = burst_arrays()
    uid = write_raw_run(**arrays)
    path = write_raw_run.files[uid][key]
    _truncate(path)

    tick = time.perf_counter()
    result = fuse_run(tiled.raw, uid, method="bicubic")
    elapsed = time.perf_counter() - tick
    assert result.status == "failed"
    assert str(path) in result.reason
    assert "truncated or corrupt" in result.reason
    assert "\n" not in result.reason
    assert elapsed < 10, f"took {elapsed:.1f} s"

    # The server still answers, and a sound run right after still fuses.
    good = write_raw_run(**arrays)
    assert tiled.raw[good].metadata["stop"]["exit_status"] == "success"
    fused = fuse_run(tiled.raw, good, method="bicubic")
    assert fused.status == "success", fused.reason
    assert np.asarray(fused.frames[:]).shape[0] == len(arrays["lr"])


@pytest.mark.slow
def test_garbage_in_place_of_a_file_fails_fast(tiled, write_raw_run):
    from xfusion_bluesky.pipeline import fuse_run

    uid = write_raw_run(**burst_arrays())
    path = write_raw_run.files[uid]["uhs_image"]
    path.write_bytes(b"\0" * 4096)
    tick = time.perf_counter()
    result = fuse_run(tiled.raw, uid, method="bicubic")
    assert time.perf_counter() - tick < 10
    assert result.status == "failed"
    assert str(path) in result.reason
    assert "truncated or corrupt" in result.reason


@pytest.mark.slow
def test_a_file_the_server_cannot_read_is_named_even_when_not_mounted_here(
    tiled, write_raw_run, monkeypatch
):
    """The camera folder is not visible here: Tiled's HTTP 500 still names the file."""
    from xfusion_bluesky.catalog import reader
    from xfusion_bluesky.pipeline import fuse_run

    monkeypatch.setattr(reader, "_check_files", lambda node, keys: None)
    uid = write_raw_run(**burst_arrays())
    path = write_raw_run.files[uid]["hs_image"]
    _truncate(path)
    result = fuse_run(tiled.raw, uid, method="bicubic")
    assert result.status == "failed"
    assert str(path) in result.reason
    assert "HTTP 500" in result.reason
    assert "\n" not in result.reason
