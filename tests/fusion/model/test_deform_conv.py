import pytest
import torch
from torch.nn import functional as F

from xfusion_bluesky.fusion.model import deform_conv, sampling
from xfusion_bluesky.fusion.model.deform_conv import DCNv2Pack, deform_conv2d_torch


def _case(seed, *, b=2, c_in=8, c_out=4, h=7, w=9, groups=2, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c_in, h, w, generator=g, dtype=torch.float64)
    weight = torch.randn(c_out, c_in, 3, 3, generator=g, dtype=torch.float64)
    bias = torch.randn(c_out, generator=g, dtype=torch.float64)
    offset = torch.randn(b, 2 * groups * 9, h, w, generator=g, dtype=torch.float64)
    mask = torch.rand(b, groups * 9, h, w, generator=g, dtype=torch.float64)
    return x, weight, bias, offset * scale, mask


def test_zero_offset_unit_mask_is_a_plain_convolution():
    x, weight, bias, offset, _ = _case(0)
    out = deform_conv2d_torch(x, offset * 0, weight, bias, padding=1)
    torch.testing.assert_close(
        out, F.conv2d(x, weight, bias, padding=1), atol=1e-12, rtol=0
    )


def test_mask_scales_each_tap():
    x, weight, bias, offset, _ = _case(1)
    half = torch.full((x.shape[0], 2 * 9, *x.shape[-2:]), 0.5, dtype=x.dtype)
    out = deform_conv2d_torch(x, offset * 0, weight, bias, padding=1, mask=half)
    expected = 0.5 * F.conv2d(x, weight, None, padding=1) + bias.view(1, -1, 1, 1)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)


def test_offsets_are_interleaved_dy_dx_per_tap():
    # A 1x1-tap kernel (only the centre tap non-zero) and an offset of dy=+1 on the
    # centre tap's even channel must sample the pixel one row below.
    x = torch.arange(30, dtype=torch.float64).view(1, 1, 5, 6)
    weight = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    weight[0, 0, 1, 1] = 1
    offset = torch.zeros(1, 18, 5, 6, dtype=torch.float64)
    offset[:, 2 * 4] = 1.0  # centre tap k=4: channel 8 is dy
    out = deform_conv2d_torch(x, offset, weight, padding=1)
    expected = torch.zeros_like(x)
    expected[..., :-1, :] = x[..., 1:, :]  # the last row samples outside: zero
    torch.testing.assert_close(out, expected)
    offset = torch.zeros_like(offset)
    offset[:, 2 * 4 + 1] = -0.5  # dx = -0.5: halfway to the left neighbour
    out = deform_conv2d_torch(x, offset, weight, padding=1)
    expected = x.clone()
    expected[..., 1:] = 0.5 * (x[..., 1:] + x[..., :-1])
    expected[..., 0] = 0.5 * x[..., 0]  # left corner outside the image counts as 0
    torch.testing.assert_close(out, expected)


def test_samples_beyond_one_pixel_outside_are_zero():
    x = torch.ones(1, 1, 4, 4, dtype=torch.float64)
    weight = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    weight[0, 0, 1, 1] = 1
    offset = torch.zeros(1, 18, 4, 4, dtype=torch.float64)
    offset[:, 8] = 10.0
    assert deform_conv2d_torch(x, offset, weight, padding=1).abs().max() == 0


def test_dcn_pack_starts_as_half_masked_convolution():
    pack = DCNv2Pack(8, 2).double()
    x = torch.randn(1, 8, 6, 6, dtype=torch.float64)
    out = pack(x, torch.randn_like(x))
    expected = 0.5 * F.conv2d(x, pack.weight, None, padding=1) + pack.bias.view(
        1, -1, 1, 1
    )
    torch.testing.assert_close(out, expected)


def test_dispatch_refuses_missing_torchvision(monkeypatch):
    monkeypatch.setattr(deform_conv, "_torchvision_op", None)
    x, weight, bias, offset, mask = _case(2)
    with pytest.raises(RuntimeError, match="torchvision"):
        deform_conv.deform_conv2d(
            x, offset, weight, bias, padding=1, backend="torchvision"
        )
    auto = deform_conv.deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)
    torch.testing.assert_close(
        auto, deform_conv2d_torch(x, offset, weight, bias, padding=1, mask=mask)
    )


