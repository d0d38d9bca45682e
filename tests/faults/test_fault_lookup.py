"""A raw uid names the fusion its run requested, not the newest one.

A raw run requests ``edvr_stf``; the worker fuses it so, then a scientist fuses
a bicubic baseline by hand. Looking the run up by its raw uid used to give the
newest successful derived run, the baseline, so ``fetch_fused``, ``show`` and
``export`` showed bicubic frames. The requested method is the default now, and
``method=`` / ``--method`` picks another.
"""

from __future__ import annotations

import h5py
import pytest
from fault_raw_runs import burst_arrays, make_raw_run_writer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fused_twice(tiled, hdf5_dir):
    """A raw run fused with its requested method, then with bicubic by hand."""
    from xfusion_bluesky.pipeline import fuse_run

    write = make_raw_run_writer(tiled.raw, hdf5_dir)
    uid = write(**burst_arrays(), method="edvr_stf")
    requested = fuse_run(tiled.client, uid)  # what the worker does
    baseline = fuse_run(tiled.client, uid, method="bicubic")  # by hand, later
    assert requested.fusion["method"] == "edvr_stf", requested.reason
    assert baseline.fusion["method"] == "bicubic", baseline.reason
    assert requested.status == baseline.status == "success"
    return uid, requested, baseline


def test_fetch_fused_gives_the_requested_method_not_the_newest(tiled, fused_twice):
    from xfusion_bluesky.catalog import fetch_fused

    uid, requested, baseline = fused_twice
    assert fetch_fused(tiled.client, uid).uid == requested.uid
    assert fetch_fused(tiled.client, uid[:8], wait=5).uid == requested.uid
    assert fetch_fused(tiled.client, uid, method="bicubic").uid == baseline.uid
    with pytest.raises(LookupError, match=r"no bayesian derived run.*: edvr_stf, bicu"):
        fetch_fused(tiled.client, uid, method="bayesian")


def test_resolve_fused_follows_the_same_rule(tiled, fused_twice):
    from xfusion_bluesky.catalog.lookup import open_server, resolve_fused
    from xfusion_bluesky.settings import Settings

    uid, requested, baseline = fused_twice
    catalogs, _ = open_server(tiled.uri, settings=Settings.from_env({}))
    try:
        assert resolve_fused(catalogs, uid).uid == requested.uid
        assert resolve_fused(catalogs, uid, method="bicubic").uid == baseline.uid
        # A derived uid names that run; a method that contradicts it is an error.
        assert resolve_fused(catalogs, baseline.uid).uid == baseline.uid
        with pytest.raises(LookupError, match="is a bicubic fusion, not edvr_stf"):
            resolve_fused(catalogs, baseline.uid, method="edvr_stf")
    finally:
        catalogs.root.context.close()


def test_show_and_export_draw_the_requested_fusion(
    fused_twice, server, tmp_path, capsys
):
    from xfusion_bluesky.cli.main import main

    uid, requested, baseline = fused_twice
    out = tmp_path / "show.png"
    assert main(["show", uid[:8], "--out", str(out), *server]) == 0
    assert f"derived run {requested.uid[:8]}" in capsys.readouterr().out
    argv = ["show", uid[:8], "--method", "bicubic", "--out", str(out), *server]
    assert main(argv) == 0
    assert f"derived run {baseline.uid[:8]}" in capsys.readouterr().out

    path = tmp_path / "out.h5"
    assert main(["export", uid, "--out", str(path), *server]) == 0
    assert f"of derived run {requested.uid}" in capsys.readouterr().out
    with h5py.File(path) as f:
        assert f["entry/provenance"].attrs["method"] == "edvr_stf"
    argv = ["export", uid, "--method", "bicubic", "--out", str(path), "--overwrite"]
    assert main([*argv, *server]) == 0
    assert f"of derived run {baseline.uid}" in capsys.readouterr().out


def test_without_the_requested_fusion_another_one_is_named(tiled, hdf5_dir):
    """Only a baseline exists (a worker set to bicubic): it is used, and said so."""
    from xfusion_bluesky.catalog import fetch_fused
    from xfusion_bluesky.pipeline import fuse_run

    write = make_raw_run_writer(tiled.raw, hdf5_dir)
    uid = write(**burst_arrays(), method="edvr_stf")
    baseline = fuse_run(tiled.client, uid, method="bicubic")
    assert fetch_fused(tiled.client, uid).uid == baseline.uid
    with pytest.raises(LookupError, match=r"no edvr_stf derived run.*has: bicubic"):
        fetch_fused(tiled.client, uid, method="edvr_stf")
