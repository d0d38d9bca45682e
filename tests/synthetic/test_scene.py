import numpy as np
import pytest

from xfusion_bluesky.synthetic.scene import (
    DEFAULT_FAMILY,
    FAMILY_SPECS,
    HELD_OUT_FAMILIES,
    SCENE_FAMILIES,
    XRAY_FAMILIES,
    beam_profile,
    generate_scene,
    phase_contrast,
    scene_version,
    scintillator_blur,
)

SMALL = {"height": 48, "width": 64}


def test_public_constants_describe_every_family():
    assert set(SCENE_FAMILIES) == {
        "additive_manufacturing",
        "friction_stir",
        "fast_front",
        "natural",
        "foam",
    }
    assert HELD_OUT_FAMILIES == ("foam",)
    assert set(XRAY_FAMILIES) == set(SCENE_FAMILIES) - {"natural", *HELD_OUT_FAMILIES}
    assert DEFAULT_FAMILY == "additive_manufacturing"
    assert isinstance(scene_version, str)
    assert scene_version
    assert tuple(FAMILY_SPECS) == SCENE_FAMILIES
    for name, spec in FAMILY_SPECS.items():
        defaults = spec.defaults()
        assert spec.name == name
        assert {"speed", "density", "photons"} <= set(defaults)
        assert defaults["photons"] is None  # ground truth is noiseless by default
    assert FAMILY_SPECS["friction_stir"].pace == "slow"


@pytest.mark.parametrize("family", SCENE_FAMILIES)
def test_shape_dtype_range(family):
    video = generate_scene(family, num_frames=3, seed=1, **SMALL)
    assert video.shape == (3, 48, 64)
    assert video.dtype == np.float32
    assert np.isfinite(video).all()
    assert video.min() >= 0
    assert video.max() <= 1
    assert video.std() > 0.01  # not blank


@pytest.mark.parametrize("family", SCENE_FAMILIES)
def test_seeded_determinism(family):
    first = generate_scene(family, num_frames=3, seed=7, **SMALL)
    again = generate_scene(family, num_frames=3, seed=7, **SMALL)
    other = generate_scene(family, num_frames=3, seed=8, **SMALL)
    assert first.tobytes() == again.tobytes()
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("family", SCENE_FAMILIES)
def test_any_instants_render_the_same_event(family):
    full = generate_scene(family, num_frames=10, seed=3, **SMALL)
    alone = generate_scene(family, times=[5], seed=3, **SMALL)
    shuffled = generate_scene(family, times=[9.0, 2.0, 2.0], seed=3, **SMALL)
    fine = generate_scene(family, times=np.arange(0, 4, 0.25), seed=3, **SMALL)
    np.testing.assert_array_equal(alone[0], full[5])
    np.testing.assert_array_equal(shuffled, full[[9, 2, 2]])
    np.testing.assert_array_equal(fine[::4], full[:4])


def test_noise_is_a_function_of_seed_and_instant():
    kwargs = {"seed": 2, "photons": 500.0, **SMALL}
    full = generate_scene("fast_front", num_frames=4, **kwargs)
    alone = generate_scene("fast_front", times=[3], **kwargs)
    np.testing.assert_array_equal(alone[0], full[3])


@pytest.mark.parametrize("family", SCENE_FAMILIES)
def test_motion_is_continuous_and_follows_speed(family):
    kwargs = {"seed": 4, "height": 96, "width": 96}
    video = generate_scene(family, times=[3.0, 3.001, 4.0, 7.0], **kwargs)
    step = np.abs(video[2] - video[0]).mean()
    assert step > 1e-4  # it moves
    assert np.abs(video[1] - video[0]).mean() < 0.05 * step  # continuously
    faster = generate_scene(family, times=[3.0, 4.0], speed=3.0, **kwargs)
    assert np.abs(faster[1] - faster[0]).mean() > step
    frozen = generate_scene(family, times=[0.0, 50.0], speed=0.0, **kwargs)
    np.testing.assert_array_equal(frozen[0], frozen[1])


def _fastest_change(family):
    """Mean over seeds of the 99.9th percentile of |frame(t+1) - frame(t)|."""
    changes = []
    for seed in range(3):
        video = generate_scene(family, num_frames=9, seed=seed, height=128, width=128)
        changes.append(np.percentile(np.abs(np.diff(video, axis=0)), 99.9))
    return np.mean(changes)


def test_slow_family_moves_less_per_frame_than_fast_ones():
    slow = _fastest_change("friction_stir")
    assert _fastest_change("additive_manufacturing") > 1.5 * slow
    assert _fastest_change("fast_front") > 1.5 * slow


@pytest.mark.parametrize("front", ["shock", "crack", "jet"])
def test_every_front_kind_crosses_the_sample(front):
    video = generate_scene("fast_front", times=[0, 6], seed=5, front=front, **SMALL)
    assert np.abs(video[1] - video[0]).max() > 0.05


def test_zoom_scales_features_and_frame_size_only_widens_the_view():
    def pin_area(size, zoom=1.0):  # no tracers: only the pin is this dark
        frame = generate_scene(
            "friction_stir", num_frames=1, height=size, width=size, density=0, zoom=zoom
        )[0]
        return (frame < 0.1).sum()

    assert 3.5 < pin_area(256, zoom=2.0) / pin_area(256) < 4.5  # area ~ zoom^2
    assert 0.9 < pin_area(384) / pin_area(256) < 1.1  # same pin, wider field


