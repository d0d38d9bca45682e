import logging

import numpy as np
import pytest
import torch

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.fusion import METHODS, FusionResult, MethodSpec, fuse, fuse_iter
from xfusion_bluesky.fusion.engine import default_batch_size
from xfusion_bluesky.fusion.model import (
    edvr_small,
    edvr_stf_small,
    model_id,
)
from xfusion_bluesky.fusion.normalization import normalize_percentile
from xfusion_bluesky.fusion.protocols import FusedBatch, Fuser
from xfusion_bluesky.fusion.windows import normalize_attention

TINY = {
    "num_feat": 8,
    "deformable_groups": 1,
    "num_extract_block": 1,
    "num_reconstruct_block": 1,
}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return edvr_stf_small(**TINY).eval()


@pytest.fixture
def data(rng):
    """Seven LR frames of 8×12 and HR frames at 1 and 5, values in [0, 1]."""
    lr = rng.random((7, 8, 12), dtype=np.float32)
    hr = rng.random((2, 32, 48), dtype=np.float32)
    return lr, hr, np.array([1, 5])


def test_fuse_reproduces_a_direct_model_call(model, data, tmp_path):
    # Authors' checkpoint layout: {'params': state_dict} with their key names.
    path = tmp_path / "authors.pth"
    torch.save({"params": model.state_dict()}, path)
    lr, hr, hr_index = data
    result = fuse(
        lr,
        hr,
        hr_index,
        "edvr_stf",
        model=path,
        normalize=False,
        lr_separation=2,
        dtype=torch.float32,  # the direct call's precision, whatever the default
    )
    with torch.inference_mode():
        for t, lr_pick, hr_pick in [(0, [0, 0, 2], [0, 0]), (3, [1, 3, 5], [0, 1])]:
            out = model(
                torch.from_numpy(lr[lr_pick])[None, :, None],
                torch.from_numpy(hr[hr_pick])[None, :, None],
            )
            expected = out.fused.clamp(0, 1)[0, 0].numpy()
            np.testing.assert_allclose(result.frames[t], expected, atol=1e-6)
            assert result.backward_attention[t] == pytest.approx(out.attention[0, 3])
            assert result.forward_attention[t] == pytest.approx(out.attention[0, 4])
    assert result.model_id == model_id(model)
    assert result.params["fuser"]["source"] == str(path)


def test_fuse_normalizes_inputs_and_returns_the_hr_scale(model, data):
    lr, hr, hr_index = data
    lr_counts = (lr * 4000 + 100).astype(np.uint16)
    hr_counts = hr * 2.5e4 - 30.0
    result = fuse(
        lr_counts,
        hr_counts,
        hr_index,
        method="edvr_stf",
        model=model,
        hr_passthrough=False,
    )
    lr_lo, lr_hi = np.percentile(lr_counts, [0.35, 99.65])
    hr_lo, hr_hi = np.percentile(hr_counts, [0.35, 99.65])
    unit = fuse(
        normalize_percentile(lr_counts, lr_lo, lr_hi),
        normalize_percentile(hr_counts, hr_lo, hr_hi),
        hr_index,
        method="edvr_stf",
        model=model,
        normalize=False,
        hr_passthrough=False,
    )
    np.testing.assert_allclose(
        result.frames, hr_lo + unit.frames * (hr_hi - hr_lo), rtol=1e-5, atol=1e-3
    )
    assert result.frames.dtype == np.float32
    assert hr_lo - 1e-3 <= result.frames.min() < result.frames.max() <= hr_hi + 1e-3
    assert result.params["hr_range"] == pytest.approx([hr_lo, hr_hi])


def test_affine_change_of_inputs_changes_outputs_accordingly(model, data):
    lr, hr, hr_index = data
    base = fuse(lr * 3.0 + 7.0, hr, hr_index, method="edvr_stf", model=model)
    scaled = fuse(lr, hr * 5.0 + 100.0, hr_index, method="edvr_stf", model=model)
    np.testing.assert_allclose(
        scaled.frames, base.frames * 5.0 + 100.0, rtol=1e-5, atol=1e-4
    )
    np.testing.assert_allclose(
        scaled.backward_attention, base.backward_attention, rtol=1e-4
    )


def test_batch_size_does_not_change_the_result(model, data):
    one = fuse(*data, method="edvr_stf", model=model, batch_size=1)
    three = fuse(*data, method="edvr_stf", model=model, batch_size=3)
    np.testing.assert_allclose(one.frames, three.frames, atol=1e-5)
    np.testing.assert_allclose(
        one.forward_attention, three.forward_attention, rtol=1e-4
    )


