"""A run still being recorded gets no final outcome.

``fuse`` on a raw run without a stop document used to write a ``failed`` derived
run ("no stop document"); the worker then took the run as fused and never fused
it. Now nothing is written: the library raises, the CLI refuses (or waits with
``--wait``), and the run is fused once its stop document arrives.
"""

from __future__ import annotations

import threading

import pytest
from fault_raw_runs import burst_arrays, make_raw_run_writer


@pytest.fixture
def write_raw_run(tiled, hdf5_dir):
    return make_raw_run_writer(tiled.raw, hdf5_dir)


def test_fusing_an_unfinished_run_raises_and_writes_nothing(tiled, write_raw_run):
    from xfusion_bluesky.catalog import find_derived
    from xfusion_bluesky.catalog.connect import open_catalogs
    from xfusion_bluesky.catalog.progress import pending_runs
    from xfusion_bluesky.errors import RunNotFinishedError, XFusionError
    from xfusion_bluesky.pipeline import fuse_run

    uid = write_raw_run(**burst_arrays(), with_stop=False)
    with pytest.raises(RunNotFinishedError, match="still being recorded") as info:
        fuse_run(tiled.raw, uid, method="bicubic")
    assert isinstance(info.value, XFusionError)
    assert uid in str(info.value)
    assert find_derived(tiled.raw, uid) == []  # no outcome recorded

    write_raw_run.stop[uid]()  # the scan ends: the worker's catch-up now sees it
    assert uid in pending_runs(open_catalogs(tiled.raw))
    fused = fuse_run(tiled.raw, uid, method="bicubic")
    assert fused.status == "success", fused.reason
    assert [run.uid for run in find_derived(tiled.raw, uid)] == [fused.uid]


def test_fuse_verb_refuses_an_unfinished_run(tiled, write_raw_run, server, capsys):
    from xfusion_bluesky.catalog import find_derived
    from xfusion_bluesky.cli.main import main

    uid = write_raw_run(**burst_arrays(), with_stop=False)
    assert main(["fuse", uid[:8], "--method", "bicubic", *server]) == 1
    err = capsys.readouterr().err
    assert "still being recorded" in err
    assert "--wait" in err
    assert find_derived(tiled.raw, uid) == []


@pytest.mark.slow
def test_fuse_verb_waits_for_the_stop_document(tiled, write_raw_run, server, capsys):
    from xfusion_bluesky.catalog import find_derived
    from xfusion_bluesky.cli.main import main

    uid = write_raw_run(**burst_arrays(), with_stop=False)
    timer = threading.Timer(1.5, write_raw_run.stop[uid])
    timer.start()
    try:
        argv = ["fuse", uid[:8], "--method", "bicubic", "--wait", "60", *server]
        assert main(argv) == 0
    finally:
        timer.join()
    assert "status       success" in capsys.readouterr().out
    assert len(find_derived(tiled.raw, uid)) == 1


def test_fuse_verb_gives_up_waiting_without_writing(
    tiled, write_raw_run, server, capsys
):
    from xfusion_bluesky.catalog import find_derived
    from xfusion_bluesky.cli.main import main

    uid = write_raw_run(**burst_arrays(), with_stop=False)
    argv = ["fuse", uid[:8], "--method", "bicubic", "--wait", "0.5", *server]
    assert main(argv) == 1
    assert "no stop document after 0.5 s" in capsys.readouterr().err
    assert find_derived(tiled.raw, uid) == []