def test_beam_profile_is_brightest_in_the_centre():
    flat = beam_profile(60, 80, seed=3)
    centre = flat[20:40, 27:53].mean()
    for corner in (flat[:10, :10], flat[:10, -10:], flat[-10:, :10], flat[-10:, -10:]):
        assert centre > 1.15 * corner.mean()
    assert np.allclose(beam_profile(60, 80, strength=0.0), 1.0)


def test_scene_blank_region_shows_the_beam_profile():
    # density=0: no spatter, so the top rows are blank gas under the open beam.
    kwargs = {"num_frames": 1, "density": 0.0, "height": 128, "width": 128}
    gas = generate_scene("additive_manufacturing", **kwargs)[0, :12]
    assert gas[:, 48:80].mean() > 1.05 * max(gas[:, :12].mean(), gas[:, -12:].mean())
    uniform = generate_scene("additive_manufacturing", flat_field=0.0, **kwargs)[0, :12]
    assert abs(uniform[:, 48:80].mean() - uniform[:, :12].mean()) < 0.01


def test_phase_contrast_overshoots_at_a_sharp_edge():
    step = np.zeros((16, 32), np.float32)
    step[:, :16] = 1.0  # dense material on the left, empty on the right
    fringed = phase_contrast(step, strength=0.3)[8]
    plain = phase_contrast(step, strength=0.0)[8]
    np.testing.assert_allclose(plain, np.exp(-step[8]), rtol=1e-6)
    assert fringed[16:19].max() > 1.05  # bright fringe outside
    assert fringed[13:16].min() < np.exp(-1.0) - 0.02  # dark fringe inside
    np.testing.assert_allclose(fringed[[0, -1]], plain[[0, -1]], rtol=1e-5)


def test_scene_fringes_overshoot_the_open_beam():
    kwargs = {"num_frames": 1, "density": 0.0, "flat_field": 0.0, "blur_px": 0.0}
    plain = generate_scene("fast_front", fringe=0.0, **kwargs)[0]
    fringed = generate_scene("fast_front", **kwargs)[0]
    open_beam = np.median(plain[:4])  # gas above the sample strip
    assert plain.max() <= open_beam + 1e-3
    assert fringed.max() > open_beam + 0.02


def test_scintillator_blur_softens_edges_and_keeps_the_mean():
    edge = np.zeros((2, 16, 16), np.float32)
    edge[..., 8:] = 1.0
    blurred = scintillator_blur(edge, sigma_px=1.5)
    assert np.abs(np.diff(blurred, axis=-1)).max() < 0.5
    np.testing.assert_allclose(blurred.mean(), edge.mean(), rtol=1e-5)
    np.testing.assert_array_equal(scintillator_blur(edge, sigma_px=0), edge)


def test_shot_noise_is_optional_and_poisson_sized():
    clean = generate_scene("friction_stir", num_frames=2, seed=1, **SMALL)
    np.testing.assert_array_equal(
        clean, generate_scene("friction_stir", num_frames=2, seed=1, photons=0, **SMALL)
    )
    noisy = generate_scene("friction_stir", num_frames=2, seed=1, photons=1e4, **SMALL)
    z = (noisy - clean) / np.sqrt(clean / 1e4)
    assert 0.85 < z.std() < 1.15
    assert abs(z.mean()) < 0.1


@pytest.mark.parametrize("family", SCENE_FAMILIES)
def test_every_family_moves_between_frames(family):
    # Speed lives in benchmarks/bench_scenes.py; here: the video is a video.
    frames = generate_scene(family, num_frames=3, seed=4, **SMALL)
    assert frames.shape == (3, 48, 64)
    assert np.all(np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2)) > 1e-4)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"family": "smoke"}, ValueError, "valid: .*friction_stir"),
        ({"num_frames": 2, "colour": 1}, TypeError, "valid: .*speed"),
        ({"num_frames": 2, "speed": -1}, ValueError, "speed must be in"),
        ({"num_frames": 2, "speed": "fast"}, TypeError, "speed must be a number"),
        ({"num_frames": 2, "front": "shock"}, TypeError, "unknown parameter"),
        ({}, TypeError, "exactly one of num_frames"),
        ({"num_frames": 2, "times": [0]}, TypeError, "exactly one of num_frames"),
        ({"num_frames": 0}, ValueError, "num_frames must be >= 1"),
        ({"num_frames": 2.0}, TypeError, "num_frames must be an int"),
        ({"times": [[0, 1]]}, ValueError, "1-D"),
        ({"times": []}, ValueError, "1-D"),
        ({"times": [0, np.nan]}, ValueError, "finite"),
        ({"num_frames": 1, "height": 4}, ValueError, "height must be >= 8"),
        ({"num_frames": 1, "seed": -1}, ValueError, "seed must be >= 0"),
    ],
)
def test_bad_input_raises_a_clear_error(kwargs, error, match):
    with pytest.raises(error, match=match):
        generate_scene(**kwargs)


def test_bad_front_kind_lists_the_choices():
    with pytest.raises(ValueError, match="'shock', 'crack', 'jet'"):
        generate_scene("fast_front", num_frames=1, front="wave")
