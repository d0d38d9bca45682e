"""A Tiled outage mid-scan leaves a complete, replayable backup of the raw run.

A standalone server (``tiled serve config``, a subprocess) is stopped after the
first burst of a three-burst scan. The RunEngine must finish the run; every
document must be in ``data_dir/backup/<uid>.jsonl`` and read back equal to the
original (event arrays included); after the server is back on the same data
directory, replaying the file makes the raw run complete in Tiled and pending
for fusion, and replaying it again changes nothing.
"""

import json
import time

import httpx
import numpy as np
import pytest
from servers import ServedTiled, free_port, tiled_config_command, write_tiled_config

KEY = "backupsecret7"


@pytest.fixture
def server(tmp_path, hdf5_dir):
    """``tiled serve config`` on ``tmp_path``; the test stops and restarts it."""
    port = free_port()
    config = write_tiled_config(tmp_path, hdf5_dir, api_key=KEY, port=port)
    command = tiled_config_command(config)
    with ServedTiled(command, port, tmp_path / "server.log") as handle:
        yield handle


def _same(a, b) -> bool:
    """Deep equality that treats arrays (and lists from JSON) by value."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _scan_through_outage(server, hdf5_dir, backup, num_bursts=3):
    """Scan; the server stops after the first event; scan again while it is down.

    Returns the first run's uid and documents, and the second run's uid.
    """
    from bluesky import RunEngine

    from xfusion_bluesky.catalog.connect import connect
    from xfusion_bluesky.catalog.raw import subscribe_raw_writer
    from xfusion_bluesky.plans.dual_camera import dual_camera_scan

    emitted: list[tuple[str, dict]] = []

    def outage(name, doc):
        emitted.append((name, doc))
        if name in ("event", "event_page") and server.process.poll() is None:
            server.stop()  # after burst 1 reached Tiled

    connection = connect(server.uri, api_key=KEY, hdf5_dir=hdf5_dir)
    try:
        RE = RunEngine()
        subscribe_raw_writer(RE, connection.raw, backup_directory=backup)
        RE.subscribe(outage)
        (uid,) = RE(dual_camera_scan(num_bursts=num_bursts))
        tick = time.perf_counter()
        (later,) = RE(dual_camera_scan(num_bursts=1))
        # Known down: no wait for the client's retries on the second run.
        assert time.perf_counter() - tick < 30
    finally:
        connection.close()
    return uid, emitted[: [n for n, _ in emitted].index("stop") + 1], later


@pytest.mark.slow  # two server starts (~5 s each) and a scan
def test_outage_backup_is_complete_and_replays(
    server, tmp_path, hdf5_dir, sim_devices, capsys, caplog
):
    from xfusion_bluesky.catalog.connect import connect, open_catalogs
    from xfusion_bluesky.catalog.progress import pending_runs
    from xfusion_bluesky.catalog.reader import open_raw_run

    backup = tmp_path / "backup"
    uid, emitted, later = _scan_through_outage(server, hdf5_dir, backup)
    assert server.process.poll() is not None  # the outage did happen
    assert "Tiled has not answered since" in caplog.text  # the second run

    path = backup / f"{uid}.jsonl"
    assert path.exists(), sorted(p.name for p in backup.iterdir())
    for line in path.read_text().splitlines():  # every line is whole JSON
        json.loads(line)
    from xfusion_bluesky.catalog.backup import read_backup, replay_backup

    backed_up = read_backup(path)
    assert [name for name, _ in backed_up] == [name for name, _ in emitted]
    for (name, doc), (_, original) in zip(backed_up, emitted, strict=True):
        assert _same(doc, original), name

    server.start()  # same data directory, same port
    connection = connect(server.uri, api_key=KEY, hdf5_dir=hdf5_dir)
    try:
        assert not connection.raw[uid].metadata.get("stop")  # partial in Tiled
        # The CLI verb, as a user runs it once the server is back.
        from xfusion_bluesky.cli.main import main

        argv = ["replay", "--all", "--backup-dir", str(backup)]
        assert main([*argv, "--tiled", server.uri, "--api-key", KEY]) == 0
        printed = capsys.readouterr().out
        assert f"raw run {uid} replayed" in printed
        assert f"raw run {later} replayed" in printed
        assert connection.raw[later].metadata["stop"]["exit_status"] == "success"
        assert not path.exists()
        assert (backup / "replayed" / path.name).exists()
        node = connection.raw[uid]
        assert node.metadata["stop"]["exit_status"] == "success"
        run = open_raw_run(connection.raw, uid)
        assert run.num_bursts == 3
        for k in range(3):
            burst = run.burst(k)
            assert burst.lr.shape[0] > 0
            assert burst.hr.shape[0] > 0
        assert uid in pending_runs(open_catalogs(connection.client))
        # Replaying again (the moved file) changes nothing.
        moved = backup / "replayed" / path.name
        assert replay_backup(moved, connection.raw) is None
        assert connection.raw[uid].metadata["stop"] == node.metadata["stop"]
        # The worker's catch-up fuses the replayed run.
        outcomes = _catch_up(server.uri, method="bicubic")
        assert [(o.raw_uid, o.status) for o in outcomes] == [
            (uid, "success"),
            (later, "success"),
        ]
        assert pending_runs(open_catalogs(connection.client)) == []
    finally:
        connection.close()


def _catch_up(uri, **options):
    import queue
    import threading

    from xfusion_bluesky.callbacks.loop import WorkerConfig, serve

    config = WorkerConfig(uri, api_key=KEY, poll_s=None, stop_wait_s=0.3, **options)
    jobs = queue.Queue()
    jobs.put(None)
    events = []
    serve(config, jobs, threading.Event(), lambda *event: events.append(event))
    return [payload for kind, payload in events if kind == "result"]


class _DownTiled:
    """A raw container whose server never answers."""

    def include_data_sources(self):
        raise httpx.ConnectError("[Errno 111] Connection refused")


def _array_count(RE, num=2):
    from bluesky.plans import count
    from ophyd.sim import SynSignal

    times = SynSignal(name="times", func=lambda: np.linspace(0.0, 1.0, 5))
    return RE(count([times], num=num))


def test_runs_during_an_outage_go_whole_to_their_backup_fast(tmp_path, caplog):
    from bluesky import RunEngine

    from xfusion_bluesky.catalog.backup import read_backup
    from xfusion_bluesky.catalog.raw import subscribe_raw_writer

    emitted = []
    RE = RunEngine()
    subscribe_raw_writer(RE, _DownTiled(), backup_directory=tmp_path)
    RE.subscribe(lambda name, doc: emitted.append((name, doc)))
    tick = time.perf_counter()
    uids = [*_array_count(RE), *_array_count(RE)]
    assert time.perf_counter() - tick < 10
    assert len(uids) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{uid}.jsonl" for uid in uids
    )
    for uid in uids:
        backed_up = read_backup(tmp_path / f"{uid}.jsonl")
        descriptors = {
            doc["uid"] for name, doc in emitted if doc.get("run_start") == uid
        }
        mine = [
            (name, doc)
            for name, doc in emitted
            if uid in (doc.get("uid"), doc.get("run_start"))
            or doc.get("descriptor") in descriptors
        ]
        assert [name for name, _ in backed_up] == [name for name, _ in mine]
        assert all(_same(a, b) for (_, a), (_, b) in zip(backed_up, mine, strict=True))
        events = [doc for name, doc in backed_up if name == "event"]
        assert events[0]["data"]["times"].dtype == np.float64
    assert "the whole run goes to" in caplog.text
    # The second run did not wait for Tiled's retries: it was known down.
    assert "Tiled has not answered since" in caplog.text


def test_without_a_backup_directory_the_loss_is_logged_and_the_scan_goes_on(caplog):
    from bluesky import RunEngine

    from xfusion_bluesky.catalog.raw import subscribe_raw_writer

    RE = RunEngine()
    subscribe_raw_writer(RE, _DownTiled())
    assert len(_array_count(RE, num=1)) == 1
    assert "is NOT stored" in caplog.text


def test_backup_lines_keep_dtype_shape_and_values():
    from xfusion_bluesky.catalog.backup import decode_line, encode_line

    doc = {
        "frame": np.arange(6, dtype=np.uint16).reshape(2, 3),
        "n": np.int64(7),
        "flag": np.bool_(True),
        "nan": float("nan"),
        "nested": [{"t": np.array([0.5, 1.5], dtype=np.float32)}],
    }
    line = encode_line("event", doc)
    assert "\n" not in line
    name, back = decode_line(line)
    assert name == "event"
    assert back["frame"].dtype == np.uint16
    assert back["frame"].shape == (2, 3)
    np.testing.assert_array_equal(back["frame"], doc["frame"])
    assert (back["n"], back["flag"]) == (7, True)
    assert np.isnan(back["nan"])
    assert back["nested"][0]["t"].dtype == np.float32


def test_replay_cli_says_what_it_needs(tmp_path, capsys):
    from xfusion_bluesky.cli.main import main

    assert main(["replay"]) == 1
    assert "name backup files or give --all" in capsys.readouterr().err
    assert main(["replay", "--all", "--backup-dir", str(tmp_path)]) == 0
    assert "no backup files in" in capsys.readouterr().out
    missing = tmp_path / "nope.jsonl"
    assert main(["replay", str(missing)]) == 1
    assert f"no backup file {missing}" in capsys.readouterr().err


def test_an_unfinished_or_broken_backup_is_refused_by_name(tmp_path):
    from event_model import compose_run

    from xfusion_bluesky.catalog.backup import BackupFile, encode_line, replay_backup
    from xfusion_bluesky.errors import InvalidInputError

    bundle = compose_run()
    uid = bundle.start_doc["uid"]
    backup = BackupFile(tmp_path, uid)
    backup.write_line(encode_line("start", bundle.start_doc))
    backup.close()
    with pytest.raises(InvalidInputError, match="no stop document"):
        replay_backup(backup.path, _DownTiled())
    with backup.path.open("a") as file:
        file.write('{"name": "stop", "doc": {"uid"')  # cut off mid-line
    with pytest.raises(InvalidInputError, match="line 2 is not a whole document"):
        replay_backup(backup.path, _DownTiled())
    assert backup.path.exists()  # nothing moved, nothing lost
