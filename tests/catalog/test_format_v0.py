"""A v0 catalog (written before the format had a version) still reads, untouched.

``tests/data/v0_catalog`` holds the documents that the code before stored format v1
wrote for one simulated ``dual_camera_scan`` (8×12 UHS, 32×48 HS, 128 frames) and two
fusions of it: a ``bicubic`` success and an ``edvr_stf`` failure (missing weights).
The documents are replayed into the session's Tiled server through ``TiledWriter``,
as the RunEngine and the old worker sent them; the derived runs' start documents are
the final ones the old worker left (it added its outcome to them).
"""

from __future__ import annotations

import copy
import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from xfusion_bluesky.stored_format import FORMAT_VERSION

# Starting Tiled and replaying 260 documents takes ~20 s on two cores.
pytestmark = pytest.mark.slow

V0 = Path(__file__).resolve().parents[1] / "data" / "v0_catalog"


@pytest.fixture(scope="module")
def v0(tiled, hdf5_dir):
    """Replay the v0 documents once; return them (as stored) with the raw uid."""
    from bluesky_tiled_plugins import TiledWriter

    from xfusion_bluesky.catalog.connect import open_catalogs

    fused = open_catalogs(tiled).fused
    with gzip.open(V0 / "documents.json.gz", "rt", encoding="utf-8") as f:
        stored = json.load(f)
    fused_frames = np.load(V0 / "fused_frames.npz")["fused"]
    folder = Path(hdf5_dir) / "v0_catalog"
    folder.mkdir(exist_ok=True)
    raw = TiledWriter(tiled.raw, batch_size=1)
    for name, doc in copy.deepcopy(stored["raw"]):
        if name == "stream_resource":  # the HDF5 files now live here
            path = folder / stored["hdf5_files"][doc["uid"]]
            shutil.copy(V0 / path.name, path)
            doc["uri"] = f"file://localhost{path}"
        raw(name, doc)
    for docs in copy.deepcopy(stored["derived"]):
        writer = TiledWriter(fused, batch_size=64, max_array_size=0)
        for name, doc in docs:
            if name == "start":  # TiledWriter takes the spec off the stored start
                doc = {**doc, "tiled_specs": ["DerivedRun"]}
            if name == "event" and "fused" in doc["data"]:
                doc["data"]["fused"] = fused_frames[doc["data"]["fused"]["npz_index"]]
            writer(name, doc)
    return {
        "raw_uid": stored["raw"][0][1]["uid"],
        "starts": [docs[0][1] for docs in stored["derived"]],
        "frames": fused_frames,
    }


def test_fetch_fused_reads_a_v0_derived_run(tiled, v0):
    from xfusion_bluesky.catalog import fetch_fused

    run = fetch_fused(tiled, v0["raw_uid"], method="bicubic")
    # A raw uid names the fusion its run requested: here the edvr_stf failure.
    assert fetch_fused(tiled, v0["raw_uid"]).fusion["method"] == "edvr_stf"
    assert "xfusion_format" not in run.metadata  # v0, as written
    assert run.status == "success"
    assert run.missing_bursts == []  # written before format 2 recorded them
    assert run.raw_uid == v0["raw_uid"]
    assert run.fusion["method"] == "bicubic"
    np.testing.assert_array_equal(run.frames[:], v0["frames"])
    assert run.uhs_frame.tolist() == list(range(128))
    assert run.hs_before[0] == 0
    assert run.hs_after[-1] == 7
    assert run.hr_at_reference.sum() == 8
    assert np.isnan(run.backward_attention).all()  # bicubic has no HR scores
    assert run.outcome["bursts"][0]["hs_frames_used"] == list(range(8))
    assert run.outcome["frames_written"] == 128


def test_v0_failures_are_found_and_explained(tiled, v0):
    from xfusion_bluesky.catalog import failed_runs_query, find_derived

    runs = find_derived(tiled, v0["raw_uid"])
    assert [run.status for run in runs] == ["success", "failed"]
    failed = runs[1]
    assert "does not load" in failed.reason
    assert failed.outcome["traceback"]
    from xfusion_bluesky.catalog.connect import open_catalogs

    hits = open_catalogs(tiled).fused.search(failed_runs_query())
    assert failed.uid in hits
    assert runs[0].uid not in hits


def test_v0_raw_run_is_not_pending_and_fuses_again_in_v1(tiled, v0):
    from xfusion_bluesky.catalog.connect import open_catalogs
    from xfusion_bluesky.catalog.progress import pending_runs
    from xfusion_bluesky.pipeline import fuse_run

    assert v0["raw_uid"] not in pending_runs(open_catalogs(tiled))
    again = fuse_run(tiled, v0["raw_uid"], method="bicubic")
    assert again.uid == v0["starts"][0]["uid"]  # same fusion key: not redone
    # Without the pass-through (version 4), as the v0 fusion was made.
    fresh = fuse_run(
        tiled, v0["raw_uid"], method="bicubic", force=True, hr_passthrough=False
    )
    assert fresh.status == "success", fresh.reason
    assert fresh.metadata["xfusion_format"] == FORMAT_VERSION
    assert fresh.metadata["raw_uid"] == v0["raw_uid"]
    np.testing.assert_array_equal(fresh.frames[:], v0["frames"])
    np.testing.assert_array_equal(fresh.hs_before, again.hs_before)


def test_nothing_in_the_v0_catalog_is_rewritten(tiled, v0):
    from xfusion_bluesky.catalog import find_derived

    # Reading and re-fusing above must leave the stored v0 documents as they were.
    stored = {start["uid"]: start for start in v0["starts"]}
    for run in find_derived(tiled, v0["raw_uid"]):
        if run.uid in stored:
            assert dict(run.node.start) == stored[run.uid]