def test_fuse_iter_yields_every_frame_in_order(model, data):
    stream = fuse_iter(*data, method="edvr_stf", model=model, batch_size=3)
    assert stream.params["batch_size"] == 3
    items = list(stream)
    assert [t for t, _, _ in items] == list(range(7))
    assert [s.window.ref_index for _, _, s in items] == list(range(7))
    result = fuse(*data, method="edvr_stf", model=model, batch_size=2)
    np.testing.assert_allclose(
        np.stack([f for _, f, _ in items]), result.frames, atol=1e-5
    )
    assert items[3][2].window.hr_before == 0
    assert items[5][2].window.hr_at_reference


def test_result_carries_windows_and_normalized_scores(model, data):
    result = fuse(*data, method="edvr_stf", model=model)
    assert isinstance(result, FusionResult)
    assert result.method == "edvr_stf"
    assert result.hr_before.tolist() == [0, 0, 0, 0, 0, 1, 1]
    assert result.hr_before_substituted.tolist() == [True] + [False] * 6
    assert result.hr_after_substituted.tolist() == [False] * 5 + [True] * 2
    assert result.lr_clamped.tolist() == [True] + [False] * 5 + [True]
    assert result.hr_at_reference.tolist() == [0, 1, 0, 0, 0, 1, 0]
    expected = normalize_attention(
        result.backward_attention, result.forward_attention, [1, 5]
    )
    np.testing.assert_array_equal(result.normalized_backward_attention, expected[0])
    np.testing.assert_array_equal(result.normalized_forward_attention, expected[1])


@pytest.mark.parametrize("normalize", [True, False])
def test_inputs_are_not_modified(model, data, normalize):
    lr, hr, hr_index = data
    copies = lr.copy(), hr.copy(), hr_index.copy()
    fuse(lr, hr, hr_index, method="edvr_stf", model=model, normalize=normalize)
    for array, copy in zip((lr, hr, hr_index), copies, strict=True):
        np.testing.assert_array_equal(array, copy)


def test_sizes_not_multiple_of_4_are_padded_and_cropped(model, rng):
    lr = rng.random((4, 9, 14), dtype=np.float32)
    hr = rng.random((2, 36, 56), dtype=np.float32)
    result = fuse(lr, hr, [0, 2], method="edvr_stf", model=model, normalize=False)
    assert result.frames.shape == (4, 36, 56)
    assert result.params["padding"] == {"bottom": 3, "right": 2, "mode": "reflect"}
    # The same as fusing reflect-padded frames and cropping by hand.
    lr_pad = np.pad(lr, ((0, 0), (0, 3), (0, 2)), mode="reflect")
    hr_pad = np.pad(hr, ((0, 0), (0, 12), (0, 8)), mode="reflect")
    padded = fuse(
        lr_pad, hr_pad, [0, 2], method="edvr_stf", model=model, normalize=False
    )
    np.testing.assert_allclose(result.frames, padded.frames[:, :36, :56], atol=1e-6)


def test_tiny_frames_are_padded_too(model, rng):
    result = fuse(
        rng.random((3, 2, 5)),
        rng.random((1, 8, 20)),
        [1],
        method="edvr_stf",
        model=model,
    )
    assert result.frames.shape == (3, 8, 20)
    assert np.isfinite(result.frames).all()


def test_lr_only_edvr_has_no_hr_scores(data):
    torch.manual_seed(1)
    result = fuse(*data, "edvr", model=edvr_small(**TINY))
    assert result.frames.shape == (7, 32, 48)
    assert np.isnan(result.backward_attention).all()
    assert np.isnan(result.normalized_forward_attention).all()


def test_model_passed_in_is_left_as_it_was(data):
    torch.manual_seed(2)
    network = edvr_stf_small(**TINY)  # in training mode
    before = {k: v.clone() for k, v in network.state_dict().items()}
    fuse(*data, "edvr_stf", model=network, dtype=torch.float64, channels_last=True)
    assert network.training
    for key, value in network.state_dict().items():
        assert value.dtype == torch.float32
        assert torch.equal(value, before[key])


def test_float64_bfloat16_and_channels_last_agree_with_float32(model, data):
    float32 = {"dtype": torch.float32}
    reference = fuse(
        *data, method="edvr_stf", model=model, normalize=False, **float32
    ).frames
    for options, atol in [
        ({"dtype": torch.float64}, 1e-5),
        ({**float32, "channels_last": True}, 1e-5),
        ({"dtype": torch.bfloat16}, 0.01),
        ({}, 0.01),  # the device's default: float32 or bfloat16
    ]:
        frames = fuse(
            *data, method="edvr_stf", model=model, normalize=False, **options
        ).frames
        assert frames.dtype == np.float32
        np.testing.assert_allclose(frames, reference, atol=atol)


