import numpy as np
import pytest
from matplotlib import colors
from matplotlib import image as mpimg

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


def _pixels(path):
    """RGB in 0-255 of a PNG, (h, w, 3)."""
    return np.round(255 * mpimg.imread(path)[..., :3]).astype(int)


def _share(pixels, color, alpha=1.0):
    """Share of the pixels painted ``color`` at ``alpha`` over white."""
    rgb = 255 * (alpha * np.array(colors.to_rgb(color)) + (1 - alpha))
    return float((np.abs(pixels - rgb).max(axis=-1) <= 3).mean())


def test_box_plots_draw_one_coloured_box_per_method(tmp_path, rng):
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
    pixels = _pixels(path)
    # 6.4 × 7.4 inches at 72 dpi
    assert pixels.shape == (532, 460, 3)
    for method in ("edvr_stf", "bicubic"):
        assert _share(pixels, figures.METHOD_COLORS[method], alpha=0.7) > 0.002
    assert _share(pixels, figures.METHOD_COLORS["bayesian"], alpha=0.7) == 0
    assert path.stat().st_size < 150_000  # small enough for the repository


@pytest.mark.parametrize(
    "draw", [figures.attention_curves, figures.attention_histograms]
)
def test_attention_figures_draw_the_scores_between_hr_frames(tmp_path, rng, draw):
    samples = {"g": {"offset": np.arange(1, 20), "backward": rng.random(19)}}
    samples["g"]["forward"] = 1 - samples["g"]["backward"]
    out = draw(
        tmp_path / "a.png", samples, groups={"g": "G"}, hr_separation=20, title=""
    )
    pixels = _pixels(out)
    assert pixels.ndim == 3
    assert pixels.shape[2] == 3
    if draw is figures.attention_curves:
        # backward in blue, forward in red, one point per offset 1 … 19
        assert _share(pixels, "tab:blue") > 0.001
        assert _share(pixels, "tab:red") > 0.001
    else:
        # viridis cells: more than white, black and grey in the picture
        saturated = np.ptp(pixels, axis=-1) > 60
        assert saturated.mean() > 0.05


def test_timing_bars_are_coloured_per_method(tmp_path):
    timing = {
        "bicubic": {"seconds_per_frame": 0.01},
        "bayesian": {"seconds_per_frame": 0.1},
    }
    out = figures.timing_bars(
        tmp_path / "t.png", timing, paper={"bayesian": 77.4}, title=""
    )
    pixels = _pixels(out)
    assert _share(pixels, figures.METHOD_COLORS["bayesian"], alpha=0.8) > 0.002
    assert _share(pixels, figures.METHOD_COLORS["bicubic"], alpha=0.8) > 0.002
    # the Bayesian bar (10× longer on the log axis) covers more than bicubic's
    assert _share(pixels, figures.METHOD_COLORS["bayesian"], alpha=0.8) > _share(
        pixels, figures.METHOD_COLORS["bicubic"], alpha=0.8
    )
