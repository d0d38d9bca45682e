import pytest
import torch
from torch.nn import functional as F

from xfusion_bluesky.fusion.model import deform_conv
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