def test_progress_bar_goes_to_stderr(data, capsys):
    fuse(*data, method="bicubic", progress=True)
    captured = capsys.readouterr()
    assert "7/7" in captured.err
    assert captured.out == ""


def _arrays(rng):
    return rng.random((5, 4, 4)), rng.random((2, 16, 16)), np.array([0, 3])


def _with_nan(array, value=np.nan):
    array = array.copy()
    array[1, 2, 3] = value
    return array


BAD_ARRAYS = [
    # (change of (lr, hr, hr_index) and keyword arguments, error, message)
    (lambda lr, hr, i: (lr[0], hr, i), InvalidInputError, "lr must be a .t, h, w."),
    (lambda lr, hr, i: (lr, hr[None], i), InvalidInputError, "hr must be a .t, h, w."),
    (lambda lr, hr, i: (lr, hr[:, :15], i), InvalidInputError, "exactly 4×"),
    (lambda lr, hr, i: (lr, hr[:, :8, :8], i), InvalidInputError, "exactly 4×"),
    (lambda lr, hr, i: (lr, hr, i[::-1]), InvalidInputError, "hr_index must be sorted"),
    (lambda lr, hr, i: (lr, hr, [0, 5]), InvalidInputError, r"hr_index must lie in"),
    (lambda lr, hr, i: (lr, hr, [-1, 3]), InvalidInputError, r"hr_index must lie in"),
    (lambda lr, hr, i: (lr, hr, [0.0, 3.0]), TypeError, "hr_index must hold integ"),
    (lambda lr, hr, i: (lr, hr, [0, 2, 3]), InvalidInputError, "one entry per HR"),
    (lambda lr, hr, i: (lr, hr, [3, 3]), InvalidInputError, "duplicates"),
    (lambda lr, hr, i: (lr, hr[:0], i[:0]), InvalidInputError, "hr is empty"),
    (lambda lr, hr, i: (lr[:0], hr, i), InvalidInputError, "lr is empty"),
    (lambda lr, hr, i: (_with_nan(lr), hr, i), InvalidInputError, "lr contains NaN"),
    (
        lambda lr, hr, i: (lr, _with_nan(hr, np.inf), i),
        InvalidInputError,
        "hr contains NaN or inf",
    ),
    (lambda lr, hr, i: (lr * 1e300, hr, i), InvalidInputError, "lr holds values in"),
    (lambda lr, hr, i: (lr, (hr - 0.5) * 3e38, i), InvalidInputError, "beyond what"),
    (lambda lr, hr, i: (lr + 0j, hr, i), TypeError, "lr must hold real numbers"),
    (lambda lr, hr, i: (lr, hr > 0.5, i), TypeError, "hr must hold real numbers"),
    (lambda lr, hr, i: (lr.astype(str), hr, i), TypeError, "lr must hold real"),
]


@pytest.mark.parametrize(("change", "error", "match"), BAD_ARRAYS)
def test_bad_arrays_are_rejected_naming_the_argument(rng, change, error, match):
    with pytest.raises(error, match=match):
        fuse(*change(*_arrays(rng)), method="bicubic")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"lr_separation": 0}, InvalidInputError, "lr_separation must be 1, 2 or 3"),
        ({"lr_separation": 4}, InvalidInputError, "lr_separation must be 1, 2 or 3"),
        ({"lr_separation": 2.0}, TypeError, "lr_separation must be an int"),
        ({"method": "bayes"}, InvalidInputError, "unknown method 'bayes'"),
        ({"method": None}, TypeError, "method must be a str"),
        ({"batch_size": 0}, InvalidInputError, "batch_size"),
        ({"dtype": "bfloat16"}, TypeError, "dtype"),
        ({"dtype": torch.int8}, InvalidInputError, "dtype"),
        ({"model": "weights.pth"}, InvalidInputError, "takes no model"),
        ({"normalize": False}, InvalidInputError, r"normalize=False, lr must lie"),
    ],
)
def test_bad_options_are_rejected_naming_the_argument(rng, kwargs, error, match):
    lr, hr, hr_index = _arrays(rng)
    options = {"method": "bicubic"} | kwargs
    with pytest.raises(error, match=match):
        fuse(lr * 2, hr, hr_index, **options)


