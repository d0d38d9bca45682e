import pytest

from xfusion_bluesky.beamline import run_demo_scan, setup
from xfusion_bluesky.plans.dual_camera import dual_camera_scan
from xfusion_bluesky.settings import Settings


@pytest.mark.slow
def test_setup_sim_then_default_scan_and_demo(tmp_path):
    settings = Settings.from_env({"XFUSION_DATA": str(tmp_path)})
    bl = setup("sim", settings=settings)
    try:
        (uid,) = bl.RE(dual_camera_scan())
        assert bl.tiled[-1].start["uid"] == uid
        assert bl.tiled[uid[:8]].start["uid"] == uid
        run = bl.tiled[uid]
        assert run["primary"]["uhs_image"].shape == (1, 128, 64, 96)
        assert run["primary"]["hs_image"].shape == (1, 8, 256, 384)
        assert run.start["timing"]["lr_frames_per_hr_frame"] == 16
        demo = run_demo_scan(bl)
        assert demo.uid != uid
        assert len(demo.hdf5_files) == 2
        assert all(path.startswith(str(tmp_path)) for path in demo.hdf5_files)
        assert demo.uid in demo.describe()
    finally:
        bl.close()
    assert (tmp_path / "tiled" / "catalog.db").exists()  # persistent catalog
