"""Idempotency keys: a submission is keyed as fuse_run keys the derived run."""

import pytest

from xfusion_bluesky.orchestration.keys import (
    base_key,
    raw_tag,
    rerun_key,
    submission_key,
    writer_of,
    writer_tag,
)
from xfusion_bluesky.pipeline import fuse_run


def test_the_submission_key_is_the_fusion_key_fuse_run_records(tiled, fused_sim_run):
    start = dict(tiled.raw[fused_sim_run.raw_uid].start)
    assert submission_key(start, method="bicubic") == fused_sim_run.fusion["key"]


@pytest.mark.slow
def test_a_network_method_is_keyed_by_its_weights(tiled, fused_sim_run):
    start = dict(tiled.raw[fused_sim_run.raw_uid].start)
    fused = fuse_run(tiled.client, fused_sim_run.raw_uid, method="edvr_stf_detail")
    assert submission_key(start, method="edvr_stf_detail") == fused.fusion["key"]
    assert submission_key(start, method="edvr_stf") != fused.fusion["key"]


def test_the_key_follows_the_requested_separation():
    start = {"uid": "abc", "fusion": {"requested": True, "method": "bicubic"}}
    other = {**start, "fusion": {**start["fusion"], "lr_separation": 2}}
    assert submission_key(start) != submission_key(other)
    assert submission_key(start) == submission_key(dict(start))


def test_rerun_keys_differ_from_the_key_and_lead_back_to_it():
    key = "f" * 64
    assert rerun_key(key, 0) == key
    assert rerun_key(key, 1) != key != rerun_key(key, 2)
    assert {base_key(rerun_key(key, n)) for n in range(4)} == {key}
    assert raw_tag("uid-1") == "raw:uid-1"


def test_a_writer_tag_names_its_host_and_pid():
    assert writer_of(["raw:u", writer_tag("node-1.facility", 4242)]) == (
        "node-1.facility",
        4242,
    )
    assert writer_of(["raw:u", "writer:nopid"]) is None
