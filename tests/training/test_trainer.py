import csv
import dataclasses

import matplotlib.pyplot as plt
import pytest

from xfusion_bluesky.fusion.model import load_model
from xfusion_bluesky.synthetic.scene import XRAY_FAMILIES
from xfusion_bluesky.training.trainer import Stage, TrainConfig, train


@pytest.mark.slow
def test_attention_loss_weight_moves_edvr_stf_only(tmp_path, tiny_config):
    plain = dataclasses.replace(tiny_config(), stages=(Stage("x", XRAY_FAMILIES, 2),))
    weighted = dataclasses.replace(plain, attention_loss_weight=5.0)
    a = load_model(train(plain, tmp_path / "plain", progress=False))
    b = load_model(train(weighted, tmp_path / "weighted", progress=False))
    assert a.model_id != b.model_id
    with (tmp_path / "weighted" / "log.csv").open() as handle:
        assert all(float(r["attention_loss"]) > 0 for r in csv.DictReader(handle))
    # The LR-only baseline has no HR frames to score: the weight changes nothing.
    edvr = dataclasses.replace(plain, method="edvr")
    c = load_model(train(edvr, tmp_path / "edvr", progress=False))
    d = load_model(
        train(
            dataclasses.replace(edvr, attention_loss_weight=5.0),
            tmp_path / "e2",
            progress=False,
        )
    )
    assert c.model_id == d.model_id
    with pytest.raises(ValueError, match="attention_loss_weight"):
        train(dataclasses.replace(plain, attention_loss_weight=-1.0), tmp_path / "n")


@pytest.mark.slow
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, tiny_config):
    config = tiny_config()
    whole = train(config, tmp_path / "whole", progress=False)
    train(config, tmp_path / "split", progress=False, stop_after=3)
    assert not (tmp_path / "split" / "final.pth").exists()
    split = train(config, tmp_path / "split", progress=False)
    a, b = load_model(whole), load_model(split)
    assert a.model_id == b.model_id
    with (tmp_path / "split" / "log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4]
    loss_plot = plt.imread(tmp_path / "whole" / "loss.png")
    assert loss_plot[..., :3].std() > 0.01  # a drawn curve, not a blank canvas


@pytest.mark.slow
def test_trains_the_lr_only_baseline_and_rejects_a_changed_config(
    tmp_path, tiny_config
):
    config = tiny_config("edvr")
    model = load_model(train(config, tmp_path, progress=False))
    assert type(model).__name__ == "EDVR"
    changed = TrainConfig(**{**config.__dict__, "batch_size": 3})
    with pytest.raises(ValueError, match="different config"):
        train(changed, tmp_path, progress=False)
    farther = dataclasses.replace(config, max_hr_separation=40)
    with pytest.raises(ValueError, match="different config"):
        train(farther, tmp_path, progress=False)


@pytest.mark.slow
def test_a_checkpoint_of_an_earlier_version_resumes(tmp_path, tiny_config):
    import torch

    config = tiny_config()
    train(config, tmp_path, progress=False, stop_after=2)
    # Checkpoints written before the HR separation options existed lack them.
    state = torch.load(tmp_path / "checkpoint.pth", weights_only=False)
    for key in ("max_hr_separation", "far_hr_separation"):
        del state["config"][key]
    torch.save(state, tmp_path / "checkpoint.pth")
    final = train(config, tmp_path, progress=False)
    assert final.name == "final.pth"
