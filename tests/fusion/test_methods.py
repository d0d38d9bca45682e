import dataclasses

import numpy as np
import pytest
import torch

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.fusion import METHOD_NAMES, METHODS, MethodSpec, fuse, method_spec
from xfusion_bluesky.fusion.methods import DEFAULT_METHOD
from xfusion_bluesky.fusion.model import EDVR, EDVRSTF, default_model_path
from xfusion_bluesky.fusion.protocols import Fuser

TINY = {
    "num_feat": 8,
    "deformable_groups": 1,
    "num_extract_block": 1,
    "num_reconstruct_block": 1,
}


def _model(spec):
    """A tiny random network for network methods, None for the others."""
    if spec.network is None:
        return None
    torch.manual_seed(0)
    return spec.network(**TINY).eval()


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(3)
    lr = rng.random((7, 8, 8), dtype=np.float32)
    hr = rng.random((2, 32, 32), dtype=np.float32)
    return lr, hr, np.array([0, 6])


def test_every_method_has_a_spec_in_registry_order():
    assert METHOD_NAMES == (
        "edvr_stf",
        "edvr",
        "bicubic",
        "bayesian",
        "edvr_stf_detail",
    )
    assert list(METHODS) == list(METHOD_NAMES)
    for name, spec in METHODS.items():
        assert isinstance(spec, MethodSpec)
        assert method_spec(name) is spec
        assert spec.name == name
        assert spec.trainable == (spec.default_weights is not None)
    assert [METHODS[n].label for n in METHOD_NAMES] == [
        "EDVR-STF",
        "EDVR",
        "bicubic",
        "Bayesian",
        "EDVR-STF + HR detail",
    ]
    assert (METHODS["edvr_stf"].network, METHODS["edvr"].network) == (EDVRSTF, EDVR)


def test_unknown_method_lists_the_choices():
    with pytest.raises(InvalidInputError, match="unknown method 'bayes'") as info:
        method_spec("bayes")
    for name in METHOD_NAMES:
        assert name in str(info.value)
    with pytest.raises(TypeError, match="method must be a str"):
        method_spec(None)


def test_specs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        METHODS["edvr"].uses_hr = True


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_factory_builds_a_fuser_named_after_the_method(name):
    spec = method_spec(name)
    fuser = spec.create(
        _model(spec), device=torch.device("cpu"), dtype=None, channels_last=False
    )
    assert isinstance(fuser, Fuser)
    assert fuser.name == name
    assert (fuser.model_id is not None) == spec.trainable
    if spec.trainable:
        assert default_model_path(name).name == spec.default_weights
        assert default_model_path(name).is_file()


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_uses_hr_says_whether_the_hr_frames_change_the_result(name, frames):
    spec, (lr, hr, hr_index) = method_spec(name), frames
    model = _model(spec)
    base = fuse(lr, hr, hr_index, name, model=model, normalize=False)
    other = fuse(
        lr,
        hr[::-1].copy(),
        hr_index,
        name,
        model=model,
        normalize=False,
    )
    between = slice(1, 6)  # instants without an HR frame of their own
    changed = not np.array_equal(base.frames[between], other.frames[between])
    assert changed == spec.uses_hr
    assert np.isfinite(base.backward_attention).all() == (
        spec.network is not None and issubclass(spec.network, EDVRSTF)
    )


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_uses_lr_separation_says_whether_s_changes_the_result(name, frames):
    spec = method_spec(name)
    model = _model(spec)
    one = fuse(*frames, name, model=model, normalize=False, lr_separation=1)
    two = fuse(*frames, name, model=model, normalize=False, lr_separation=2)
    assert (not np.array_equal(one.frames, two.frames)) == spec.uses_lr_separation


def test_scans_request_the_method_fuse_uses_by_default():
    from xfusion_bluesky.plans.dual_camera import FUSION_METHOD

    assert FUSION_METHOD == DEFAULT_METHOD == "edvr_stf_detail"
    assert METHODS[DEFAULT_METHOD].uses_hr
    assert METHODS[DEFAULT_METHOD].trainable
