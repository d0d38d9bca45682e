import numpy as np
import pytest
import torch
from torch.nn import functional as F

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.fusion import fuse
from xfusion_bluesky.fusion.baselines import BicubicFuser, bicubic_upsample


def _keys(x, a=-0.75):
    """Keys' cubic convolution kernel with OpenCV's a = −0.75."""
    x = abs(x)
    if x <= 1:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    if x < 2:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def _keys_weights(scale, size_in, size_out):
    """OpenCV INTER_CUBIC as a (size_out, size_in) matrix: half-pixel, clamped taps."""
    weights = np.zeros((size_out, size_in))
    for out in range(size_out):
        src = (out + 0.5) / scale - 0.5
        base = int(np.floor(src))
        for tap in range(base - 1, base + 3):
            weights[out, min(max(tap, 0), size_in - 1)] += _keys(src - tap)
    return weights


def test_bicubic_matches_the_opencv_kernel(rng):
    frame = rng.random((5, 7))
    rows, cols = _keys_weights(4, 5, 20), _keys_weights(4, 7, 28)
    expected = np.clip(rows @ frame @ cols.T, 0, 1)
    upsampled = bicubic_upsample(torch.from_numpy(frame)[None, None], (20, 28))
    np.testing.assert_allclose(upsampled[0, 0].numpy(), expected, atol=1e-12)


def test_fuse_bicubic_equals_interpolate_of_the_reference_frame_clipped(rng):
    lr = rng.random((4, 6, 5), dtype=np.float32)  # not a multiple of 4: no padding
    hr = rng.random((1, 24, 20), dtype=np.float32)
    result = fuse(
        lr,
        hr,
        [2],
        method="bicubic",
        normalize=False,
        lr_separation=2,
        hr_passthrough=False,
    )
    reference = F.interpolate(
        torch.from_numpy(lr)[:, None],
        size=(24, 20),
        mode="bicubic",
        align_corners=False,
        antialias=False,
    )
    assert reference.min() < 0
    assert reference.max() > 1
    np.testing.assert_allclose(
        result.frames, reference.clamp(0, 1)[:, 0].numpy(), atol=1e-6
    )
    assert result.frames.min() >= 0
    assert result.frames.max() <= 1
    assert result.model_id is None
    assert np.isnan(result.backward_attention).all()
    assert np.isnan(result.normalized_backward_attention).all()
    assert result.params["padding"]["bottom"] == 0


def test_bicubic_fuser_meets_the_protocol_and_takes_no_model():
    fuser = BicubicFuser.create(
        None, device=torch.device("cpu"), dtype=None, channels_last=False
    )
    lr = torch.rand(2, 3, 1, 4, 4)
    out = fuser.fuse_batch(lr, torch.rand(2, 2, 1, 16, 16))
    assert out.fused.shape == (2, 1, 16, 16)
    assert torch.isnan(out.forward_attention).all()
    torch.testing.assert_close(out.fused, bicubic_upsample(lr[:, 1], (16, 16)))
    with pytest.raises(InvalidInputError, match="takes no model"):
        BicubicFuser.create(
            "model.pth", device=torch.device("cpu"), dtype=None, channels_last=False
        )