@pytest.mark.torchvision
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    ("stride", "padding", "dilation"), [(1, 1, 1), (2, 0, 1), (1, 2, 2)]
)
def test_pure_pytorch_matches_torchvision(dtype, stride, padding, dilation):
    x, weight, bias, _, _ = _case(3)
    x, weight, bias = x.to(dtype), weight.to(dtype), bias.to(dtype)
    h_out = (x.shape[2] + 2 * padding - dilation * 2 - 1) // stride + 1
    w_out = (x.shape[3] + 2 * padding - dilation * 2 - 1) // stride + 1
    g = torch.Generator().manual_seed(4)
    offset = (torch.randn(2, 36, h_out, w_out, generator=g) * 3).to(dtype)
    offset[:, ::5] = offset[
        :, ::5
    ].round()  # integer positions exercise the border rule
    mask = torch.rand(2, 18, h_out, w_out, generator=g).to(dtype)
    kwargs = {"stride": stride, "padding": padding, "dilation": dilation, "mask": mask}
    ours = deform_conv.deform_conv2d(x, offset, weight, bias, backend="torch", **kwargs)
    theirs = deform_conv.deform_conv2d(
        x, offset, weight, bias, backend="torchvision", **kwargs
    )
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(ours, theirs, atol=tol, rtol=tol)


@pytest.mark.gpu
def test_pure_pytorch_runs_on_cuda_like_cpu():
    x, weight, bias, offset, mask = _case(5)
    cpu = deform_conv2d_torch(x, offset, weight, bias, padding=1, mask=mask)
    args = [t.cuda() for t in (x, offset, weight, bias)]
    gpu = deform_conv2d_torch(*args, padding=1, mask=mask.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-10, rtol=1e-10)


