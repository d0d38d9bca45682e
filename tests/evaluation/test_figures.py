import numpy as np

from xfusion_bluesky.evaluation import figures
from xfusion_bluesky.evaluation.tables import concat, select


def _table(rng):
    blocks = []
    for method in ("edvr_stf", "bicubic"):
        for noise in (np.nan, 30.0):
            n = 8
            blocks.append(
                {
                    "group": np.full(n, "fast_front"),
                    "method": np.full(n, method),
                    "noise_db": np.full(n, noise),
                    "at_hr": np.arange(n) % 4 == 0,
                    "psnr_db": 30 + rng.random(n),
                    "ssim": rng.random(n),
                    "aad_8bit": 5 * rng.random(n),
                }
            )
    return concat(blocks)


def test_box_plots_and_small_figures_are_drawn(tmp_path, rng):
    table = _table(rng)
    assert select(table, noise_db=None).sum() == 16
    path = figures.metric_boxplots(
        tmp_path / "box.png",
        table,
        np.ones(32, dtype=bool),
        x_column="noise_db",
        x_values=[30.0, None],
        x_labels=["30", "none"],
        methods=["edvr_stf", "bicubic"],
        groups={"fast_front": "fast front"},
        xlabel="LR PSNR",
        title="test",
    )
    assert 5_000 < path.stat().st_size < 150_000
    samples = {"g": {"offset": np.arange(1, 20), "backward": rng.random(19)}}
    samples["g"]["forward"] = 1 - samples["g"]["backward"]
    for draw in (figures.attention_curves, figures.attention_histograms):
        out = draw(
            tmp_path / "a.png", samples, groups={"g": "G"}, hr_every=20, title=""
        )
        assert out.stat().st_size > 5_000
    timing = {
        "bicubic": {"seconds_per_frame": 0.01},
        "bayesian": {"seconds_per_frame": 0.1},
    }
    out = figures.timing_bars(
        tmp_path / "t.png", timing, paper={"bayesian": 77.4}, title=""
    )
    assert out.stat().st_size > 5_000
