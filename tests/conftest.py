"""Shared fixtures; marks `gpu` and `torchvision` tests to skip where unavailable."""

import numpy as np
import pytest
import torch

# Test tensors are tiny: one thread is faster than two fighting over 2 cores.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    from xfusion_bluesky.fusion.model.deform_conv import torchvision_available

    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    skip_tv = pytest.mark.skip(reason="torchvision.ops does not import beside this torch")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)
        if "torchvision" in item.keywords and not torchvision_available():
            item.add_marker(skip_tv)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
