import itertools

import numpy as np
import pytest

from xfusion_bluesky.catalog.burst import load_burst, panel_labels
from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.metrics import psnr
from xfusion_bluesky.pipeline import fuse_run


@pytest.fixture
def fused(tiled, RE, sim_devices):
    """Bicubic fusion of one tiny sim burst (UHS 16×24, HS 64×96, HR separation 16)."""
    from xfusion_bluesky.plans.dual_camera import dual_camera_scan

    (uid,) = RE(dual_camera_scan())
    return fuse_run(tiled.client, uid, method="bicubic")


@pytest.mark.slow
def test_burst_panel_shows_the_frames_fusion_used(fused):
    burst = load_burst(fused, 0)
    np.testing.assert_array_equal(burst.hr_index, np.arange(0, 128, 16))
    assert burst.default_frame() == 56  # midway between HS frames at 48 and 64
    panel = burst.panel(57)
    labels = [label for label, _ in panel.images]
    assert labels[0].startswith("UHS frame 57")
    assert labels[1] == "fused\nbicubic"
    assert labels[2] == "nearest HS frame #4\nat UHS frame 64, Δ = -7"
    np.testing.assert_array_equal(panel.images[1][1], fused.frames[57])
    np.testing.assert_array_equal(
        panel.images[2][1], fused.raw["primary"]["hs_image"][0, 4]
    )
    # The upsampled UHS frame is the bicubic baseline's frame, in HS counts.
    np.testing.assert_allclose(panel.images[0][1], fused.frames[57], atol=1.0)
    np.testing.assert_array_equal(burst.fused_frames(), fused.frames.read())
    np.testing.assert_allclose(burst.series.times_us, fused.frame_times_s * 1e6)
    with pytest.raises(InvalidInputError, match="frame must be in 0 … 127"):
        burst.panel(128)
    with pytest.raises(InvalidInputError, match=r"burst must be one of \[0\]"):
        load_burst(fused, 1)


@pytest.mark.slow
def test_ground_truth_is_what_the_hs_camera_saw_without_noise(fused, tmp_path):
    burst = load_burst(fused, 0)
    truth = burst.ground_truth()
    assert truth.shape == (128, 64, 96)
    assert truth.dtype == np.float32
    # At the HS instants the truth is the recorded HS frame less its noise.
    recorded = burst.hr[burst.hs_used].astype(np.float32)
    db = psnr(recorded, truth[burst.hr_index], data_range=burst.full_scale)
    assert np.all(db > 30)
    # Against the frame after, the event has moved: clearly worse.
    moved = psnr(
        recorded[:-1], truth[burst.hr_index[:-1] + 8], data_range=burst.full_scale
    )
    assert np.mean(moved) < np.mean(db[:-1]) - 3

    paths = burst.save_inputs(tmp_path / "inputs")
    assert set(paths) == {"lr", "hr", "hr_index", "truth"}
    np.testing.assert_array_equal(np.load(paths["truth"]), truth)
    np.testing.assert_array_equal(np.load(paths["hr"]), burst.hr[burst.hs_used])
    np.testing.assert_array_equal(np.load(paths["hr_index"]), burst.hr_index)


def test_a_failed_run_has_no_burst(tiled, RE, sim_devices, tmp_path):
    from xfusion_bluesky.plans.dual_camera import dual_camera_scan

    (uid,) = RE(dual_camera_scan())
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"")
    failed = fuse_run(tiled.client, uid, model=broken)
    with pytest.raises(InvalidInputError, match=r"is failed .*no fused burst"):
        load_burst(failed, 0)


@pytest.mark.slow
def test_show_panel_keeps_every_title_inside_the_figure(fused_sim_run, monkeypatch):
    """The third frame's title used to be cut off at the figure's right edge."""
    from xfusion_bluesky.evaluation import panels

    drawn = []
    monkeypatch.setattr(panels, "_save_png", lambda fig, path, dpi: drawn.append(fig))
    burst = load_burst(fused_sim_run, 0)
    panel = burst.panel(burst.default_frame())
    # The longest titles a 256-frame burst gives, on this burst's frames.
    labels = panel_labels(255, "edvr_stf", 15, 240)
    images = [
        (label, image) for label, (_, image) in zip(labels, panel.images, strict=True)
    ]
    panels.frame_panel(
        "unused.png",
        images,
        series=burst.series,
        ref_time_us=panel.time_us,
        title=panel.title.replace(fused_sim_run.uid[:8], "f" * 8),
    )
    (fig,) = drawn
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    titles = [ax.title for ax in fig.axes if ax.get_title()] + [fig._suptitle]
    assert len(titles) == 4
    for text in titles:
        extent = text.get_window_extent(renderer)
        assert box.x0 <= extent.x0, text.get_text()
        assert extent.x1 <= box.x1, text.get_text()
        assert box.y0 <= extent.y0, text.get_text()
        assert extent.y1 <= box.y1, text.get_text()
    # Neither do the frames' titles run into each other.
    image_titles = sorted(
        (ax.title.get_window_extent(renderer) for ax in fig.axes[:3]),
        key=lambda e: e.x0,
    )
    for left, right in itertools.pairwise(image_titles):
        assert left.x1 <= right.x0
    panels.agg_pyplot().close(fig)
