"""The fused pixels of one fixed burst, pinned bit for bit.

The hashes were taken with the code as it stood before the package was
reorganised (stored format v1); a refactor that moves code must not move them.
"""

import hashlib

import numpy as np
import pytest
import torch

from xfusion_bluesky.fusion import fuse
from xfusion_bluesky.synthetic.scene import generate_scene

#: sha256 of (frames float32, backward, forward float64) of each method's result.
GOLDEN = {
    "edvr_stf": "6469d516958777f77e00538d136ae15f878cdee5e9c1238a4c27eda1d91ec470",
    "edvr": "2dafc41d6b6db83409c188fccc719694ddabcb7344d78b6f69244aabd32aea4d",
    "bicubic": "164e46bd4a3b19276f495d6cf790552b3dc269df641158f65c31f875e112f524",
    "bayesian": "1a52f3c2ea4882321fb34ce65e8e7e2287e4b09399f378f7bd7d84d407683693",
}


@pytest.fixture(autouse=True)
def _one_thread():
    # oneDNN's reduction order depends on the thread count: pin it for the hash.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _burst():
    truth = generate_scene("fast_front", num_frames=9, height=64, width=96, seed=11)
    lr = truth.reshape(9, 16, 4, 24, 4).mean(axis=(2, 4))
    hr_index = np.array([0, 8])
    return (
        np.rint(lr * 1023).astype(np.uint16),
        np.rint(truth[hr_index] * 4095).astype(np.uint16),
        hr_index,
    )


def _digest(result) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(result.frames, dtype=np.float32).tobytes())
    h.update(np.asarray(result.backward_attention, dtype=np.float64).tobytes())
    h.update(np.asarray(result.forward_attention, dtype=np.float64).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("method", sorted(GOLDEN))
def test_fused_pixels_of_a_fixed_burst_are_pinned(method):
    lr, hr, hr_index = _burst()
    # The method's own output everywhere: the pass-through has its own tests.
    result = fuse(
        lr,
        hr,
        hr_index,
        method=method,
        lr_separation=1,
        batch_size=4,
        hr_passthrough=False,
        dtype=torch.float32,  # the pins are float32's, whatever the default
    )
    assert result.frames.shape == (9, 64, 96)
    assert _digest(result) == GOLDEN[method]
