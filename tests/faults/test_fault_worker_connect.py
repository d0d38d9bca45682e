"""A worker that starts while Tiled is down waits for it instead of giving up.

Seen in the fault soak: a worker child restarted during a server restart could
not open Tiled, reported it as fatal and stayed ``failed``; every later run was
"not queued" until fusion was started again by hand.
"""

from __future__ import annotations

import time

from fault_raw_runs import burst_arrays, make_raw_run_writer
from servers import ServedTiled, free_port, serve_command

KEY = "connectsecret3"


def test_a_worker_started_during_an_outage_fuses_once_tiled_is_back(tmp_path, hdf5_dir):
    from xfusion_bluesky.callbacks import FusionWorker
    from xfusion_bluesky.catalog.connect import connect

    port = free_port()
    uri = f"http://127.0.0.1:{port}/api/v1"
    options = {"mode": "thread", "method": "bicubic", "poll_s": None}
    worker = FusionWorker(uri, api_key=KEY, connect_wait_s=120, **options).start()
    try:
        time.sleep(2.0)  # nothing listens yet: it tries again, it does not give up
        assert worker.state == "starting"
        assert worker.error is None
        command = serve_command(
            *("--data-dir", str(tmp_path), "--hdf5-dir", str(hdf5_dir)),
            *("--port", str(port), "--api-key", KEY),
        )
        with ServedTiled(command, port, tmp_path / "serve.log"):
            connection = connect(uri, api_key=KEY, hdf5_dir=hdf5_dir)
            try:
                write = make_raw_run_writer(connection.raw, hdf5_dir)
                uid = write(**burst_arrays())
            finally:
                connection.close()
            worker.submit(uid)
            assert worker.wait_idle(120), worker.error
            # Its catch-up may take the run before the submitted job does: either
            # way one derived run, a success.
            outcomes = [r for r in worker.results if r.raw_uid == uid]
            assert outcomes
            assert [r.status for r in outcomes] == ["success"] * len(outcomes)
            assert len({r.derived_uid for r in outcomes}) == 1
    finally:
        worker.close()
