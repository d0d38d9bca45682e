from pathlib import Path

import pytest
import torch

from xfusion_bluesky.fusion.model import EDVR, EDVRSTF, edvr_stf_small

PAPER_KEYS = Path(__file__).parent / "data" / "edvr_stf_keys_paper.txt"
TINY = {
    "num_feat": 8,
    "deformable_groups": 2,
    "num_extract_block": 1,
    "num_reconstruct_block": 2,
}


def test_state_dict_matches_the_authors_keys_shapes_and_order():
    expected = [line.split("\t") for line in PAPER_KEYS.read_text().splitlines()]
    ours = [[k, str(tuple(v.shape))] for k, v in EDVRSTF().state_dict().items()]
    assert ours == expected
    assert sum(int(v.numel()) for v in EDVRSTF().state_dict().values()) == 20_926_817


def test_lr_only_edvr_has_the_paper_baseline_size():
    state = EDVR().state_dict()
    assert len(state) == 264
    assert sum(int(v.numel()) for v in state.values()) == 20_564_833
    assert state["fusion.feat_fusion.weight"].shape == (128, 384, 1, 1)
    assert not any(k.endswith("_hi.weight") for k in state)


def test_forward_shapes_and_attention_order():
    torch.manual_seed(0)
    model = EDVRSTF(**TINY).eval()
    lr = torch.rand(2, 3, 1, 8, 12)
    hr = torch.rand(2, 2, 1, 32, 48)
    out = model(lr, hr)
    assert out.fused.shape == (2, 1, 32, 48)
    assert out.attention.shape == (2, 5)
    # Swapping the HR frames swaps their scores: index 3 is "before", 4 is "after".
    swapped = model(lr, hr.flip(1))
    torch.testing.assert_close(swapped.attention[:, 3:], out.attention[:, 3:].flip(1))


def test_attention_is_the_mean_pre_sigmoid_correlation():
    torch.manual_seed(1)
    model = EDVRSTF(**TINY).double().eval()
    captured = {}
    model.fusion.register_forward_hook(
        lambda m, args, out: captured.update(aligned=args[0])
    )
    out = model(
        torch.rand(1, 3, 1, 8, 8, dtype=torch.float64),
        torch.rand(1, 2, 1, 32, 32, dtype=torch.float64),
    )
    aligned = captured["aligned"]
    emb_ref = model.fusion.temporal_attn1(aligned[:, 1])
    expected = [
        (model.fusion.temporal_attn2(aligned[:, i]) * emb_ref).sum(1).mean()
        for i in range(5)
    ]
    torch.testing.assert_close(out.attention[0], torch.stack(expected))


def test_residual_base_is_bilinear_upsampling_of_the_reference_lr_frame():
    model = EDVRSTF(**TINY).double().eval()
    torch.nn.init.zeros_(model.conv_last.weight)
    torch.nn.init.zeros_(model.conv_last.bias)
    lr = torch.rand(1, 3, 1, 8, 8, dtype=torch.float64)
    out = model(lr, torch.rand(1, 2, 1, 32, 32, dtype=torch.float64))
    base = torch.nn.functional.interpolate(
        lr[:, 1], scale_factor=4, mode="bilinear", align_corners=False
    )
    torch.testing.assert_close(out.fused, base)


def test_hr_must_be_four_times_lr():
    model = EDVRSTF(**TINY).eval()
    with pytest.raises(ValueError, match="hr must be"):
        model(torch.rand(1, 3, 1, 8, 8), torch.rand(1, 2, 1, 16, 16))


def test_constructor_rejects_impossible_configs():
    with pytest.raises(ValueError, match="num_frame_hi must be 2"):
        EDVRSTF(num_frame_hi=3)
    with pytest.raises(ValueError, match="num_frame must be odd"):
        EDVR(num_frame=4)
    with pytest.raises(ValueError, match="deformable_groups"):
        EDVRSTF(num_feat=12, deformable_groups=8)


def test_lr_only_edvr_forward():
    model = EDVR(**TINY).eval()
    out = model(torch.rand(1, 3, 1, 8, 8))
    assert out.fused.shape == (1, 1, 32, 32)
    assert out.attention.shape == (1, 3)


def test_both_networks_take_the_same_call_and_edvr_ignores_hr():
    torch.manual_seed(3)
    lr, hr = torch.rand(2, 3, 1, 8, 8), torch.rand(2, 2, 1, 32, 32)
    edvr = EDVR(**TINY).eval()
    with torch.no_grad():
        alone, with_hr = edvr(lr), edvr(lr, hr)
        other_hr = edvr(lr, torch.zeros_like(hr))
    assert type(with_hr) is type(EDVRSTF(**TINY).eval()(lr, hr))
    assert torch.equal(alone.fused, with_hr.fused)
    assert torch.equal(other_hr.fused, with_hr.fused)
    with pytest.raises(ValueError, match=r"call model\(lr, hr\)"):
        EDVRSTF(**TINY)(lr)


def test_small_preset_is_small():
    assert sum(p.numel() for p in edvr_stf_small().parameters()) < 2_500_000


REFERENCE = Path(__file__).parent / "data" / "authors_reference_tiny.pt"


@pytest.mark.parametrize("kind", ["stf", "edvr"])
def test_reproduces_the_authors_implementation_in_float64(kind):
    """Outputs of the authors' classes (XFusion EDVRSTFTempRank; BasicSR EDVR with a
    1-channel conv_last) for random weights, recorded once with torchvision 0.29."""
    case = torch.load(REFERENCE, weights_only=True)[kind]
    cls = EDVRSTF if kind == "stf" else EDVR
    model = cls(**TINY).double().eval()
    model.load_state_dict({k: v.double() for k, v in case["params"].items()})
    with torch.no_grad():
        out = model(case["lr"], case["hr"]) if kind == "stf" else model(case["lr"])
    torch.testing.assert_close(out.fused, case["fused"], atol=1e-10, rtol=0)
    torch.testing.assert_close(out.attention, case["attention"], atol=1e-10, rtol=0)
    assert out.fused.abs().max() > 0.1  # a real signal, not a zero-weight artefact
