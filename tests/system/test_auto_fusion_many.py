"""Consecutive scans, one worker process: none lost, none fused twice.

Three runs keep the suite's time in bounds (4–5 s each on 2 cores); set
XFUSION_TEST_RUNS=50 for fifty, which `benchmarks/bench_pipeline.py --runs 50`
also measures, and `benchmarks/bench_faults.py` with faults injected.
"""

import os
import time
from collections import Counter

import pytest

from xfusion_bluesky.callbacks import FusionCallback, FusionWorker
from xfusion_bluesky.catalog import find_derived
from xfusion_bluesky.plans.dual_camera import dual_camera_scan

RUNS = int(os.environ.get("XFUSION_TEST_RUNS", "3"))


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_consecutive_scans_are_each_fused_exactly_once(RE, tiled, sim_devices):
    since = time.time()
    with FusionWorker(tiled.uri, method="bicubic", since=since, poll_s=5) as worker:
        RE.subscribe(FusionCallback(worker))
        uids = [RE(dual_camera_scan())[0] for _ in range(RUNS)]
        assert worker.wait_idle(900)
    derived = {uid: find_derived(tiled.raw, uid) for uid in uids}
    assert {uid: len(runs) for uid, runs in derived.items()} == dict.fromkeys(uids, 1)
    assert all(runs[0].status == "success" for runs in derived.values())
    fused_by = Counter(r.raw_uid for r in worker.results if r.derived_uid is not None)
    assert set(fused_by) == set(uids)
    assert len({runs[0].uid for runs in derived.values()}) == RUNS