def test_lr_separation_must_be_below_the_number_of_frames(rng):
    lr, hr, _ = _arrays(rng)
    with pytest.raises(InvalidInputError, match="smaller than the number of LR"):
        fuse(lr[:3], hr, [0, 2], method="bicubic", lr_separation=3)


def test_a_single_frame_is_refused_with_a_clear_message(rng):
    lr, hr, _ = _arrays(rng)
    with pytest.raises(InvalidInputError, match=r"needs at least 2 LR frames.*got 1"):
        fuse(lr[:1], hr[:1], [0], method="bicubic")


def test_fuse_iter_checks_input_before_the_first_frame(rng):
    lr, hr, _ = _arrays(rng)
    with pytest.raises(InvalidInputError, match="sorted"):
        fuse_iter(lr, hr, [3, 0], method="bicubic")  # no next() needed


def test_model_must_fit_the_method(rng, tmp_path):
    lr, hr, hr_index = _arrays(rng)
    edvr = edvr_small(**TINY)
    with pytest.raises(TypeError, match="needs a EDVRSTF model; got EDVR"):
        fuse(lr, hr, hr_index, "edvr_stf", model=edvr)
    with pytest.raises(TypeError, match="model must be a checkpoint path"):
        fuse(lr, hr, hr_index, "edvr_stf", model=3)
    path = tmp_path / "edvr.pth"
    torch.save({"params": edvr.state_dict()}, path)
    with pytest.raises(InvalidInputError, match=r"holds a EDVR.*method=.edvr."):
        fuse(lr, hr, hr_index, "edvr_stf", model=path)


def test_missing_default_weights_name_the_file_and_how_to_make_them(
    rng, tmp_path, monkeypatch
):
    from xfusion_bluesky.fusion.model import checkpoint

    monkeypatch.setattr(checkpoint, "MODELS_DIR", tmp_path)  # a clone without weights
    with pytest.raises(
        FileNotFoundError, match=r"edvr_stf_small\.pth.*xfusion-bluesky train"
    ):
        fuse(*_arrays(rng), method="edvr_stf")


def test_unavailable_cuda_is_a_clear_error(rng):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available")
    with pytest.raises(InvalidInputError, match="CUDA is not available"):
        fuse(*_arrays(rng), method="bicubic", device="cuda")


@pytest.mark.gpu
def test_cuda_bfloat16_channels_last_matches_cpu(model, data):
    reference = fuse(*data, method="edvr_stf", model=model).frames
    frames = fuse(
        *data,
        method="edvr_stf",
        model=model,
        device="cuda",
        dtype=torch.bfloat16,
        channels_last=True,
    ).frames
    assert frames.dtype == np.float32
    np.testing.assert_allclose(frames, reference, atol=0.1 * np.ptp(reference))


class _SpyFuser:
    """A registered method that records the batches it is given."""

    name = "spy"
    model_id = None
    size_multiple = 4

    def __init__(self):
        self.config = {}
        self.shapes = []

    def fuse_batch(self, lr, hr):
        self.shapes.append((tuple(lr.shape), tuple(hr.shape)))
        fused = torch.nn.functional.interpolate(lr[:, 1], scale_factor=4)
        return FusedBatch(fused, lr[:, 0].mean((1, 2, 3)), lr[:, 2].mean((1, 2, 3)))


def _register(monkeypatch, fuser):
    spec = MethodSpec(
        name=fuser.name,
        label=fuser.name,
        uses_hr=False,
        uses_lr_separation=True,
        default_weights=None,
        create=lambda model, **_: fuser,
        network=None,
    )
    monkeypatch.setitem(METHODS, fuser.name, spec)


def test_new_methods_plug_in_and_windows_are_streamed(monkeypatch, data):
    spy = _SpyFuser()
    _register(monkeypatch, spy)
    stream = fuse_iter(*data, method="spy", batch_size=3, normalize=False)
    assert isinstance(spy, Fuser)
    t, frame, scores = next(stream)
    assert (t, frame.shape) == (0, (32, 48))
    assert spy.shapes == [((3, 3, 1, 8, 12), (3, 2, 1, 32, 48))]  # one batch so far
    assert scores.backward_attention == pytest.approx(data[0][0].mean())
    rest = list(stream)
    assert [item[0] for item in rest] == list(range(1, 7))
    assert [shape[0][0] for shape in spy.shapes] == [3, 3, 1]


