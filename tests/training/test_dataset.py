import dataclasses

import numpy as np
import pytest
import torch

from xfusion_bluesky.synthetic.scene import XRAY_FAMILIES
from xfusion_bluesky.training.dataset import (
    WindowDataset,
    WindowSampling,
    augment,
    collate_windows,
    draw_times,
    make_window,
    paired_crop,
)


def _separations(sampling, index):
    """HR separations (before, after) in LR frames of window ``index`` (s = 1)."""
    times = draw_times(
        np.random.default_rng([0, index]),
        sampling,
        np.random.default_rng([0, index, 1]),
    )
    step = times[1] - times[0]
    return round((times[1] - times[3]) / step), round((times[4] - times[1]) / step)


def test_windows_are_deterministic_and_shaped():
    sampling = WindowSampling(families=XRAY_FAMILIES, lr_patch=8, seed=3)
    a, b = make_window(5, sampling), make_window(5, sampling)
    assert a.lr.shape == (3, 1, 8, 8)
    assert a.hr.shape == (2, 1, 32, 32)
    assert a.target.shape == (1, 32, 32)
    assert a.lr.dtype == a.hr.dtype == a.target.dtype == torch.float32
    assert torch.equal(a.lr, b.lr)
    assert torch.equal(a.target, b.target)
    assert not torch.equal(make_window(6, sampling).target, a.target)
    # a dataset item is the stream's sample of that index, whatever the length
    assert torch.equal(WindowDataset(sampling, 10)[5].target, a.target)
    assert len(WindowDataset(sampling, 10)) == 10


def test_hr_crop_sits_exactly_over_its_lr_crop():
    lr = np.arange(12 * 16, dtype=np.float32).reshape(12, 16)
    hr = np.kron(lr, np.ones((4, 4), dtype=np.float32))
    lr_crop, hr_crop = paired_crop(lr, hr, 3, 5, 4)
    assert np.array_equal(hr_crop[::4, ::4], lr_crop)
    assert hr_crop.shape == (16, 16)


def test_augment_flips_every_array_alike():
    lr = np.arange(16, dtype=np.float32).reshape(4, 4)
    hr = np.kron(lr, np.ones((4, 4), dtype=np.float32))
    seen = set()
    for seed in range(64):
        lr_out, hr_out = augment((lr, hr), np.random.default_rng(seed))
        assert np.array_equal(hr_out[::4, ::4], lr_out)
        seen.add(lr_out.tobytes())
    assert len(seen) == 8  # the 8 flips and transposes of a square all occur


def test_noise_free_lr_is_the_binned_truth():
    sampling = WindowSampling(
        families=("natural",),
        lr_patch=8,
        log10_b0_range=(12.0, 12.0),
        max_lr_separation=1,
        p_hr_at_reference=1.0,
        max_hr_separation=1,
    )
    window = make_window(0, sampling)
    # With the HR frame "before" at the reference, it is the truth itself.
    assert torch.equal(window.hr[0], window.target)
    binned = window.target[0].reshape(8, 4, 8, 4).mean(dim=(1, 3))
    torch.testing.assert_close(window.lr[1, 0], binned, atol=1e-5, rtol=0)


def test_hr_separations_are_drawn_up_to_the_maximum():
    sampling = WindowSampling(
        families=XRAY_FAMILIES, max_lr_separation=1, max_hr_separation=3
    )
    drawn = [_separations(sampling, i) for i in range(60)]
    assert {after for _, after in drawn} == {1, 2, 3}
    assert {before for before, _ in drawn} <= {0, 1, 2, 3}
    assert {1, 2, 3} <= {before for before, _ in drawn}


def test_far_hr_puts_exactly_one_hr_frame_in_the_far_range():
    far = WindowSampling(families=XRAY_FAMILIES, max_lr_separation=1, p_far_hr=1.0)
    paper = WindowSampling(families=XRAY_FAMILIES, max_lr_separation=1)
    sides = set()
    for index in range(40):
        before, after = _separations(far, index)
        near_before, near_after = _separations(paper, index)
        assert 0 <= near_before <= 20
        assert 1 <= near_after <= 20
        # One side is moved into 21..66, the other keeps its paper-rule distance.
        if before != near_before:
            assert 21 <= before <= 66
            assert after == near_after
            sides.add("before")
        else:
            assert 21 <= after <= 66
            sides.add("after")
    assert sides == {"before", "after"}


def test_options_change_nothing_else_in_a_window():
    base = WindowSampling(families=XRAY_FAMILIES, lr_patch=8, seed=3)
    decoy = dataclasses.replace(base, p_hr_decoy=1.0)
    for index in range(4):
        plain, swapped = make_window(index, base), make_window(index, decoy)
        assert torch.equal(plain.lr, swapped.lr)
        assert torch.equal(plain.target, swapped.target)
        same = [torch.equal(plain.hr[k], swapped.hr[k]) for k in range(2)]
        assert sorted(same) == [False, True]  # exactly one HR frame is the decoy
    # Enabled with probability 0, the options leave the stream as it was.
    off = dataclasses.replace(base, p_hr_decoy=0.0, p_far_hr=0.0)
    assert torch.equal(make_window(7, off).hr, make_window(7, base).hr)


def test_windows_stack_into_a_batch():
    sampling = WindowSampling(families=("natural",), lr_patch=8)
    batch = collate_windows([make_window(i, sampling) for i in range(3)])
    assert batch.lr.shape == (3, 3, 1, 8, 8)
    assert batch.hr.shape == (3, 2, 1, 32, 32)
    assert batch.target.shape == (3, 1, 32, 32)
    assert torch.equal(batch.target[2], make_window(2, sampling).target)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("p_hr_decoy", 1.5),
        ("p_far_hr", -0.1),
        ("far_hr_separation", (30, 20)),
        ("max_hr_separation", 0),
    ],
)
def test_bad_sampling_options_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=field):
        WindowSampling(families=XRAY_FAMILIES, **{field: value})


def test_held_out_families_are_refused_for_training():
    with pytest.raises(ValueError, match=r"\['foam'\] are held out of training"):
        WindowSampling(families=("friction_stir", "foam"))
    WindowSampling(families=XRAY_FAMILIES)  # every other x-ray family trains
