"""A run stopped or aborted part-way is fused burst by burst.

``RE.stop()`` after 4 of 5 bursts ends a run with ``exit_status="success"``; it
could not be fused (not even with ``--force``: "truncated"), and neither could
the complete bursts of an aborted run. Now every complete burst is fused, the
derived run succeeds, and its outcome lists each burst left out with the reason.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from bluesky.utils import RunEngineInterrupted
from fault_raw_runs import burst_arrays, make_raw_run_writer


@pytest.fixture
def write_raw_run(tiled, hdf5_dir):
    return make_raw_run_writer(tiled.raw, hdf5_dir)


def _pause_after_event(RE, seq_num: int) -> None:
    """Ask for a deferred pause (one Ctrl-C) after event ``seq_num``."""

    def request(name, doc):
        if doc["seq_num"] == seq_num:  # request_pause blocks: not from RE's thread
            threading.Thread(target=RE.request_pause, args=(True,)).start()

    RE.subscribe(request, "event")


@pytest.mark.slow  # three sim bursts and their fusion: ~5-10 s
@pytest.mark.parametrize("end", ["stop", "abort"])
def test_a_run_ended_early_fuses_its_recorded_bursts(RE, tiled, sim_devices, end):
    from xfusion_bluesky.catalog import fetch_fused
    from xfusion_bluesky.plans.dual_camera import dual_camera_scan

    _pause_after_event(RE, 1)
    with pytest.raises(RunEngineInterrupted):
        RE(dual_camera_scan(num_bursts=3))
    (uid,) = RE.stop() if end == "stop" else RE.abort(reason="sample moved")
    raw = tiled.raw[uid]
    recorded = int(raw.stop["num_events"]["primary"])
    assert raw.stop["exit_status"] == ("success" if end == "stop" else "abort")
    assert 1 <= recorded < 3

    from xfusion_bluesky.pipeline import fuse_run

    fused = fuse_run(tiled.raw, uid, method="bicubic")
    assert fused.status == "success", fused.reason
    assert fused.stop["exit_status"] == "success"
    frames_per_burst = raw.start["uhs"]["frames_per_burst"]
    assert fused.frames.shape[0] == recorded * frames_per_burst
    assert sorted(set(np.asarray(fused.burst).tolist())) == list(range(recorded))
    missing = fused.outcome["missing_bursts"]
    assert [item["burst"] for item in missing] == list(range(recorded, 3))
    word = "stopped early" if end == "stop" else "exit_status 'abort'"
    for item in missing:
        assert item["reason"].startswith("not recorded: ")
        assert word in item["reason"]
        assert f"after {recorded} of 3 bursts" in item["reason"]
    assert f"fused {recorded} of 3 bursts; burst {recorded}: " in fused.reason
    assert fetch_fused(tiled.raw, uid).uid == fused.uid


def test_an_aborted_run_with_every_burst_says_how_it_ended(tiled, write_raw_run):
    from xfusion_bluesky.pipeline import fuse_run

    uid = write_raw_run(
        **burst_arrays(), num_bursts=2, exit_status="abort", stop_reason="beam lost"
    )
    fused = fuse_run(tiled.raw, uid)
    assert fused.status == "success", fused.reason
    assert fused.frames.shape[0] == 2 * 24
    assert fused.outcome["missing_bursts"] == []
    assert fused.reason == (
        "the raw run ended with exit_status 'abort' (beam lost): fused the 2 "
        "burst(s) it recorded"
    )


@pytest.mark.slow  # three bursts fused: ~8 s on two busy cores
def test_an_unreadable_burst_is_left_out_and_the_others_fused(
    tiled, write_raw_run, monkeypatch
):
    from xfusion_bluesky.catalog.reader import RawRun
    from xfusion_bluesky.errors import RunNotFusableError
    from xfusion_bluesky.pipeline import fuse_run

    original = RawRun.burst

    def flaky(self, index):
        if index == 1:
            raise RunNotFusableError("burst 1: 2 UHS frame(s) contain NaN or inf")
        return original(self, index)

    monkeypatch.setattr(RawRun, "burst", flaky)
    uid = write_raw_run(**burst_arrays(), num_bursts=3)
    fused = fuse_run(tiled.raw, uid)
    assert fused.status == "success", fused.reason
    assert sorted(set(np.asarray(fused.burst).tolist())) == [0, 2]
    assert [b["burst"] for b in fused.outcome["bursts"]] == [0, 2]
    assert fused.outcome["missing_bursts"] == [
        {"burst": 1, "reason": "burst 1: 2 UHS frame(s) contain NaN or inf"}
    ]
    assert fused.reason.startswith("fused 2 of 3 bursts; burst 1: ")


def test_a_run_with_no_readable_burst_fails_with_the_reason(
    tiled, write_raw_run, monkeypatch
):
    from xfusion_bluesky.catalog.reader import RawRun
    from xfusion_bluesky.errors import RunNotFusableError
    from xfusion_bluesky.pipeline import fuse_run

    def broken(self, index):
        raise RunNotFusableError(f"burst {index} has no HS frames")

    monkeypatch.setattr(RawRun, "burst", broken)
    uid = write_raw_run(**burst_arrays(), num_bursts=2)
    fused = fuse_run(tiled.raw, uid)
    assert fused.status == "failed"
    expected = "fused 0 of 2 bursts; burst 0: burst 0 has no HS frames (+1 more)"
    assert fused.reason == expected
    assert fused.outcome["traceback"]
    assert len(fused.outcome["missing_bursts"]) == 2


def test_a_complete_run_records_no_missing_burst(tiled, write_raw_run):
    from xfusion_bluesky.pipeline import fuse_run

    fused = fuse_run(tiled.raw, write_raw_run(**burst_arrays()))
    assert fused.status == "success"
    assert fused.outcome["missing_bursts"] == []
    assert fused.reason == ""


def test_fuse_verb_fuses_a_stopped_run_and_lists_what_is_left_out(
    tiled, write_raw_run, monkeypatch, capsys
):
    from xfusion_bluesky.cli.main import main

    monkeypatch.delenv("XFUSION_TILED_URL", raising=False)
    monkeypatch.delenv("XFUSION_TILED_API_KEY", raising=False)
    uid = write_raw_run(**burst_arrays(), num_bursts=1, announced_bursts=3)
    assert main(["fuse", uid[:8], "--method", "bicubic", "--tiled", tiled.uri]) == 0
    out = capsys.readouterr().out
    assert "status       success" in out
    assert "left out     burst(s) 1, 2: not fused" in out
    assert "reason       fused 1 of 3 bursts; burst 1: not recorded" in out
