import csv
import json

import numpy as np
import pytest

from xfusion_bluesky.cli.main import main
from xfusion_bluesky.evaluation.tables import CSV_COLUMNS

TINY = [
    "evaluate",
    "--quick",
    "--scenes", "fast_front", "friction_stir",
    "--frames", "9",
    "--hr-size", "32x48",
    "--noise-db", "30", "none",
    "--hr-separation", "4", "ends",
    "--lr-separation", "1", "2",
    "--cluster-fractions", "0.05", "0.4",
    "--timing-size", "8x12",
    "--radiographs", "none",
]  # fmt: skip
FIGURES = {
    "noise": "fig5_noise.png",
    "hr_sep1": "fig6_hr_separation_s1.png",
    "hr_sep2": "figS3_hr_separation_s2.png",
    "attention": "fig7_attention.png",
    "attention_hist": "figS5_attention_hist.png",
    "timing": "fig8_timing.png",
    "clusters": "figS2_clusters.png",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluation")
    assert main([*TINY, "--out", str(out)]) == 0
    return out


@pytest.mark.slow  # the shared tiny evaluation takes ~6 s
def test_tiny_evaluation_writes_every_file(tiny):
    summary = json.loads((tiny / "summary.json").read_text())
    assert summary["figures"] == FIGURES
    for name in FIGURES.values():
        assert 5_000 < (tiny / name).stat().st_size < 150_000
    report = (tiny / "report.md").read_text()
    for name in FIGURES.values():
        assert f"]({name})" in report
    for section in ("## The paper's findings", "## LR noise", "## Speed"):
        assert section in report
    assert {f["holds"] for f in summary["findings"]} <= {True, False, None}
    assert len(summary["findings"]) == 4
    assert set(summary["timing"]) == {
        "edvr_stf",
        "edvr",
        "bicubic",
        "bayesian",
        "edvr_stf_detail",
    }


@pytest.mark.slow  # the shared tiny evaluation takes ~6 s
def test_results_csv_has_one_row_per_frame_condition_and_method(tiny):
    with (tiny / "results.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert tuple(rows[0]) == CSV_COLUMNS
    summary = json.loads((tiny / "summary.json").read_text())
    assert len(rows) == summary["rows"]
    # 2 sequences × 9 frames × (5 methods × (2 noise levels at HR every 8 + 2 HR
    # spacings × 2 separations) + Bayesian × 2 cluster fractions × 2 noise levels)
    assert len(rows) == 2 * 9 * (5 * (2 + 2 * 2) + 2 * 2)
    stf = [r for r in rows if r["method"] == "edvr_stf"]
    assert all(r["backward_attention"] for r in stf)
    assert not any(r["backward_attention"] for r in rows if r["method"] == "bicubic")
    noisy = [float(r["lr_psnr_db"]) for r in rows if r["noise_db"] == "30"]
    assert np.allclose(noisy, 30, atol=0.2)
    assert {r["hr_separation"] for r in rows} == {"4", "8", "0"}


@pytest.mark.slow  # the shared tiny evaluation takes ~6 s
def test_rerun_resumes_from_the_cache(tiny, capsys):
    runs = sorted(tiny.glob("cache/*/*/*.npz"))
    stamps = [p.stat().st_mtime_ns for p in runs]
    (tiny / "report.md").unlink()
    assert main([*TINY, "--out", str(tiny)]) == 0
    assert [p.stat().st_mtime_ns for p in runs] == stamps
    assert sorted(tiny.glob("cache/*/*/*.npz")) == runs
    assert (tiny / "report.md").is_file()
    assert "report:" in capsys.readouterr().out


def test_a_recording_of_yours_is_evaluated_against_its_truth(tmp_path):
    from xfusion_bluesky.synthetic.degradation import bin_frames
    from xfusion_bluesky.synthetic.scene import generate_scene

    truth = 1000 * generate_scene("fast_front", num_frames=7, height=32, width=48)
    np.save(tmp_path / "lr.npy", bin_frames(truth))
    np.save(tmp_path / "hr.npy", truth[[0, 6]])
    np.save(tmp_path / "truth.npy", truth)
    args = ["evaluate", "--out", str(tmp_path / "out"), "--no-timing"]
    args += ["--methods", "bicubic", "bayesian"]
    args += ["--lr", str(tmp_path / "lr.npy"), "--hr", str(tmp_path / "hr.npy")]
    args += ["--hr-index", "0", "6", "--truth", str(tmp_path / "truth.npy")]
    assert main(args) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [s["group"] for s in summary["sequences"]] == ["user"]
    scores = {r["method"]: r["psnr_db"] for r in summary["noise"]}
    assert scores["bayesian"] > scores["bicubic"] > 15


def test_a_recording_needs_all_three_files(tmp_path, capsys):
    args = ["evaluate", "--out", str(tmp_path), "--lr", "lr.npy", "--no-timing"]
    assert main(args) == 1
    assert "--lr, --hr and --hr-index" in capsys.readouterr().err


@pytest.mark.slow
def test_a_fused_run_in_tiled_is_evaluated_against_the_sim_truth(
    tmp_path, tiled, RE, sim_devices
):
    from xfusion_bluesky.pipeline import fuse_run
    from xfusion_bluesky.plans.dual_camera import dual_camera_scan

    (uid,) = RE(dual_camera_scan(uhs_frames=128))
    assert fuse_run(tiled.raw, uid, method="bicubic").status == "success"
    out = tmp_path / "out"
    args = ["evaluate", "--out", str(out), "--no-timing", "--radiographs", "none"]
    args += ["--methods", "bicubic", "bayesian", "--tiled", tiled.uri, "--uid", uid]
    assert main(args) == 0
    saved = {p.name for p in (out / "tiled_input").iterdir()}
    assert saved == {"lr.npy", "hr.npy", "hr_index.npy", "truth.npy"}
    truth = np.load(out / "tiled_input" / "truth.npy")
    assert truth.shape == (128, 64, 96)
    np.testing.assert_array_equal(
        np.load(out / "tiled_input" / "hr_index.npy"), np.arange(0, 128, 16)
    )
    summary = json.loads((out / "summary.json").read_text())
    assert [s["group"] for s in summary["sequences"]] == ["user"]
    scores = {r["method"]: r["psnr_db"] for r in summary["noise"]}
    assert scores["bayesian"] > scores["bicubic"] > 15
