"""setup("sim") end to end, in a subprocess.

``setup()`` starts its own embedded Tiled server, and Tiled keeps server settings
per process: a second server in the test process would replace the API key of
the session's server (every later request 401). So this runs in its own process,
one for both setups here (a process start is ~5 s of imports on 2 cores).
"""

import subprocess
import sys
import textwrap

import pytest

from xfusion_bluesky.settings import Settings

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from xfusion_bluesky.beamline import run_demo_scan, setup
    from xfusion_bluesky.plans.dual_camera import dual_camera_scan
    from xfusion_bluesky.settings import Settings

    tmp_path = Path(sys.argv[1])
    settings = Settings.from_env({"XFUSION_DATA": str(tmp_path)})
    bl = setup("sim", settings=settings)
    try:
        (uid,) = bl.RE(dual_camera_scan())
        assert bl.tiled[-1].start["uid"] == uid
        assert bl.tiled[uid[:8]].start["uid"] == uid
        run = bl.tiled[uid]
        assert run["primary"]["uhs_image"].shape == (1, 128, 64, 96)
        assert run["primary"]["hs_image"].shape == (1, 8, 256, 384)
        assert run.start["timing"]["hr_separation"] == 16
        demo = run_demo_scan(bl)
        assert demo.uid != uid
        assert len(demo.hdf5_files) == 2
        assert all(path.startswith(str(tmp_path)) for path in demo.hdf5_files)
        assert demo.uid in demo.describe()
    finally:
        bl.close()
    assert (tmp_path / "tiled" / "catalog.db").exists()  # persistent catalog
    print("OK")

    # The misaligned simulation, from the environment (XFUSION_SIM_MISALIGN).
    env = {"XFUSION_DATA": str(tmp_path / "misaligned"), "XFUSION_SIM_MISALIGN": "3"}
    bl = setup("sim", roi="demo", settings=Settings.from_env(env))
    try:
        hs, reg = bl.hs, bl.registration
        assert hs.settings().frame_shape == (120, 168), hs.settings()  # 3/4 field
        mount = hs.mount()
        assert not mount.is_whole_pixel
        assert bl.uhs.latency_s.get() > 0 and hs.latency_s.get() > 0
        assert reg.measured_by.get() == "nominal"
        assert (reg.offset_y_hr_px.get(), reg.offset_x_hr_px.get()) == (20, 28)
    finally:
        bl.close()
    print("MISALIGNED OK")
    """
)


@pytest.mark.slow
def test_setup_sim_then_default_scan_and_demo_then_the_misaligned_sim(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["OK", "MISALIGNED", "OK"], done.stdout
    with pytest.raises(ValueError, match="XFUSION_SIM_MISALIGN"):
        Settings.from_env({"XFUSION_SIM_MISALIGN": "yes"})
