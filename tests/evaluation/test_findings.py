from xfusion_bluesky.evaluation.findings import findings, ranked_methods
from xfusion_bluesky.evaluation.sweeps import HR_ENDS, SweepPlan

PLAN = SweepPlan(
    noise_db=(None, 20.0), hr_separations=(2, 20, HR_ENDS), lr_separations=(1,)
)
METHODS = ("edvr_stf", "edvr", "bicubic", "bayesian")


def _summary(hr_psnr, noise_psnr):
    """One group; ``hr_psnr``: method → PSNR per HR separation 2, 20, ends."""
    return {
        "noise": [
            {"group": "g", "noise_db": n, "method": m, "psnr_db": noise_psnr[m][i]}
            for m in METHODS
            for i, n in enumerate(PLAN.noise_db)
        ],
        "hr_separation": [
            {
                "group": "g",
                "lr_separation": 1,
                "hr_separation": p,
                "method": m,
                "psnr_db": values[i],
            }
            for m, values in hr_psnr.items()
            for i, p in enumerate(PLAN.hr_separations)
        ],
        "attention": [],
    }


def test_the_papers_ranking_comes_from_the_registry():
    assert ranked_methods(["bayesian", "bicubic", "edvr", "edvr_stf"]) == [
        "edvr_stf",
        "edvr",
        "bicubic",
    ]
    assert ranked_methods(["bicubic", "bayesian"]) == ["bicubic"]


def test_findings_say_where_they_hold_and_where_not():
    noise = {
        "edvr_stf": [40.0, 30.0],
        "edvr": [38.0, 29.0],
        "bicubic": [33.0, 25.0],
        "bayesian": [45.0, 20.0],
    }
    hr = {"edvr_stf": [41.0, 40.0, 39.0], "bayesian": [50.0, 45.0, 46.0]}
    ranking, bayesian, rarer = findings(_summary(hr, noise), PLAN, METHODS, ["g"])[:3]
    assert ranking["finding"].startswith("EDVR-STF ahead of EDVR ahead of bicubic")
    assert ranking["holds"] is True
    # above the methods without HR frames, below both networks at 20 dB
    assert "above EDVR and bicubic" in bayesian["finding"]
    assert "below EDVR-STF and EDVR" in bayesian["finding"]
    assert bayesian["holds"] is True
    # the Bayesian fusion rises again from HR separation 20 to first & last
    assert "HR separation 2, 20, first & last" in rarer["finding"]
    assert rarer["holds"] is False
    assert rarer["details"] == ["g, Bayesian, s = 1: 50.00 → 45.00 → 46.00 dB"]
