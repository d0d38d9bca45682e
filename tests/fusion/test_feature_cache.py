"""Per-frame features once per burst: the same fused frames as window by window."""

import numpy as np
import pytest
import torch

from xfusion_bluesky.fusion import fuse
from xfusion_bluesky.fusion.features import FeatureCache
from xfusion_bluesky.fusion.fusers import ModelFuser
from xfusion_bluesky.fusion.model import edvr_small, edvr_stf_small
from xfusion_bluesky.fusion.model.detail import edvr_stf_detail_small
from xfusion_bluesky.fusion.windows import plan_windows

TINY = {
    "num_feat": 8,
    "deformable_groups": 2,
    "num_extract_block": 1,
    "num_reconstruct_block": 1,
}


def _tiny(method):
    torch.manual_seed(0)
    if method == "edvr":
        return edvr_small(**TINY).eval()
    if method == "edvr_stf":
        return edvr_stf_small(**TINY).eval()
    model = edvr_stf_detail_small(**TINY, detail_feat=4, detail_blocks=1).eval()
    # A fresh head adds exactly zero: give it weights so that it does something.
    torch.nn.init.normal_(model.detail.conv_out.weight, std=0.1)
    return model


@pytest.fixture(scope="module", params=["edvr_stf", "edvr", "edvr_stf_detail"])
def method_model(request):
    return request.param, _tiny(request.param)


def _burst(rng, num_frames, height, width, hr_index):
    lr = rng.random((num_frames, height, width)) * 900 + 50
    hr = rng.random((len(hr_index), 4 * height, 4 * width)) * 4000
    return lr, hr, np.asarray(hr_index)


def _same(a, b):
    """Bit for bit: frames and both raw scores (NaN where the method has none)."""
    return all(
        np.array_equal(x, y, equal_nan=True)
        for x, y in [
            (a.frames, b.frames),
            (a.backward_attention, b.backward_attention),
            (a.forward_attention, b.forward_attention),
        ]
    )


@pytest.mark.parametrize(
    ("size", "hr_index", "separation", "batch"),
    [
        ((8, 12), [1, 5], 1, 1),  # no padding, one window per batch
        pytest.param(  # padded, HR at the ends, s = 2, b = 3
            (10, 14), [0, 4, 9], 2, 3, marks=pytest.mark.slow
        ),
    ],
)
def test_cached_features_fuse_bit_for_bit_like_window_by_window(
    method_model, rng, size, hr_index, separation, batch
):
    method, model = method_model
    lr, hr, index = _burst(rng, 10, *size, hr_index)
    kwargs = {
        "method": method,
        "model": model,
        "lr_separation": separation,
        "batch_size": batch,
        "dtype": torch.float64,
        # The method's own output at the HR frames' instants too.
        "hr_passthrough": False,
    }
    cached = fuse(lr, hr, index, **kwargs)
    plain = fuse(lr, hr, index, feature_cache=False, **kwargs)
    assert _same(cached, plain)
    assert np.isfinite(cached.frames).all()
    assert cached.frames.std() > 0
    # Only the non-default is recorded: the derived run's key stays as before.
    assert "feature_cache" not in cached.params
    assert plain.params["feature_cache"] is False


def test_pass_through_frames_are_the_same_with_the_cache(rng):
    lr, hr, index = _burst(rng, 6, 8, 8, [1, 4])
    model = _tiny("edvr_stf_detail")
    kwargs = {"model": model, "dtype": torch.float64, "batch_size": 2}
    cached = fuse(lr, hr, index, **kwargs)
    plain = fuse(lr, hr, index, feature_cache=False, **kwargs)
    assert cached.hr_passed_through.tolist() == [0, 1, 0, 0, 1, 0]
    assert _same(cached, plain)


def _count_frames(monkeypatch):
    """Spy on ModelFuser.frame_features: count the LR and HR frames it computes."""
    counts = {"lr": 0, "hr": 0, "calls": 0}
    original = ModelFuser.frame_features

    def spy(self, lr, hr):
        counts["calls"] += 1
        counts["lr"] += 0 if lr is None else lr.shape[0]
        counts["hr"] += 0 if hr is None else hr.shape[0]
        return original(self, lr, hr)

    monkeypatch.setattr(ModelFuser, "frame_features", spy)
    return counts


