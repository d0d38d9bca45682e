import json

import numpy as np
import pytest

from xfusion_bluesky.fusion import fuse
from xfusion_bluesky.fusion.model import EDVR, EDVRSTF, default_model_path, load_model
from xfusion_bluesky.metrics import psnr
from xfusion_bluesky.synthetic.degradation import bin_frames
from xfusion_bluesky.synthetic.scene import generate_scene


@pytest.mark.parametrize(("method", "cls"), [("edvr_stf", EDVRSTF), ("edvr", EDVR)])
def test_shipped_weights_load_and_match_their_card(method, cls):
    path = default_model_path(method)
    model = load_model(path)
    assert type(model) is cls
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["sha256"] == model.model_id
    assert card["config"] == model.config
    assert path.stat().st_size <= 10 * 2**20


@pytest.mark.slow
def test_default_edvr_stf_beats_bicubic_on_a_tiny_held_out_sequence():
    truth = generate_scene(
        "fast_front", num_frames=11, height=64, width=96, seed=2**31 + 7
    )
    lr, hr_index = bin_frames(truth), np.array([0, 10])
    scores = {}
    for method in ("bicubic", "edvr_stf"):
        result = fuse(lr, truth[hr_index], hr_index, method, normalize=False)
        keep = ~result.hr_at_reference
        scores[method] = float(np.mean(psnr(result.frames[keep], truth[keep])))
    assert scores["edvr_stf"] > scores["bicubic"] + 0.5
