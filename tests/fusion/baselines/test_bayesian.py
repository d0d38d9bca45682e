import numpy as np
import pytest
import torch
from scipy import ndimage

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.fusion import METHODS, fuse
from xfusion_bluesky.fusion.baselines import BayesianFuser, BayesianSettings
from xfusion_bluesky.fusion.baselines.bayesian import bayesian_fuse
from xfusion_bluesky.fusion.baselines.clustering import kmeans, num_clusters
from xfusion_bluesky.fusion.baselines.kalman import block_mean
from xfusion_bluesky.fusion.protocols import Fuser, PairedFuser
from xfusion_bluesky.metrics import mean_finite, psnr
from xfusion_bluesky.synthetic.degradation import bin_frames
from xfusion_bluesky.synthetic.scene import generate_scene


@pytest.fixture
def texture(rng):
    """A smooth 64×96 texture in [0, 1]."""
    image = ndimage.gaussian_filter(rng.random((64, 96)), 2)
    return ((image - image.min()) / np.ptp(image)).astype(np.float32)


def _moving(texture, shifts):
    """HR frames of ``texture`` shifted right by ``shifts`` pixels, and their LR."""
    hr = np.stack([np.roll(texture, s, axis=1) for s in shifts])
    return hr, bin_frames(hr)


def test_static_scene_returns_the_hr_frame(texture):
    hr, lr = _moving(texture, [0] * 9)
    result = fuse(lr, hr[[0, 8]], [0, 8], "bayesian", normalize=False)
    np.testing.assert_allclose(result.frames, hr, atol=5e-4)
    np.testing.assert_array_equal(result.frames[0], hr[0])  # t on an HR instant
    assert np.isnan(result.backward_attention).all()
    assert result.model_id is None


def test_noise_free_scene_beats_bicubic():
    truth = generate_scene("friction_stir", num_frames=21, height=64, width=96, seed=7)
    lr, hr_index = bin_frames(truth), np.array([0, 10, 20])
    between = ~np.isin(np.arange(21), hr_index)
    scores = {}
    for method in ("bicubic", "bayesian"):
        frames = fuse(lr, truth[hr_index], hr_index, method, normalize=False).frames
        scores[method] = mean_finite(psnr(frames[between], truth[between]))[0]
    assert scores["bayesian"] > scores["bicubic"] + 1.0


def test_block_means_reproduce_the_reference_lr_frame(texture):
    hr, lr = _moving(texture, [0, 2, 5])
    fused = bayesian_fuse(lr, hr[[0, 2]], weight=0.4)
    np.testing.assert_allclose(block_mean(fused), lr[1], atol=1e-4)


def test_affine_change_of_the_lr_frames_changes_nothing(texture):
    hr, lr = _moving(texture, [0, 2, 5])
    fused = bayesian_fuse(lr, hr[[0, 2]], weight=0.4)
    changed = bayesian_fuse(2 * lr + 0.1, hr[[0, 2]], weight=0.4)
    np.testing.assert_allclose(changed, fused, atol=1e-4)


def test_a_brightness_ramp_is_predicted(texture):
    hr = np.stack([0.8 * texture + 0.01 * k for k in (0, 2, 5)]).astype(np.float32)
    fused = bayesian_fuse(bin_frames(hr), hr[[0, 2]], weight=0.4)
    np.testing.assert_allclose(fused, hr[1], atol=5e-4)


def test_same_seed_same_frames_and_a_label_table_comes_close(texture):
    hr, lr = _moving(texture, range(0, 11))
    args = (lr, hr[[0, 10]], [0, 10], "bayesian")
    first = fuse(*args, normalize=False).frames
    np.testing.assert_array_equal(fuse(*args, normalize=False).frames, first)
    table = fuse(*args, model=BayesianSettings(label_bins=256), normalize=False)
    assert np.abs(table.frames - first).mean() < 1e-3


