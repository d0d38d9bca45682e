import pytest

from xfusion_bluesky.cli.main import main


@pytest.mark.slow
def test_demo_scans_fuses_and_writes_the_panel(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--frames", "11"]) == 0
    printed = capsys.readouterr().out
    assert "raw run " in printed
    assert list((tmp_path / "beamline").rglob("uhs_*.h5"))
    assert "edvr_stf" in printed
    assert (tmp_path / "fusion_panel.png").stat().st_size > 10_000