def test_the_fallback_is_said_once_per_process_however_many_fusions(
    monkeypatch, caplog
):
    import threading

    monkeypatch.setattr(deform_conv, "_torchvision_op", None)
    monkeypatch.setattr(deform_conv, "_fallback_said", threading.Event())
    x, weight, bias, offset, mask = _case(5)

    def fuse() -> None:
        deform_conv.deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)

    caplog.set_level("WARNING", logger=deform_conv.__name__)
    threads = [threading.Thread(target=fuse) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    fuse()
    said = [r for r in caplog.records if "pure-PyTorch" in r.getMessage()]
    assert len(said) == 1


# -- the fast sampling against the reference --------------------------------------


def _outside_case(seed, *, groups, stride, padding, dilation, dtype):
    """Inputs whose positions fall inside, on and far outside the image border."""
    x, weight, bias, _, _ = _case(seed, groups=groups)
    h_out = (x.shape[2] + 2 * padding - dilation * 2 - 1) // stride + 1
    w_out = (x.shape[3] + 2 * padding - dilation * 2 - 1) // stride + 1
    g = torch.Generator().manual_seed(seed + 100)
    offset = torch.randn(2, 18 * groups, h_out, w_out, generator=g, dtype=torch.float64)
    offset *= 4  # a 7×9 image: many samples land outside (-1, size)
    offset[:, ::3] = offset[:, ::3].round()  # integer positions: corners on the edge
    offset[:, 1, 0, 0] = -1 - 0  # exactly on -1 and on the far edge
    offset[:, 0, -1, -1] = 10.0
    mask = torch.rand(2, 9 * groups, h_out, w_out, generator=g, dtype=torch.float64)
    return [t.to(dtype) for t in (x, offset, weight, bias, mask)]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("groups", [1, 2, 4])
@pytest.mark.parametrize(
    ("stride", "padding", "dilation"), [(1, 1, 1), (2, 0, 1), (1, 2, 2)]
)
def test_fast_sampling_equals_the_reference_bit_for_bit(
    dtype, groups, stride, padding, dilation, monkeypatch
):
    # Same float operations in the same order: equal, not merely close. A small
    # chunk makes the fast path cross chunk boundaries mid-row.
    monkeypatch.setattr(sampling, "_CHUNK", 37)
    x, offset, weight, bias, mask = _outside_case(
        6, groups=groups, stride=stride, padding=padding, dilation=dilation, dtype=dtype
    )
    kwargs = {"stride": stride, "padding": padding, "dilation": dilation}
    for m in (mask, None):
        fast = deform_conv2d_torch(x, offset, weight, bias, mask=m, **kwargs)
        with deform_conv.sampling_implementation("reference"):
            ref = deform_conv2d_torch(x, offset, weight, bias, mask=m, **kwargs)
        assert fast.dtype == dtype
        torch.testing.assert_close(fast, ref, atol=0, rtol=0)


def test_fast_sampling_gradients_match_the_reference():
    # Training and adaptation backpropagate through the one-op-per-corner branch.
    inputs = [
        t.requires_grad_()
        for t in _outside_case(
            7, groups=2, stride=1, padding=1, dilation=1, dtype=torch.float64
        )
    ]
    grads = {}
    for name in ("fast", "reference"):
        out = deform_conv2d_torch(*inputs[:4], padding=1, mask=inputs[4], sampling=name)
        grads[name] = torch.autograd.grad(out.square().sum(), inputs)
    for fast, ref in zip(grads["fast"], grads["reference"], strict=True):
        torch.testing.assert_close(fast, ref, atol=1e-10, rtol=1e-10)


def test_sampling_implementation_switches_and_restores():
    assert deform_conv.current_sampling() == "fast"
    with deform_conv.sampling_implementation("reference"):
        assert deform_conv.current_sampling() == "reference"
        with deform_conv.sampling_implementation("fast"):
            assert deform_conv.current_sampling() == "fast"
        assert deform_conv.current_sampling() == "reference"
    assert deform_conv.current_sampling() == "fast"
    with (
        pytest.raises(ValueError, match="sampling"),
        deform_conv.sampling_implementation("bilinear"),  # type: ignore[arg-type]
    ):
        pass
    assert deform_conv.current_sampling() == "fast"
    x, weight, _, offset, _ = _case(11)
    with pytest.raises(ValueError, match="sampling"):
        deform_conv2d_torch(
            x,
            offset,
            weight,
            padding=1,
            sampling="nearest",  # type: ignore[arg-type]
        )


def test_fast_sampling_reads_channels_last_input_like_contiguous():
    # fuse(channels_last=True) hands the DCN channels-last feature maps.
    x, weight, bias, offset, mask = _case(12, groups=4)
    cl = x.to(memory_format=torch.channels_last)
    out = deform_conv2d_torch(cl, offset, weight, bias, padding=1, mask=mask)
    expected = deform_conv2d_torch(
        x, offset, weight, bias, padding=1, mask=mask, sampling="reference"
    )
    torch.testing.assert_close(out, expected, atol=0, rtol=0)


# -- under autocast: the deformable convolution stays float32 ---------------------


@pytest.mark.parametrize("sampling", ["fast", "reference"])
def test_autocast_bf16_leaves_the_deformable_conv_in_float32(sampling):
    x, offset, weight, bias, mask = _outside_case(
        8, groups=2, stride=1, padding=1, dilation=1, dtype=torch.float32
    )
    offset = offset * 20  # positions of tens of pixels: bf16 keeps ~0.1 px of them
    expected = deform_conv2d_torch(
        x, offset, weight, bias, padding=1, mask=mask, sampling=sampling
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = deform_conv.deform_conv2d(
            x, offset, weight, bias, padding=1, mask=mask, backend="torch"
        )
        # A bf16 feature map (a bf16 conv's output) is sampled in float32 as well.
        from_bf16 = deform_conv2d_torch(
            x.bfloat16(), offset, weight, bias, padding=1, mask=mask, sampling=sampling
        )
    assert out.dtype == from_bf16.dtype == torch.float32
    torch.testing.assert_close(out, expected, atol=0, rtol=0)
    torch.testing.assert_close(
        from_bf16,
        deform_conv2d_torch(
            x.bfloat16().float(), offset, weight, bias, padding=1, mask=mask
        ),
        atol=0,
        rtol=0,
    )


def test_dcn_pack_predicts_offsets_in_float32_under_autocast():
    torch.manual_seed(9)
    pack = DCNv2Pack(8, 2)
    torch.nn.init.normal_(pack.conv_offset.weight, std=2.0)  # offsets of pixels
    x, feat = torch.randn(1, 8, 6, 7), torch.randn(1, 8, 6, 7)
    expected = pack(x, feat)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = pack(x.bfloat16(), feat.bfloat16())
    assert out.dtype == torch.float32
    torch.testing.assert_close(
        out, pack(x.bfloat16().float(), feat.bfloat16().float()), atol=0, rtol=0
    )
    assert (out - expected).abs().max() < 0.1  # only the inputs' bf16 rounding


def test_nan_offsets_sample_zero_as_torchvision_does():
    # torchvision's border test is false for NaN, so the sample is zero: a NaN
    # offset must neither crash the index arithmetic nor spread to the output.
    x, weight, bias, offset, mask = _case(10)
    offset[:, :, 2:4] = float("nan")
    out = deform_conv2d_torch(x, offset, weight, bias, padding=1, mask=mask)
    assert out.isfinite().all()
    every = torch.full_like(offset, float("nan"))
    out = deform_conv2d_torch(x, every, weight, bias, padding=1, mask=mask)
    torch.testing.assert_close(out, bias.view(1, -1, 1, 1).expand_as(out))
