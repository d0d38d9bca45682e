"""Version 4 of derived runs: the HR pass-through and the adaptation, through Tiled."""

import numpy as np
import pytest

from xfusion_bluesky.catalog.derived import fusion_key
from xfusion_bluesky.fusion.adaptation import AdaptSettings
from xfusion_bluesky.pipeline import fuse_run


@pytest.fixture
def raw_uid(RE, sim_devices):
    """One tiny sim burst: UHS 16×24, HS 64×96 every 16 UHS frames (8 HS frames)."""
    from xfusion_bluesky.plans.dual_camera import dual_camera_scan

    (uid,) = RE(dual_camera_scan())
    return uid


@pytest.mark.slow
def test_frames_with_their_own_hs_frame_are_the_hs_frames(tiled, raw_uid):
    fused = fuse_run(tiled.client, raw_uid, method="bicubic")
    assert fused.fusion["hr_passthrough"] is True
    assert fused.fusion["adapt"] is None
    passed = fused.hr_passed_through
    np.testing.assert_array_equal(passed, fused.hr_at_reference)
    assert passed.sum() == 8
    hs = fused.raw["primary"]["hs_image"][0]  # the aligned sim: a whole-pixel crop
    frames = fused.frames.read()
    for t in np.flatnonzero(passed):
        np.testing.assert_array_equal(frames[t], hs[fused.hs_before[t]])
    assert fused.adaptations == [None]

    kept = fuse_run(tiled.client, raw_uid, method="bicubic", hr_passthrough=False)
    assert kept.uid != fused.uid  # another fusion, not the one above found again
    assert not kept.hr_passed_through.any()
    t = int(np.flatnonzero(passed)[1])
    assert not np.array_equal(kept.frames.read()[t], frames[t])


@pytest.mark.slow
def test_the_adaptation_recipe_and_outcome_round_trip_through_tiled(tiled, raw_uid):
    settings = AdaptSettings(iterations=3, batch_size=2, lr_patch=8, seed=5)
    fused = fuse_run(tiled.client, raw_uid, method="edvr_stf", adapt=settings)
    assert fused.status == "success", fused.reason
    assert AdaptSettings.from_dict(fused.fusion["adapt"]) == settings
    (record,) = fused.adaptations
    assert record["recipe"] == settings.to_dict()
    assert record["iterations"] == 3
    assert len(record["holdout_hr"]) >= 1
    assert set(record["holdout_hr"]).isdisjoint(record["train_hr"])
    assert record["base_model_id"] == fused.fusion["model"]["sha256"]
    assert len(record["adapted_model_id"]) == 64
    (burst,) = fused.outcome["bursts"]
    expected = record["adapted_model_id"] if record["kept"] else record["base_model_id"]
    assert burst["model_id"] == expected
    # Asking again for the same fusion finds it; the recipe is part of its key.
    again = fuse_run(tiled.client, raw_uid, method="edvr_stf", adapt=settings)
    assert again.uid == fused.uid
    plain_key = fusion_key(
        fused.raw_uid,
        "edvr_stf",
        record["base_model_id"],
        lr_separation=1,
        normalize=True,
    )
    assert fused.fusion["key"] != plain_key
