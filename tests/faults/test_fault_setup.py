"""``setup()`` follows the environment it documents.

Each test starts an embedded Tiled server of its own (about a second).
"""

import pytest

from xfusion_bluesky.beamline import setup
from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.settings import Settings


def _env(tmp_path, **variables):
    return Settings.from_env({"XFUSION_DATA": str(tmp_path / "env-data"), **variables})


def test_an_explicit_hdf5_dir_in_the_environment_wins_over_data_dir(tmp_path):
    hdf5 = tmp_path / "detector-share"
    settings = _env(tmp_path, XFUSION_HDF5_DIR=str(hdf5))
    bl = setup(data_dir=tmp_path / "data", settings=settings)
    try:
        assert bl.hdf5_dir == hdf5.resolve()
        assert bl.uhs.write_dir == hdf5.resolve()
    finally:
        bl.close()
    assert (tmp_path / "data" / "tiled").is_dir()  # the catalog still goes there


def test_without_it_the_cameras_write_under_data_dir(tmp_path):
    bl = setup(data_dir=tmp_path / "data", settings=_env(tmp_path))
    try:
        assert bl.hdf5_dir == (tmp_path / "data" / "hdf5").resolve()
    finally:
        bl.close()


def test_an_hdf5_dir_argument_wins_over_everything(tmp_path):
    settings = _env(tmp_path, XFUSION_HDF5_DIR=str(tmp_path / "env-hdf5"))
    bl = setup(data_dir=tmp_path / "data", hdf5_dir=tmp_path / "arg", settings=settings)
    try:
        assert bl.hdf5_dir == (tmp_path / "arg").resolve()
    finally:
        bl.close()


def test_the_roi_preset_comes_from_xfusion_roi(tmp_path):
    bl = setup(settings=_env(tmp_path, XFUSION_ROI="demo"))
    try:
        assert bl.uhs.cam.size_y.get() == 40
        assert bl.hs.cam.size_x.get() == 192
    finally:
        bl.close()


def test_an_unknown_roi_is_refused_by_name_before_anything_starts(tmp_path):
    with pytest.raises(InvalidInputError, match=r"XFUSION_ROI.*'tiny'"):
        setup(settings=_env(tmp_path, XFUSION_ROI="tiny"))
    assert not (tmp_path / "env-data").exists()
