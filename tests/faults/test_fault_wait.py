"""Waiting for a fusion that is running says so, with its progress.

``fetch_fused(..., wait=120)`` under load ran out while the worker was writing
the derived run, and the error asked whether a worker runs. While it waits it
now reports the frames written of the total; when the wait runs out with a
derived run in progress, the error says that a fusion is running, how far it
got, and to wait longer.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest
from fault_raw_runs import burst_arrays, make_raw_run_writer

pytestmark = pytest.mark.slow

#: Frames per burst of :func:`burst_arrays`.
FRAMES = 24


@pytest.fixture
def raw_uid(tiled, hdf5_dir):
    write = make_raw_run_writer(tiled.raw, hdf5_dir)
    return write(**burst_arrays(), method="bicubic")


@pytest.fixture
def running(tiled, raw_uid, monkeypatch):
    """Open a derived run of ``raw_uid`` and return ``(writer, write(n))``.

    Every frame is sent to Tiled as it is written (batches of one), as a worker's
    frames would be, a batch at a time, over a longer run.
    """
    from xfusion_bluesky.catalog import derived
    from xfusion_bluesky.catalog.connect import open_catalogs

    monkeypatch.setattr(derived, "MAX_WRITE_BATCH", 1)
    catalogs = open_catalogs(tiled.raw)
    writer = derived.DerivedRunWriter(
        catalogs.fused,
        raw_uid=raw_uid,
        fusion={"method": "bicubic", "key": f"test-wait-{raw_uid}"},
        frame_shape=(64, 96),
    )
    writer.open()

    def write(count: int) -> None:
        for t in range(count):
            writer.write_frame(
                derived.DerivedFrame(
                    burst=0,
                    uhs_frame=writer._count,
                    time_s=0.0,
                    fused=np.zeros((64, 96), np.uint16),
                    backward_attention=np.nan,
                    forward_attention=np.nan,
                    hs_before=0,
                    hs_after=0,
                    hr_at_reference=t == 0,
                )
            )

    yield writer, write
    from xfusion_bluesky.catalog.queries import FusedRun

    if not FusedRun.open(catalogs, writer.uid).finished:
        writer.fail("the test ended")  # no run left looking as if still written


def test_a_wait_that_runs_out_during_a_fusion_says_it_is_running(
    tiled, raw_uid, running, caplog
):
    from xfusion_bluesky.catalog import fetch_fused

    writer, write = running
    write(5)
    caplog.set_level(logging.INFO, logger="xfusion_bluesky.catalog.queries")
    started = time.monotonic()
    with pytest.raises(LookupError) as info:
        fetch_fused(tiled.raw, raw_uid, wait=1.0)
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert "is a fusion worker running" not in message
    assert f"derived run {writer.uid} is running" in message
    assert f"5 of {FRAMES} frames written" in message
    assert "wait longer" in message
    # While it waited it said so, with the progress.
    assert f"5 of {FRAMES} frames" in caplog.text
    assert "bicubic fusion of raw run" in caplog.text


def test_a_wait_follows_a_running_fusion_to_its_end(tiled, raw_uid, running, caplog):
    from xfusion_bluesky.catalog import fetch_fused

    writer, write = running
    write(3)

    def finish() -> None:
        time.sleep(1.0)
        write(FRAMES - 3)
        writer.write_normalized(0, np.full(FRAMES, np.nan), np.full(FRAMES, np.nan))
        writer.close()

    thread = threading.Thread(target=finish)
    caplog.set_level(logging.INFO, logger="xfusion_bluesky.catalog.queries")
    thread.start()
    try:
        fused = fetch_fused(tiled.raw, raw_uid, wait=60)
    finally:
        thread.join()
    assert fused.uid == writer.uid
    assert fused.status == "success"
    assert f"3 of {FRAMES} frames" in caplog.text


def test_a_wait_with_no_derived_run_at_all_asks_for_a_worker(tiled, raw_uid):
    from xfusion_bluesky.catalog import fetch_fused

    with pytest.raises(LookupError, match="is a fusion worker running"):
        fetch_fused(tiled.raw, raw_uid, wait=0.5)
