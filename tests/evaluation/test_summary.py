import math

import numpy as np

from xfusion_bluesky.evaluation.summary import hr_label, summarise, upgrade_summary
from xfusion_bluesky.evaluation.sweeps import HR_ENDS, SweepPlan
from xfusion_bluesky.evaluation.tables import concat


def _rows(method, hr_separation, psnr_db, n=4):
    return {
        "group": np.full(n, "fast_front"),
        "method": np.full(n, method),
        "noise_db": np.full(n, np.nan),
        "hr_separation": np.full(n, hr_separation),
        "lr_separation": np.full(n, 1),
        "cluster_fraction": np.full(n, np.nan),
        "at_hr": np.arange(n) == 0,
        "after_last_hr": np.zeros(n, dtype=bool),
        "offset": np.arange(n),
        "psnr_db": np.full(n, psnr_db),
        "ssim": np.full(n, 0.9),
        "aad_8bit": np.full(n, 1.0),
        "normalized_backward_attention": np.linspace(1, 0.5, n),
        "normalized_forward_attention": np.linspace(0.5, 1, n),
    }


def test_the_hr_separation_sweep_is_pooled_per_separation_and_method():
    table = concat(
        [
            _rows("edvr_stf", 10, 40.0),
            _rows("edvr_stf", 20, 38.0),
            _rows("bicubic", -1, 30.0),
        ]
    )
    plan = SweepPlan(
        noise_db=(None,), hr_separations=(10, 20), lr_separations=(1,),
        base_hr_separation=20, cluster_fractions=(),
    )  # fmt: skip
    summary = summarise(table, plan, ["edvr_stf"], ["fast_front"])
    rows = {r["hr_separation"]: r for r in summary["hr_separation"]}
    assert set(rows) == {10, 20}
    assert rows[10]["psnr_db"] == 40.0
    assert rows[20]["psnr_db"] == 38.0
    assert rows[20]["frames"] == 3  # the frame at the HR instant is left out
    # the noise sweep sits at the base HR separation
    assert [r["psnr_db"] for r in summary["noise"]] == [38.0]
    (attention,) = summary["attention"]
    assert attention["frames"] == 3
    assert attention["rho_backward"] < 0 < attention["rho_forward"]


def test_tables_name_the_hr_separation():
    assert hr_label(20) == "20"
    assert hr_label(HR_ENDS) == "first & last"


def test_an_old_summary_is_read_with_todays_keys():
    old = {
        "hr_sampling": [{"group": "g", "hr_every": 20, "psnr_db": math.pi}],
        "settings": {"plan": {"hr_every": [2, 20], "base_hr_every": 20}, "x": 1},
        "noise": [],
    }
    new = upgrade_summary(old)
    assert list(new) == ["hr_separation", "settings", "noise"]
    assert new["hr_separation"] == [
        {"group": "g", "hr_separation": 20, "psnr_db": math.pi}
    ]
    assert new["settings"] == {
        "plan": {"hr_separations": [2, 20], "base_hr_separation": 20},
        "x": 1,
    }
    assert "hr_sampling" in old  # the input is left as it was
    assert upgrade_summary(new) == new
