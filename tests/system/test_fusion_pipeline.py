"""fuse_run against a real Tiled server: results, idempotency, and every failure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from xfusion_bluesky.stored_format import FORMAT_VERSION


def _fuse(tiled, uid, **kwargs):
    from xfusion_bluesky.pipeline import fuse_run

    return fuse_run(tiled.raw, uid, **kwargs)


@pytest.mark.slow
def test_fused_run_equals_direct_fuse(tiled, write_raw_run, burst):
    from tiled.client import from_uri

    from xfusion_bluesky.catalog import fetch_fused
    from xfusion_bluesky.fusion import fuse

    uid = write_raw_run(**{k: burst[k] for k in ("lr", "hr", "lr_times", "hr_times")})
    result = _fuse(tiled, uid, method="edvr_stf")
    assert result.status == "success", result.reason
    client = from_uri(tiled.uri)  # a notebook's own client, opened from the URL
    fetched = fetch_fused(client, uid[:8])
    assert fetched.uid == result.uid
    direct = fuse(burst["lr"], burst["hr"], burst["hr_index"], "edvr_stf")
    frames = np.asarray(fetched.frames[:])
    assert frames.shape == direct.frames.shape
    assert frames.dtype == np.uint16
    expected = np.clip(np.rint(direct.frames), 0, 4095)
    assert np.max(np.abs(frames.astype(np.float64) - expected)) <= 1
    np.testing.assert_allclose(
        fetched.backward_attention, direct.backward_attention, rtol=1e-5
    )
    np.testing.assert_allclose(
        fetched.forward_attention, direct.forward_attention, rtol=1e-5
    )
    np.testing.assert_allclose(
        fetched.normalized_backward_attention,
        direct.normalized_backward_attention,
        rtol=1e-5,
    )
    # One HS frame per HR frame, none dropped: HS frame numbers equal HR indices.
    np.testing.assert_array_equal(fetched.hs_before, direct.hr_before)
    np.testing.assert_array_equal(fetched.uhs_frame, np.arange(len(frames)))
    np.testing.assert_array_equal(fetched.hr_at_reference, direct.hr_at_reference)
    np.testing.assert_allclose(fetched.frame_times_s, burst["lr_times"])
    assert fetched.fusion["model"]["sha256"] == direct.model_id
    bursts = fetched.outcome["bursts"]
    assert bursts[0]["hr_index"] == burst["hr_index"].tolist()
    assert bursts[0]["max_error_lr_periods"] == pytest.approx(0.0, abs=1e-6)
    assert fetched.stop["exit_status"] == "success"
    assert "status" not in fetched.metadata  # the start document is never rewritten
    assert fetched.metadata["raw_uid"] == uid
    assert fetched.raw.start["uid"] == uid
    client.context.close()


@pytest.mark.slow
def test_fusing_again_returns_the_same_run_unless_forced(tiled, write_raw_run, burst):
    from xfusion_bluesky.catalog import find_derived

    uid = write_raw_run(**{k: burst[k] for k in ("lr", "hr", "lr_times", "hr_times")})
    first = _fuse(tiled, uid)
    again = _fuse(tiled, uid)
    assert again.uid == first.uid
    other = _fuse(tiled, uid, method="edvr")  # another method: another derived run
    forced = _fuse(tiled, uid, force=True)
    assert len({first.uid, other.uid, forced.uid}) == 3
    assert [run.uid for run in find_derived(tiled.raw, uid)] == [
        first.uid,
        other.uid,
        forced.uid,
    ]


@pytest.mark.slow
def test_flipped_offset_hs_field_is_registered(tiled, write_raw_run, burst):
    """HS mounted upside down, covering HR rows 4…59 of the UHS field."""
    from xfusion_bluesky.fusion import fuse

    hr = burst["hr"][:, 4:60, :][:, ::-1, :]
    uid = write_raw_run(
        lr=burst["lr"],
        hr=np.ascontiguousarray(hr),
        lr_times=burst["lr_times"],
        hr_times=burst["hr_times"],
        offset_hr_px=(4.0, 0.0),
        flip_y=True,
    )
    result = _fuse(tiled, uid, method="edvr_stf")
    assert result.status == "success", result.reason
    assert result.frames.shape == (24, 56, 96)
    fusion = result.metadata["fusion"]
    assert fusion["registration"]["lr_window"] == [1, 0, 14, 24]
    assert fusion["registration"]["hr_window"] == [0, 0, 56, 96]
    # LR rows 1…14 cover HR rows 4…59: what the HS saw once its flip is undone.
    direct = fuse(
        burst["lr"][:, 1:15], burst["hr"][:, 4:60], burst["hr_index"], "edvr_stf"
    )
    expected = np.clip(np.rint(direct.frames), 0, 4095)
    assert np.max(np.abs(np.asarray(result.frames[:], np.float64) - expected)) <= 1


def _failure(tiled, uid, **kwargs):
    result = _fuse(tiled, uid, **kwargs)
    assert result.status == "failed"
    assert result.stop["exit_status"] == "fail"
    assert result.stop["reason"] == result.reason
    assert result.outcome["traceback"]
    return result.reason


def test_a_run_in_a_newer_stored_format_is_recorded_as_not_readable(
    tiled, write_raw_run, burst
):
    arrays = {k: burst[k] for k in ("lr", "hr", "lr_times", "hr_times")}
    newer = FORMAT_VERSION + 1
    uid = write_raw_run(**arrays, xfusion_format=newer)
    reason = _failure(tiled, uid)
    expected = f"xfusion_format={newer}, newer than this xfusion-bluesky reads"
    assert f"{expected} ({FORMAT_VERSION})" in reason
    assert tiled.raw[uid].start["xfusion_format"] == newer  # left as written


@pytest.mark.slow
def test_every_failure_is_recorded_and_the_next_run_still_fuses(
    tiled, write_raw_run, burst, hdf5_dir
):
    arrays = {k: burst[k] for k in ("lr", "hr", "lr_times", "hr_times")}
    reasons = {}

    uid = write_raw_run(**arrays)
    for path in Path(hdf5_dir).glob("hs_image_*.h5"):
        if path.stat().st_mtime >= max(
            p.stat().st_mtime for p in Path(hdf5_dir).glob("hs_image_*.h5")
        ):
            path.unlink()
    reasons["missing file"] = _failure(tiled, uid)

    empty = np.zeros((0, 64, 96), np.uint16)
    uid = write_raw_run(**{**arrays, "hr": empty, "hr_times": np.zeros(0)})
    reasons["no HS frames"] = _failure(tiled, uid)

    uid = write_raw_run(**arrays, offset_hr_px=(8.0, 0.0))
    reasons["registration"] = _failure(tiled, uid)

    uid = write_raw_run(**arrays, hr_shape_in_md=(60, 96))
    reasons["shape"] = _failure(tiled, uid)

    nan_lr = burst["lr"].astype(np.float32)
    nan_lr[3, 2, 2] = np.nan
    uid = write_raw_run(**{**arrays, "lr": nan_lr})
    reasons["nan"] = _failure(tiled, uid)

    bad_model = Path(hdf5_dir) / "not_a_model.pth"
    bad_model.write_bytes(b"this is not a checkpoint")
    uid = write_raw_run(**arrays, method="edvr_stf")
    reasons["model"] = _failure(tiled, uid, model=bad_model)

    expected_words = {
        "missing file": "missing",
        "no HS frames": "no HS frames",
        "registration": "does not fit",
        "shape": "start document says",
        "nan": "NaN",
        "model": "does not load",
    }
    for case, word in expected_words.items():
        assert word in reasons[case], (case, reasons[case])
        assert "\n" not in reasons[case]

    uid = write_raw_run(**arrays)
    assert _fuse(tiled, uid).status == "success"


@pytest.mark.slow  # ~1 s: kept out of the quick loop
def test_usage_errors_raise_and_write_nothing(tiled, write_raw_run, burst, tmp_path):
    from xfusion_bluesky.catalog import find_derived
    from xfusion_bluesky.errors import InvalidInputError

    uid = write_raw_run(**{k: burst[k] for k in ("lr", "hr", "lr_times", "hr_times")})
    absent = tmp_path / "absent.pth"
    with pytest.raises(InvalidInputError, match=r"absent\.pth"):
        _fuse(tiled, uid, method="edvr_stf", model=absent)
    with pytest.raises(InvalidInputError, match="takes no model"):
        _fuse(tiled, uid, method="bicubic", model=absent)
    assert find_derived(tiled.raw, uid) == []


@pytest.mark.slow
def test_out_of_memory_retries_with_a_smaller_batch(
    tiled, write_raw_run, burst, monkeypatch
):
    from xfusion_bluesky.fusion.baselines.bicubic import BicubicFuser

    calls = []
    original = BicubicFuser.fuse_batch

    def flaky(self, lr, hr):
        calls.append(lr.shape[0])
        if lr.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(self, lr, hr)

    monkeypatch.setattr(BicubicFuser, "fuse_batch", flaky)
    uid = write_raw_run(**{k: burst[k] for k in ("lr", "hr", "lr_times", "hr_times")})
    result = _fuse(tiled, uid, batch_size=8)
    assert result.status == "success", result.reason
    assert calls[:3] == [8, 4, 2]
    assert result.frames.shape[0] == 24
    assert np.array_equal(result.burst, np.zeros(24))
    assert result.outcome["bursts"][0]["batch_size"] == 2

    monkeypatch.setattr(
        BicubicFuser,
        "fuse_batch",
        lambda self, lr, hr: (_ for _ in ()).throw(torch.OutOfMemoryError("oom")),
    )
    uid = write_raw_run(**{k: burst[k] for k in ("lr", "hr", "lr_times", "hr_times")})
    assert "out of memory" in _failure(tiled, uid, batch_size=2)


@pytest.mark.slow
def test_a_sub_pixel_offset_is_resampled_not_refused(tiled, write_raw_run, burst):
    """Format 1 refused a non-whole-pixel offset; now the HS field is warped."""
    arrays = {k: burst[k] for k in ("lr", "hr", "lr_times", "hr_times")}
    uid = write_raw_run(**arrays, offset_hr_px=(0.5, 0.25))
    result = _fuse(tiled, uid, method="bicubic")
    assert result.status == "success", result.reason
    record = result.metadata["fusion"]["registration"]
    assert record["resampled"] is True
    # HS rows 1 … 62 (1 px kept for the bicubic kernel) reach grid 1.5 … 62.5:
    # whole UHS rows 1 … 14; columns 1.25 … 94.25: UHS columns 1 … 22.
    assert record["lr_window"] == [1, 1, 14, 22]
    assert record["grid_window"] == [4, 4, 56, 88]
    assert result.frames.shape == (24, 56, 88)
    assert result.metadata["fusion"]["timing"]["hs_latency_s"] == 0.0
