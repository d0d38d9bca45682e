from pathlib import Path

import pytest

from xfusion_bluesky.settings import DEFAULT_IOC_PREFIX, Settings


def test_defaults_and_overrides(tmp_path):
    settings = Settings.from_env({"XFUSION_DATA": str(tmp_path)})
    assert settings.hdf5_dir == tmp_path / "hdf5"
    assert settings.tiled_url is None
    assert settings.beamline == "sim"
    assert settings.ioc_prefix == DEFAULT_IOC_PREFIX
    facility = Settings.from_env(
        {
            "XFUSION_TILED_URL": "https://tiled.example.org/api/v1",
            "XFUSION_TILED_API_KEY": "secret",
            "XFUSION_BEAMLINE": "EPICS",
            "XFUSION_HDF5_DIR": "/data/hdf5",
        }
    )
    assert facility.tiled_api_key == "secret"
    assert facility.beamline == "epics"
    assert facility.hdf5_dir == Path("/data/hdf5")


def test_unknown_beamline_mode_is_refused():
    with pytest.raises(ValueError, match="XFUSION_BEAMLINE"):
        Settings.from_env({"XFUSION_BEAMLINE": "real"})


def test_roi_and_where_the_hdf5_files_go_beside_a_data_dir(tmp_path):
    default = Settings.from_env({"XFUSION_DATA": str(tmp_path)})
    assert default.roi == "small"
    assert default.hdf5_dir_for(None) == tmp_path / "hdf5"
    assert default.hdf5_dir_for(tmp_path / "other") == tmp_path / "other" / "hdf5"
    explicit = Settings.from_env(
        {"XFUSION_HDF5_DIR": str(tmp_path / "share"), "XFUSION_ROI": " Demo "}
    )
    assert explicit.roi == "demo"  # setup() checks the name against its presets
    assert explicit.hdf5_dir_for(tmp_path / "other") == tmp_path / "share"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", None), ("off", None), ("on", {}), (" 120 ", {"iterations": 120})],
)
def test_adaptation_setting_becomes_the_workers_adapt_option(value, expected):
    assert Settings.from_env({"XFUSION_ADAPT": value}).fusion_adapt == expected


def test_an_unreadable_adaptation_setting_is_refused():
    with pytest.raises(ValueError, match="XFUSION_ADAPT must be off, on or a number"):
        Settings.from_env({"XFUSION_ADAPT": "fast"})