def test_it_uses_the_lr_frames_at_the_hr_instants_not_the_window(texture):
    hr, lr = _moving(texture, range(0, 9))
    args = (lr, hr[[0, 8]], [0, 8], "bayesian")
    one = fuse(*args, lr_separation=1, normalize=False).frames
    three = fuse(*args, lr_separation=3, normalize=False).frames
    np.testing.assert_array_equal(one, three)
    fuser = BayesianFuser()
    assert isinstance(fuser, Fuser)
    assert isinstance(fuser, PairedFuser)
    window = torch.from_numpy(lr[[0, 4, 8]])[None, :, None]
    pair = torch.from_numpy(hr[[0, 8]])[None, :, None]
    fused = fuser.fuse_batch(window, pair).fused  # reference taken as midway
    np.testing.assert_allclose(fused[0, 0].numpy(), one[4], atol=1e-6)


def test_ends_of_the_burst_use_the_one_sided_model(texture):
    hr, lr = _moving(texture, [0, 0, 0, 0, 3, 3, 3])  # moves once, at frame 4
    result = fuse(lr, hr[[2]], [2], "bayesian", normalize=False)
    assert result.hr_before_substituted[:2].all()
    assert np.isfinite(result.frames).all()
    np.testing.assert_allclose(result.frames[:4], hr[:4], atol=5e-4)
    # Block means match the LR frame but where [0, 1] clipping cut the correction.
    assert np.abs(block_mean(result.frames[5]) - lr[5]).mean() < 1e-4


def test_settings_literal_variant_and_cluster_number(texture):
    assert num_clusters(100, 256) == 8
    assert num_clusters(250, 400) == 16
    assert num_clusters(4, 4) == 2
    hr, lr = _moving(texture, [0, 2, 5])
    literal = BayesianSettings(cluster_features="lr3", cluster_fraction=0.2)
    fused = bayesian_fuse(lr, hr[[0, 2]], weight=0.4, settings=literal)
    assert fused.shape == hr[1].shape
    assert np.abs(fused - hr[1]).mean() < 0.05
    with pytest.raises(InvalidInputError, match="cluster_features"):
        BayesianSettings(cluster_features="xyz")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="cluster_fraction"):
        BayesianSettings(cluster_fraction=0.0)


def test_kmeans_finds_separated_clusters(rng):
    centres = np.array([[0.1, 0.1], [0.5, 0.9], [0.9, 0.2]])
    points = np.concatenate([c + 0.01 * rng.standard_normal((300, 2)) for c in centres])
    found = kmeans(points, 3, max_samples=500, seed=3)
    np.testing.assert_allclose(
        np.sort(found, axis=0), np.sort(centres, axis=0), atol=0.01
    )


def _arrays(rng):
    return rng.random((5, 4, 4)), rng.random((2, 16, 16)), np.array([0, 3])


BAD_INPUTS = [
    lambda lr, hr, i: ((lr[0], hr, i), {}),
    lambda lr, hr, i: ((lr, hr[:, :15], i), {}),
    lambda lr, hr, i: ((lr, hr, i[::-1]), {}),
    lambda lr, hr, i: ((lr, hr, [0, 5]), {}),
    lambda lr, hr, i: ((lr, hr, [0.0, 3.0]), {}),
    lambda lr, hr, i: ((lr, hr[:0], i[:0]), {}),
    lambda lr, hr, i: ((np.where(lr > 0.5, np.nan, lr), hr, i), {}),
    lambda lr, hr, i: ((lr + 0j, hr, i), {}),
    lambda lr, hr, i: ((lr, hr, i), {"lr_separation": 4}),
    lambda lr, hr, i: ((lr * 2, hr, i), {"normalize": False}),
    lambda lr, hr, i: ((lr, hr, i), {"batch_size": 0}),
]


@pytest.mark.parametrize("change", BAD_INPUTS)
def test_bad_input_gets_the_same_error_as_every_method(rng, change):
    args, kwargs = change(*_arrays(rng))
    with pytest.raises((TypeError, ValueError)) as bicubic:
        fuse(*args, method="bicubic", **kwargs)
    with pytest.raises(bicubic.type, match=None) as bayesian:
        fuse(*args, method="bayesian", **kwargs)
    assert str(bayesian.value) == str(bicubic.value)


def test_model_must_be_settings_or_none(rng):
    assert "bayesian" in METHODS
    with pytest.raises(InvalidInputError, match="takes no model file"):
        fuse(*_arrays(rng), method="bayesian", model="weights.pth")
    with pytest.raises(TypeError, match="BayesianSettings"):
        fuse(*_arrays(rng), method="bayesian", model=3)
