"""`serve --catalog-uri postgresql://...`: catalog and tables in PostgreSQL.

One cluster and two servers over it (replicas sharing the catalog and the data
directory, as behind a load balancer) for the module. Two server processes on
one SQLite catalog answer concurrent writers with "database is locked" and
HTTP 500s (the writer retries and may duplicate rows); PostgreSQL takes them.
"""

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from postgres import PostgresCluster, require_postgres
from servers import ServedTiled, free_port, serve_command
from system_helpers import make_raw_run_writer, scene_burst

from xfusion_bluesky.catalog.server import server_config

pytestmark = pytest.mark.slow  # a cluster (~1 s) and two Tiled servers (~6 s each)

KEY = "pgsecret42"
# Some of Tiled's own tables in the catalog database.
CATALOG_TABLES = {"nodes", "data_sources", "structures", "assets", "revisions"}


@pytest.fixture(scope="module")
def postgres():
    require_postgres()
    with PostgresCluster(database="tiled") as cluster:
        yield cluster


@pytest.fixture(scope="module")
def replicas(postgres, tmp_path_factory):
    """Two servers on one PostgreSQL catalog and one data dir; and the HDF5 dir."""
    root = tmp_path_factory.mktemp("pg_served")
    hdf5_dir = root / "hdf5"
    with contextlib.ExitStack() as stack:
        servers = []
        for name in ("a", "b"):
            port = free_port()
            command = serve_command(
                *("--data-dir", str(root), "--hdf5-dir", str(hdf5_dir)),
                *("--api-key", KEY, "--port", str(port)),
                *("--catalog-uri", postgres.uri()),
            )
            server = ServedTiled(command, port, root / f"serve_{name}.log")
            servers.append(stack.enter_context(server))
        yield servers, hdf5_dir


@contextlib.contextmanager
def raw_writer(uri, hdf5_dir):
    """A beamline's connection to ``uri``: its raw container and a run writer."""
    from xfusion_bluesky.catalog.connect import connect

    connection = connect(uri, api_key=KEY, hdf5_dir=hdf5_dir, check_storage=False)
    try:
        yield connection.raw, make_raw_run_writer(connection.raw, hdf5_dir)
    finally:
        connection.close()


@contextlib.contextmanager
def own_client(uri):
    """A client of its own, as each fusion worker has, closed afterwards."""
    from xfusion_bluesky.catalog.connect import open_client

    root = open_client(uri, KEY)
    try:
        yield root
    finally:
        root.context.close()


def burst_arrays(seed):
    burst = scene_burst(seed=seed)
    return {k: burst[k] for k in ("lr", "hr", "lr_times", "hr_times")}


def test_a_driver_in_the_uri_stays_out_of_the_table_storage(tmp_path):
    # ADBC, which writes the tables, takes only the bare postgresql:// scheme.
    uri = "postgresql+asyncpg://u:p@db:5432/tiled"
    config = server_config(
        data_dir=tmp_path, hdf5_dir=tmp_path, api_key="k", catalog_uri=uri
    )
    args = config["trees"][0]["args"]
    assert args["uri"] == uri
    assert args["writable_storage"][1] == "postgresql://u:p@db:5432/tiled"


def test_runs_and_tables_go_to_postgresql_and_fusion_finds_its_run(postgres, replicas):
    from xfusion_bluesky.pipeline import fuse_run

    (server, _), hdf5_dir = replicas
    arrays = burst_arrays(seed=5)
    with raw_writer(server.uri, hdf5_dir) as (raw, write):
        raw_uid = write(**arrays)
        run = raw[raw_uid]
        assert run.start["uid"] == raw_uid
        times = run["primary"].read()["uhs_frame_times_s"]
        np.testing.assert_allclose(np.asarray(times)[0], arrays["lr_times"])
    with own_client(server.uri) as root:
        fused = fuse_run(root, raw_uid, method="bicubic")
        assert fused.status == "success", fused.reason
        assert fused.raw_uid == raw_uid
        assert fused.frames.shape[0] == len(arrays["lr_times"])
    with own_client(server.uri) as root:
        again = fuse_run(root, raw_uid, method="bicubic")
        assert again.uid == fused.uid  # found in the catalog, not fused twice

    # The nodes are rows in PostgreSQL, and so are the event tables.
    ((count,),) = postgres.fetch("SELECT count(*) FROM nodes")
    assert count > 10
    names = {r[0] for r in postgres.fetch("SELECT tablename FROM pg_tables")}
    assert names >= CATALOG_TABLES
    assert any(name.startswith("table_") for name in names), sorted(names)


def test_two_servers_take_recording_and_fusion_at_once(replicas):
    from xfusion_bluesky.pipeline import fuse_run

    servers, hdf5_dir = replicas
    with raw_writer(servers[0].uri, hdf5_dir) as (_, write):
        to_fuse = [write(**burst_arrays(seed=seed)) for seed in (11, 12)]
    bursts, recorders = 6, [*servers, *servers]
    start_together = threading.Barrier(len(recorders) + len(to_fuse))

    def record(server):
        with raw_writer(server.uri, hdf5_dir) as (raw, write):
            start_together.wait(timeout=30)
            uid = write(**burst_arrays(seed=13), num_bursts=bursts)
            return len(np.asarray(raw[uid]["primary"].read()["uhs_frame_times_s"]))

    def fuse(server, raw_uid):
        with own_client(server.uri) as root:
            start_together.wait(timeout=30)
            fused = fuse_run(root, raw_uid, method="bicubic")
            return fused.status, fused.reason, fused.raw_uid

    with ThreadPoolExecutor(start_together.parties) as pool:
        recorded = [pool.submit(record, server) for server in recorders]
        fused = [pool.submit(fuse, *job) for job in zip(servers, to_fuse, strict=True)]
        # One row per burst: a write refused and retried would have added one.
        assert [job.result() for job in recorded] == [bursts] * len(recorders)
        outcomes = [job.result() for job in fused]
    assert outcomes == [("success", "", uid) for uid in to_fuse]
    for server in servers:
        log = server.log.read_text()
        assert "database is locked" not in log
        assert "Internal Server Error" not in log
