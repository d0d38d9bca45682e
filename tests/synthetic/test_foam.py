import numpy as np
import pytest

from xfusion_bluesky.synthetic.scene import (
    FAMILY_SPECS,
    HELD_OUT_FAMILIES,
    SCENE_FAMILIES,
    XRAY_FAMILIES,
    generate_scene,
)

SMALL = {"height": 48, "width": 64}


def test_foam_is_registered_and_held_out_of_training():
    assert "foam" in SCENE_FAMILIES
    assert HELD_OUT_FAMILIES == ("foam",)
    assert "foam" not in XRAY_FAMILIES  # training fine-tunes on XRAY_FAMILIES
    assert {"speed", "density", "photons", "ruptures"} <= set(
        FAMILY_SPECS["foam"].defaults()
    )


def test_training_defaults_never_draw_a_held_out_family():
    from xfusion_bluesky.training.config import TrainConfig

    drawn = {f for stage in TrainConfig().stages for f in stage.families}
    assert drawn
    assert not drawn & set(HELD_OUT_FAMILIES)


def test_seeded_range_and_determinism():
    first = generate_scene("foam", num_frames=3, seed=7, **SMALL)
    again = generate_scene("foam", num_frames=3, seed=7, **SMALL)
    other = generate_scene("foam", num_frames=3, seed=8, **SMALL)
    assert first.dtype == np.float32
    assert first.shape == (3, 48, 64)
    assert first.tobytes() == again.tobytes()
    assert not np.array_equal(first, other)
    assert first.min() >= 0
    assert first.max() <= 1
    assert first.std() > 0.03  # films and cells, not a blank field


def test_films_are_dark_lines_between_bright_cells():
    frame = generate_scene("foam", num_frames=1, seed=1, height=96, width=96)[0]
    empty = generate_scene("foam", num_frames=1, seed=1, density=0, height=96, width=96)
    # Without cells only the windows remain: smooth, brighter on average.
    assert empty.std() < 0.5 * frame.std()
    assert empty.mean() > frame.mean()
    # Films are a minority of the pixels: the median pixel is a bright cell.
    assert np.median(frame) > frame.mean()


def test_the_foam_rises():
    early, later = generate_scene("foam", times=[0.0, 10.0], seed=2, **SMALL)
    # Rising 0.4 px/frame: 4 px after 10 frames, so the frame 4 rows lower at
    # t=0 matches t=10 much better than the frame in place (sway is ~1 px).
    moved = np.abs(later[:-8] - early[4:-4]).mean()
    still = np.abs(later[:-8] - early[:-8]).mean()
    assert moved < 0.6 * still


def test_ruptures_remove_films_at_every_instant():
    kwargs = {"seed": 4, "height": 96, "width": 96, "times": [0.0, 100.0, 300.0]}
    intact = generate_scene("foam", ruptures=0.0, **kwargs)
    broken = generate_scene("foam", ruptures=1.0, **kwargs)
    # Films gone: brighter where they stood. Cells rupture as they rise and new
    # ones keep rising into view, so some films are open at every instant.
    assert (broken - intact).mean() > 0
    opened = [(b - i > 0.1).sum() for b, i in zip(broken, intact, strict=True)]
    assert min(opened) > 20


@pytest.mark.parametrize("zoom", [0.5, 2.0])
def test_zoom_keeps_the_scene_valid(zoom):
    video = generate_scene("foam", num_frames=2, seed=3, zoom=zoom, **SMALL)
    assert np.isfinite(video).all()
    assert np.abs(video[1] - video[0]).mean() > 1e-4
