"""Mixed precision: the default dtype per device, the float32 region, the PSNR bound."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from xfusion_bluesky.fusion import fuse, precision
from xfusion_bluesky.synthetic.degradation import bin_frames
from xfusion_bluesky.synthetic.scene import generate_scene

#: The required bound on bfloat16 fusion against float32 (PSNR, dB).
BOUND_DB = 45.0


def _psnr(frames: np.ndarray, reference: np.ndarray) -> float:
    mse = float(np.mean((frames.astype(np.float64) - reference) ** 2))
    return 10 * np.log10(1 / mse) if mse else float("inf")


def _burst():
    """A small moving scene: LR 16×24 × 4 frames, HR frames 0 and 3."""
    truth = generate_scene("fast_front", num_frames=4, height=64, width=96, seed=7)
    index = np.array([0, 3])
    return np.asarray(bin_frames(truth), np.float32), truth[index], index


def _fused(dtype, device="cpu"):
    lr, hr, index = _burst()
    return fuse(
        lr,
        hr,
        index,
        "edvr_stf_detail",
        dtype=dtype,
        device=device,
        normalize=False,
        hr_passthrough=False,
    )


def test_default_dtype_is_bf16_where_the_hardware_has_it(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.default_dtype("cpu") == torch.bfloat16
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert precision.default_dtype(torch.device("cpu")) is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert precision.default_dtype("cuda:0") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert precision.default_dtype("cuda") is None
    assert precision.default_dtype("meta") is None


def test_float32_region_turns_autocast_off_and_back_on():
    x, w = torch.rand(1, 2, 5, 5), torch.rand(3, 2, 3, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert F.conv2d(x, w).dtype == torch.bfloat16
        with precision.float32_region():
            assert not torch.is_autocast_enabled("cpu")
            assert F.conv2d(x, w).dtype == torch.float32
            lifted = precision.to_float32(x.bfloat16())
            assert F.conv2d(lifted, w).dtype == torch.float32
        assert F.conv2d(x, w).dtype == torch.bfloat16
    with precision.float32_region():  # no autocast: nothing to turn off
        assert F.conv2d(x, w).dtype == torch.float32


def test_to_float32_lifts_half_types_only():
    assert precision.to_float32(torch.zeros(1, dtype=torch.bfloat16)).dtype == (
        torch.float32
    )
    assert precision.to_float32(torch.zeros(1, dtype=torch.float16)).dtype == (
        torch.float32
    )
    double = torch.zeros(1, dtype=torch.float64)
    assert precision.to_float32(double) is double
    assert precision.to_float32(None) is None


def test_bf16_fusion_is_within_the_bound_of_float32():
    # The shipped small EDVR-STF + HR detail on a moving scene: convolutions in
    # bfloat16, the deformable sampling in float32 (the float32 region).
    f32, bf16 = _fused(torch.float32), _fused(torch.bfloat16)
    assert bf16.params["dtype"] == "bfloat16"
    assert bf16.frames.dtype == np.float32
    assert _psnr(bf16.frames, f32.frames) >= BOUND_DB
    assert not np.array_equal(bf16.frames, f32.frames)  # bfloat16 did run
    np.testing.assert_allclose(
        bf16.backward_attention, f32.backward_attention, atol=0.02
    )


@pytest.mark.gpu
def test_cuda_bf16_fusion_is_within_the_bound_of_cpu_float32():
    cpu = _fused(torch.float32)
    gpu = _fused(torch.bfloat16, device="cuda")
    assert _psnr(gpu.frames, cpu.frames) >= BOUND_DB
    gpu32 = _fused(torch.float32, device="cuda")
    # TF32 may be on for CUDA convolutions: float32 on the GPU is close, not equal.
    assert _psnr(gpu32.frames, cpu.frames) >= BOUND_DB


@pytest.mark.gpu
def test_cuda_fast_sampling_under_autocast_matches_cpu():
    from xfusion_bluesky.fusion.model.deform_conv import deform_conv2d_torch

    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 8, 9, 11, generator=g)
    weight = torch.randn(4, 8, 3, 3, generator=g)
    offset = torch.randn(2, 36, 9, 11, generator=g) * 20
    mask = torch.rand(2, 18, 9, 11, generator=g)
    cpu = deform_conv2d_torch(
        x.double(), offset.double(), weight.double(), padding=1, mask=mask.double()
    )
    with torch.autocast("cuda", dtype=torch.bfloat16):
        gpu = deform_conv2d_torch(
            x.cuda(), offset.cuda(), weight.cuda(), padding=1, mask=mask.cuda()
        )
    assert gpu.dtype == torch.float32
    # float32 throughout (TF32 off for matmul by default): float32 rounding only.
    torch.testing.assert_close(gpu.double().cpu(), cpu, atol=1e-4, rtol=1e-4)
