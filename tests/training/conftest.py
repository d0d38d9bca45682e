import pytest

from xfusion_bluesky.synthetic.scene import XRAY_FAMILIES
from xfusion_bluesky.training.config import Stage, TrainConfig

#: A network small enough to train a few steps in a test.
TINY_MODEL = {
    "num_feat": 8,
    "deformable_groups": 2,
    "num_extract_block": 1,
    "num_reconstruct_block": 1,
}


@pytest.fixture
def tiny_model():
    """Return the constructor arguments of a network small enough to train."""
    return dict(TINY_MODEL)


@pytest.fixture
def tiny_config():
    """Return a factory of 4-iteration training configs of the tiny network."""

    def make(method="edvr_stf"):
        return TrainConfig(
            method=method,
            model=TINY_MODEL,
            stages=(
                Stage("pretrain", ("natural",), 2),
                Stage("finetune", XRAY_FAMILIES, 2),
            ),
            batch_size=2,
            lr_patch=8,
            checkpoint_every=1,
            validate_every=2,
            validation_windows=2,
            num_workers=0,
        )

    return make
