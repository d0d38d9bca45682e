"""open_broker: databroker's v1 and v2 APIs read real raw and fused runs as we do."""

import sys

import numpy as np
import pytest

from xfusion_bluesky.catalog.broker import open_broker
from xfusion_bluesky.catalog.connect import open_catalogs
from xfusion_bluesky.errors import InvalidInputError


@pytest.fixture
def scan_uid(RE, tiled, sim_devices):
    """A real two-burst dual-camera scan through TiledWriter."""
    from xfusion_bluesky.plans.dual_camera import dual_camera_scan

    (uid,) = RE(dual_camera_scan(num_bursts=2))
    return uid


@pytest.fixture
def document_export():
    """Serve runs as bluesky documents (json-seq), as a configured server does.

    The embedded server runs in this process and serves with tiled's default
    serialization registry; a standalone one takes the same exporter from its
    config's ``media_types``.
    """
    from bluesky_tiled_plugins.exporters import json_seq_exporter
    from tiled.media_type_registration import default_serialization_registry

    default_serialization_registry.register(
        "BlueskyRun", "application/json-seq", json_seq_exporter
    )


@pytest.mark.slow
def test_raw_runs_read_through_databroker_equal_the_reader(tiled, scan_uid):
    from xfusion_bluesky.catalog.reader import open_raw_run

    burst = open_raw_run(tiled.raw, scan_uid).burst(1)
    scan_id = tiled.raw[scan_uid].start["scan_id"]
    db = open_broker(tiled)

    h = db[-1]
    assert h.uid == scan_uid
    assert h.start["scan_id"] == scan_id
    assert db[scan_id].uid == scan_uid
    assert db[scan_uid[:8]].uid == scan_uid
    assert h.stop["exit_status"] == "success"
    assert scan_uid in [x.uid for x in db(plan_name="dual_camera_scan")]
    assert {"uhs_image", "hs_image", "uhs_frame_times_s"} <= h.fields()

    uhs = list(h.data("uhs_image"))  # one stack per event (burst)
    assert len(uhs) == 2
    np.testing.assert_array_equal(uhs[1], burst.lr)
    table = h.table()  # image keys are external: left out unless filled
    assert "uhs_image" not in table.columns
    assert list(table["timing_burst_seed"]) == [7, 8]
    np.testing.assert_array_equal(table["uhs_frame_times_s"].iloc[1], burst.lr_times_s)
    filled = h.table(fill=True)
    np.testing.assert_array_equal(filled["hs_image"].iloc[1], burst.hr)

    dataset = db.v2[scan_uid].primary.read()  # the v2 API: one xarray Dataset
    np.testing.assert_array_equal(dataset["hs_image"].values[1], burst.hr)
    np.testing.assert_array_equal(dataset["uhs_image"].values[1], burst.lr)


def test_raw_run_documents_come_back_unfilled(tiled, scan_uid, document_export):
    h = open_broker(tiled)[scan_uid]
    names = [name for name, _ in h.documents()]
    assert names[0] == "start"
    assert names[-1] == "stop"
    assert names.count("event") == 2
    assert names.count("stream_resource") == 2  # uhs_image, hs_image
    start = next(doc for name, doc in h.documents() if name == "start")
    assert start["uid"] == scan_uid


@pytest.mark.slow
def test_fused_run_read_through_databroker_equals_fetch_fused(tiled, scan_uid):
    from xfusion_bluesky.catalog import fetch_fused
    from xfusion_bluesky.pipeline import fuse_run

    result = fuse_run(tiled, scan_uid, method="bicubic")
    assert result.status == "success", result.reason
    fused = fetch_fused(tiled, scan_uid, method="bicubic")
    fdb = open_broker(tiled, which="fused")

    (h,) = [x for x in fdb(raw_uid=scan_uid) if x.uid == fused.uid]
    assert fdb[fused.uid[:8]].uid == fused.uid
    assert h.stop["exit_status"] == "success"
    scan_id = tiled.raw[scan_uid].start["scan_id"]
    assert open_broker(tiled)[h.start["raw_uid"]].start["scan_id"] == scan_id
    assert fused.uid in [x.uid for x in fdb(raw_scan_id=scan_id)]

    frames = np.stack(list(h.data("fused")))  # one event per fused frame
    expected = np.asarray(fused.frames[:])
    assert frames.shape == expected.shape
    np.testing.assert_array_equal(frames, expected)
    table = h.table()
    np.testing.assert_allclose(table["backward_attention"], fused.backward_attention)
    dataset = fdb.v2[fused.uid].primary.read()
    np.testing.assert_array_equal(dataset["fused"].values[5], expected[5])


@pytest.mark.slow
def test_reading_through_databroker_leaves_other_clients_on_v3(tiled, scan_uid):
    from xfusion_bluesky.catalog.reader import open_raw_run

    db = open_broker(tiled)
    h = db[scan_uid]  # databroker switches its own runs to their v2 client
    assert type(h.v2).__name__ == "BlueskyRunV2SQL"
    assert h.table()["timing_burst_seed"].tolist() == [7, 8]
    assert type(tiled.raw[scan_uid]).__name__ == "BlueskyRunV3"
    assert "uhs_image" in tiled.raw[scan_uid]["primary"]
    assert open_raw_run(tiled.raw, scan_uid).burst(0).lr.shape == (128, 16, 24)


def test_every_target_form_reaches_the_same_container(tiled):
    forms = [tiled, tiled.client, tiled.raw, open_catalogs(tiled)]
    paths = {tuple(open_broker(form).v2.path_parts) for form in forms}
    from_uri = open_broker(tiled.uri)  # a client of its own: close it
    paths.add(tuple(from_uri.v2.path_parts))
    from_uri.v2.context.close()
    assert paths == {("raw",)}


def test_unknown_container_is_refused_by_name(tiled):
    with pytest.raises(
        InvalidInputError, match=r"which must be one of 'raw', 'fused'; got 'hr'"
    ):
        open_broker(tiled, which="hr")


def test_missing_back_compat_extra_says_how_to_install(tiled, monkeypatch):
    monkeypatch.setitem(sys.modules, "databroker.v1", None)  # import fails
    with pytest.raises(ImportError, match=r"databroker\[back-compat\]"):
        open_broker(tiled)
