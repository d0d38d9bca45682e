"""Scale-out: 20 scans, two Prefect workers, one killed mid-fusion, each run fused once.

The facility's stack on one machine: a PostgreSQL-backed Tiled server, a local
Prefect server (SQLite, temp home), both deployments, two process workers with
one torch thread each, and a sim beamline with ``setup(fusion="prefect")``.
"""

import os
import re
import subprocess
import time
from collections import Counter

import psutil
import pytest
from postgres import PostgresCluster, require_postgres
from servers import ServedTiled, free_port, serve_command

from xfusion_bluesky.beamline import setup
from xfusion_bluesky.catalog.connect import open_catalogs
from xfusion_bluesky.catalog.progress import pending_runs
from xfusion_bluesky.plans.dual_camera import dual_camera_scan
from xfusion_bluesky.stored_format import DERIVED_LINK_KEYS

pytest.importorskip("prefect")
from prefect.deployments import run_deployment

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SCANS = 20
API_KEY = "secret"
WORKER_ENV = {
    "XFUSION_TILED_API_KEY": API_KEY,
    "XFUSION_DEVICE": "cpu",
    "XFUSION_TORCH_THREADS": "1",
}


@pytest.fixture
def facility(tmp_path, prefect_settings):
    """PostgreSQL, Tiled on it, Prefect, both deployments and two workers."""
    from xfusion_bluesky.orchestration.deploy import deploy
    from xfusion_bluesky.orchestration.local import LocalPrefect

    require_postgres()
    hdf5 = tmp_path / "hdf5"
    hdf5.mkdir()
    port = free_port()
    with PostgresCluster() as pg:
        command = serve_command(
            "--data-dir", str(tmp_path / "tiled"), "--hdf5-dir", str(hdf5),
            "--api-key", API_KEY, "--port", str(port), "--catalog-uri", pg.uri(),
        )  # fmt: skip
        with (
            ServedTiled(command, port, tmp_path / "tiled.log") as tiled,
            LocalPrefect(tmp_path / "prefect") as prefect,
        ):
            prefect_settings(prefect.env)
            # Scheduled hourly: the test runs its catch-up itself, after the kill.
            deployed = deploy(
                tiled.uri, method="bicubic", catch_up_every_s=3600, heartbeat_s=None
            )
            workers = [prefect.start_worker(f"w{n}", WORKER_ENV) for n in (1, 2)]
            # The second trigger, on Tiled's websocket, beside the beamline's own.
            feed_log = tmp_path / "feed.log"
            python_m = serve_command()[:-1]  # python -m xfusion_bluesky
            with feed_log.open("w") as out:
                feed = subprocess.Popen(
                    [*python_m, "-v", "worker", "--tiled", tiled.uri, "--prefect"],
                    env={**os.environ, **prefect.env, "XFUSION_TILED_API_KEY": API_KEY},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            try:
                ready = "submitting the finished runs"
                assert _wait(lambda: ready in feed_log.read_text(), 60)
                yield {
                    "tiled": tiled,
                    "hdf5": hdf5,
                    "data": tmp_path / "data",
                    "deployed": deployed,
                    "workers": workers,
                    "feed_log": feed_log,
                }
            finally:
                feed.terminate()
                feed.wait(10)


def test_each_of_twenty_runs_is_fused_exactly_once_though_a_worker_dies(facility):
    tiled, (victim, survivor) = facility["tiled"], facility["workers"]
    deployed = facility["deployed"]
    bl = setup(
        "sim",
        tiled_uri=tiled.uri,
        api_key=API_KEY,
        data_dir=facility["data"],
        hdf5_dir=facility["hdf5"],
        roi="demo",
        fusion="prefect",
    )
    catalogs = open_catalogs(tiled.uri, api_key=API_KEY)
    try:
        uids, killed = [], False
        for _ in range(SCANS):
            (uid,) = bl.RE(dual_camera_scan())
            uids.append(uid)
            killed = killed or _kill_mid_fusion(victim, deployed.fuse, catalogs)
        assert bl.fusion_worker.wait_idle(60)
        submitted = bl.fusion_worker.results
        assert [s.error for s in submitted] == [""] * SCANS
        killed = killed or _wait(
            lambda: _kill_mid_fusion(victim, deployed.fuse, catalogs), 240
        )
        assert killed, "the victim worker never fused its third run"
        # The survivor fuses the rest; the killed run stays pending until a
        # catch-up finds its flow run's process gone.
        assert _wait(lambda: len(pending_runs(catalogs)) <= 1, 240)
        cut_short = bool(pending_runs(catalogs))  # else it died just after
        run_deployment(deployed.catch_up, timeout=0, as_subflow=False)
        assert _wait(lambda: not pending_runs(catalogs), 120), pending_runs(catalogs)

        fused = _derived_runs(catalogs)
        assert Counter(raw for raw, _ in fused) == Counter(uids)  # exactly one each
        assert {status for _, status in fused} == {"success"}
        # The killed flow run is set Crashed by the catch-up; a re-run fused its
        # raw run if it was cut short before its derived run was finished.
        expected = {"COMPLETED": SCANS if cut_short else SCANS - 1, "CRASHED": 1}
        assert _wait(lambda: _states(deployed.fuse) == expected, 60)
        # The websocket trigger submitted every run too, and got the same flow
        # runs back: one fusion key, one flow run.
        fed = re.findall(r"submitted: flow run (\S+)", facility["feed_log"].read_text())
        assert sorted(fed) == sorted(s.flow_run_id for s in submitted)
        # Both workers fused runs: the victim two before it died, at least.
        for worker in (victim, survivor):
            assert worker.log.read_text().count("submitting flow run") >= 3
    finally:
        catalogs.root.context.close()
        bl.close()


def _kill_mid_fusion(worker, deployment, catalogs, after=2):
    """Kill ``worker`` and its flow run while it fuses, once it fused ``after`` runs.

    Fusing: the flow run tagged itself with its process (it does so just
    before ``fuse_run``), that process is the worker's, and its raw run has no
    finished derived run yet. True once killed.
    """
    from xfusion_bluesky.orchestration.keys import writer_of

    if worker.process.poll() is not None:
        return False
    if worker.log.read_text().count("Finished in state Completed()") < 2 * after:
        return False  # a flow run logs it twice: its task, then itself
    children = {p.pid for p in psutil.Process(worker.pid).children(recursive=True)}
    for run in _flow_runs(deployment):
        writer = writer_of(run.tags)
        fusing = run.state.type.name == "RUNNING" and writer and writer[1] in children
        if fusing and run.parameters["raw_uid"] in pending_runs(catalogs):
            worker.kill()
            return True
    return False


def _states(deployment):
    return Counter(run.state.type.name for run in _flow_runs(deployment))


def _wait(condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.25)
    return condition()


def _derived_runs(catalogs):
    """(raw uid, exit status) of every derived run, finished or not."""
    found = []
    for node in catalogs.fused.values():
        start, stop = node.metadata.get("start") or {}, node.metadata.get("stop")
        raw = next(start[key] for key in DERIVED_LINK_KEYS if key in start)
        found.append((raw, (stop or {}).get("exit_status")))
    return found


def _flow_runs(deployment):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        found = client.read_deployment_by_name(deployment)
        only = DeploymentFilter(id=DeploymentFilterId(any_=[found.id]))
        return client.read_flow_runs(deployment_filter=only)
