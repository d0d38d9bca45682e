"""A raw run left without a stop document reaches an outcome.

The worker's catch-up replays a complete backup into Tiled; a run with no stop
document for longer than ``orphan_after_s`` and no backup is marked ``failed``
(orphaned, with the reason); once such a run is replayed it is pending again.
Runs here are a start (and stop) document only, as in tests/callbacks: the
pipeline records them as failed (no camera blocks), which is an outcome.
"""

import queue
import threading
import time

import pytest

from xfusion_bluesky.callbacks.loop import WorkerConfig, serve
from xfusion_bluesky.catalog import fetch_fused
from xfusion_bluesky.catalog.backup import BackupFile, encode_line
from xfusion_bluesky.catalog.progress import pending_runs

REQUESTED = {"requested": True, "method": "bicubic"}


@pytest.fixture
def since():
    return time.time() - 60  # the runs below start up to 30 s "ago"


@pytest.fixture
def catalogs(tiled):
    from xfusion_bluesky.catalog.connect import open_catalogs

    opened = open_catalogs(tiled.uri)
    yield opened
    opened.root.context.close()


def _run(age_s: float):
    """Documents of a fusion-requested run that started ``age_s`` ago."""
    from event_model import compose_run

    started = time.time() - age_s
    bundle = compose_run(time=started, metadata={"fusion": REQUESTED, "scan_id": 7})
    stop = bundle.compose_stop(time=started + 1)
    return str(bundle.start_doc["uid"]), bundle.start_doc, stop


def _unfinished_in_tiled(tiled, start):
    """A run whose Tiled write stopped after its start document (an outage)."""
    from bluesky_tiled_plugins import TiledWriter

    TiledWriter(tiled.raw)("start", start)


def _backup(directory, uid, *docs):
    backup = BackupFile(directory, uid)
    for name, doc in docs:
        backup.write_line(encode_line(name, doc))
    backup.close()
    return backup.path


def catch_up(tiled, since, **options):
    config = WorkerConfig(
        tiled.uri, poll_s=None, stop_wait_s=0.3, since=since, **options
    )
    jobs = queue.Queue()
    jobs.put(None)
    events = []
    serve(config, jobs, threading.Event(), lambda *event: events.append(event))
    return [payload for kind, payload in events if kind == "result"]


def test_an_orphan_is_marked_failed_once_and_pending_again_after_replay(
    tiled, catalogs, since, tmp_path
):
    uid, start, stop = _run(age_s=30)
    _unfinished_in_tiled(tiled, start)
    young, young_start, _ = _run(age_s=0)  # too young to be orphaned
    _unfinished_in_tiled(tiled, young_start)

    outcomes = catch_up(tiled, since, orphan_after_s=10)
    mine = [(o.raw_uid, o.status) for o in outcomes if o.raw_uid in (uid, young)]
    assert mine == [(uid, "failed")]
    marker = fetch_fused(tiled.raw, uid)
    assert marker.status == "failed"
    assert "no stop document since" in marker.reason
    assert "orphaned" in marker.reason
    assert marker.fusion["orphaned"] is True
    assert uid not in pending_runs(catalogs, since=since)

    again = catch_up(tiled, since, orphan_after_s=10)
    assert uid not in [o.raw_uid for o in again]  # marked once only

    # The backup turns up and is replayed: the run is complete and gets fused.
    path = _backup(tmp_path, uid, ("start", start), ("stop", stop))
    assert uid not in pending_runs(catalogs, since=since)
    outcomes = catch_up(tiled, since, orphan_after_s=10, backup_dir=str(tmp_path))
    assert not path.exists()
    assert (tmp_path / "replayed" / path.name).exists()
    assert tiled.raw[uid].metadata["stop"]["exit_status"] == "success"
    (fused,) = [o for o in outcomes if o.raw_uid == uid]
    assert fused.trigger == "catch-up"
    assert fused.derived_uid not in (None, marker.uid)
    assert uid not in pending_runs(catalogs, since=since)


def test_a_run_still_being_backed_up_is_not_marked(tiled, since, tmp_path):
    uid, start, _ = _run(age_s=30)
    _unfinished_in_tiled(tiled, start)
    path = _backup(tmp_path, uid, ("start", start))  # no stop yet
    outcomes = catch_up(tiled, since, orphan_after_s=10, backup_dir=str(tmp_path))
    assert uid not in [o.raw_uid for o in outcomes]
    assert path.exists()  # an incomplete backup is left for later
    with pytest.raises(LookupError):
        fetch_fused(tiled.raw, uid)


def test_the_catch_up_replays_a_backup_of_a_run_tiled_never_saw(tiled, since, tmp_path):
    uid, start, stop = _run(age_s=5)
    _backup(tmp_path, uid, ("start", start), ("stop", stop))
    with pytest.raises(KeyError):
        tiled.raw[uid]
    outcomes = catch_up(tiled, since, backup_dir=str(tmp_path))
    assert tiled.raw[uid].metadata["stop"]["exit_status"] == "success"
    mine = [(o.raw_uid, o.trigger) for o in outcomes if o.raw_uid == uid]
    assert mine == [(uid, "catch-up")]