def test_default_batch_size_follows_the_frame_size(data):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert default_batch_size(100, 256, cpu) == 1
    assert default_batch_size(8, 12, cpu) == 4
    assert default_batch_size(100, 256, cuda) == 5
    assert default_batch_size(2000, 2000, cuda) == 1
    assert fuse_iter(*data, method="bicubic").params["batch_size"] == 4


class _ThriftyFuser(_SpyFuser):
    """Runs out of memory on batches over 2 windows once 8 frames are fused."""

    name = "thrifty"

    def __init__(self, error=torch.OutOfMemoryError, limit=2):
        super().__init__()
        self.error, self.limit, self.sizes, self.fused = error, limit, [], []

    def fuse_batch(self, lr, hr):
        self.sizes.append(lr.shape[0])
        if lr.shape[0] > self.limit and len(self.fused) >= 8:
            raise self.error("out of memory (simulated)")
        self.fused += torch.round(lr[:, 1].mean((1, 2, 3)) * 100).int().tolist()
        return super().fuse_batch(lr, hr)


def _ramp(n=24):
    """LR frame t is flat at t / 100, so a fused frame tells which t it is."""
    lr = np.repeat(np.arange(n)[:, None, None] / 100.0, 4, 1).repeat(4, 2)
    return lr, np.zeros((2, 16, 16)), np.array([0, n - 1])


def test_out_of_memory_halves_the_batch_and_fuses_each_frame_once(monkeypatch, caplog):
    thrifty = _ThriftyFuser()
    _register(monkeypatch, thrifty)
    stream = fuse_iter(
        *_ramp(), method="thrifty", batch_size=8, normalize=False, hr_passthrough=False
    )
    with caplog.at_level(logging.WARNING, logger="xfusion_bluesky.fusion.stream"):
        items = list(stream)
    assert thrifty.sizes[:4] == [8, 8, 4, 2]  # 0-7 fit, 8-15 fail twice
    assert thrifty.fused == list(range(24))  # no frame fused twice
    assert [t for t, _, _ in items] == list(range(24))
    assert [round(float(f.mean()) * 100) for _, f, _ in items] == list(range(24))
    assert stream.params["batch_size"] == 2
    assert [r.levelname for r in caplog.records].count("WARNING") == 2
    assert "retrying them 4 at a time" in caplog.records[0].getMessage()


@pytest.mark.parametrize("error", [torch.OutOfMemoryError, MemoryError])
def test_out_of_memory_with_one_window_is_raised(monkeypatch, error):
    thrifty = _ThriftyFuser(error, limit=0)
    _register(monkeypatch, thrifty)
    stream = fuse_iter(
        *_ramp(), method="thrifty", batch_size=8, normalize=False, hr_passthrough=False
    )
    frames = []
    with pytest.raises(error, match="simulated"):
        frames.extend(t for t, _, _ in stream)
    assert frames == list(range(8))
    assert thrifty.sizes == [8, 8, 4, 2, 1]


@pytest.mark.parametrize("method", ["edvr_stf", "bicubic", "bayesian"])
def test_a_frame_with_its_own_hr_frame_is_that_hr_frame(method, model, rng):
    lr = rng.random((6, 8, 8)) * 900 + 50
    hr = np.rint(rng.random((2, 32, 32)) * 4000).astype(np.uint16)
    kwargs = {"model": model} if method == "edvr_stf" else {}
    result = fuse(lr, hr, [1, 4], method=method, **kwargs)
    assert result.hr_passed_through.tolist() == [0, 1, 0, 0, 1, 0]
    assert result.params["hr_passthrough"] is True
    # Exactly the input, in its own scale: not clipped at the percentiles.
    np.testing.assert_array_equal(result.frames[[1, 4]], hr.astype(np.float32))
    kept = fuse(lr, hr, [1, 4], method=method, hr_passthrough=False, **kwargs)
    assert not kept.hr_passed_through.any()
    assert not np.array_equal(kept.frames[4], result.frames[4])
    # Frames without an HR frame of their own, and every score, do not change.
    others = [0, 2, 3, 5]
    np.testing.assert_array_equal(result.frames[others], kept.frames[others])
    np.testing.assert_array_equal(result.backward_attention, kept.backward_attention)


def test_the_stream_says_which_frames_it_passed_through(model, rng):
    lr, hr = rng.random((5, 8, 8)), rng.random((2, 32, 32))
    flags = {
        t: s.passed_through
        for t, _, s in fuse_iter(lr, hr, [0, 3], method="edvr_stf", model=model)
    }
    assert flags == {0: True, 1: False, 2: False, 3: True, 4: False}