@pytest.mark.parametrize(("method", "num_hr"), [("edvr_stf", 3), ("edvr", 0)])
def test_each_frame_is_computed_once_per_burst(monkeypatch, rng, method, num_hr):
    counts = _count_frames(monkeypatch)
    lr, hr, index = _burst(rng, 12, 8, 8, [0, 5, 11])
    fuse(lr, hr, index, method=method, model=_tiny(method), batch_size=4)
    # One call per batch of 4 windows; every LR frame once, HR frames only where
    # the network has an HR branch.
    assert counts == {"lr": 12, "hr": num_hr, "calls": 3}
    fuse(lr, hr, index, method=method, model=_tiny(method), feature_cache=False)
    assert counts["calls"] == 3


def test_out_of_memory_halving_keeps_the_cached_result(monkeypatch, rng):
    counts = _count_frames(monkeypatch)
    original = ModelFuser.fuse_features
    sizes = []

    def thrifty(self, lr, hr):
        sizes.append(lr[0].shape[0])
        if lr[0].shape[0] > 2:
            raise torch.OutOfMemoryError("out of memory (simulated)")
        return original(self, lr, hr)

    monkeypatch.setattr(ModelFuser, "fuse_features", thrifty)
    lr, hr, index = _burst(rng, 9, 8, 8, [2, 6])
    kwargs = {"method": "edvr_stf", "model": _tiny("edvr_stf"), "dtype": torch.float64}
    cached = fuse(lr, hr, index, batch_size=8, **kwargs)
    assert sizes[:3] == [8, 4, 2]
    assert cached.params["batch_size"] == 2
    # Features computed for the failed batches are kept, not computed again.
    assert (counts["lr"], counts["hr"]) == (9, 2)
    assert _same(cached, fuse(lr, hr, index, feature_cache=False, **kwargs))


def test_the_cache_holds_a_few_frames_and_computes_each_once():
    separation, batch = 3, 4
    plan = plan_windows(40, np.array([0, 7, 15, 22, 30, 39]), lr_separation=separation)
    computed = {"lr": [], "hr": []}

    def load(kind, index):
        computed[kind].extend(index.tolist())
        return torch.as_tensor(index, dtype=torch.float64)[:, None]

    def compute(lr, hr):  # a frame's "features" are its index, twice
        return tuple((x, 2 * x) if x is not None else () for x in (lr, hr))

    cache = FeatureCache(plan, compute, load, uses_hr=True)
    peak = 0
    for first in range(0, 40, batch):
        refs = np.arange(first, min(first + batch, 40))
        lr, hr = cache.window_features(refs)
        peak = max(peak, len(cache))
        assert lr[0][..., 0].tolist() == plan.lr_indices[refs].tolist()
        assert torch.equal(lr[1], 2 * lr[0])
        assert lr[0].shape == (refs.size, 3, 1)
        assert hr[0][:, 0, 0].tolist() == plan.hr_before[refs].tolist()
        assert hr[0][:, 1, 0].tolist() == plan.hr_after[refs].tolist()
        cache.release(through=int(refs[-1]))
        # What later windows still need: LR t+1−s … t+s, the HR frames around.
        assert len(cache) <= 2 * separation + 2
    # While a batch is fused: its new LR frames and the HR frame it moves on to.
    assert peak == batch + 2 * separation + 3
    assert sorted(computed["lr"]) == list(range(40))
    assert sorted(computed["hr"]) == list(range(6))
    assert len(cache) == 0


def test_frame_features_do_not_depend_on_the_frames_beside(rng):
    """LR and HR frames computed apart or together, the same rows (float64)."""
    model = _tiny("edvr_stf_detail").double()
    lr = torch.from_numpy(rng.random((3, 1, 8, 12)))
    hr = torch.from_numpy(rng.random((2, 1, 32, 48)))
    with torch.inference_mode():
        lr_both, hr_both = model.frame_features(lr, hr)
        lr_alone, none = model.frame_features(lr, None)
        nothing, hr_alone = model.frame_features(None, hr[1:])
    assert none == nothing == ()
    assert len(lr_alone) == 4  # the frame, L1, L2, L3
    assert len(hr_alone) == 6  # + the detail head's detail and block mean
    assert all(torch.equal(a, b) for a, b in zip(lr_both, lr_alone, strict=True))
    assert all(torch.equal(a[1:], b) for a, b in zip(hr_both, hr_alone, strict=True))
