"""Embedded Tiled on SQLite, or facility URL + API key → client.

:func:`connect` returns a :class:`TiledConnection` whose ``raw`` container (spec
``CatalogOfBlueskyRuns`` 3.0, so ``raw[-1]`` and partial uids work) receives the raw
runs. Before anything is written it proves that the server can read the HDF5
directory the cameras write to: a server without it in its readable storage
accepts registrations silently and fails only at the first read.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from xfusion_bluesky.errors import XFusionError

__all__ = [
    "FUSED_CONTAINER",
    "RAW_CONTAINER",
    "APIKeyMissingError",
    "Catalogs",
    "StorageNotReadableError",
    "TiledConnection",
    "check_readable_storage",
    "connect",
    "ensure_run_container",
    "external_hdf5",
    "open_catalogs",
    "open_client",
    "redact",
]

logger = logging.getLogger(__name__)

#: Key of the container of raw runs under the server's root.
RAW_CONTAINER = "raw"
#: Key of the container of derived (fused) runs under the server's root.
FUSED_CONTAINER = "fused"


class StorageNotReadableError(XFusionError):
    """The Tiled server cannot read the directory the cameras write HDF5 into."""


class APIKeyMissingError(XFusionError):
    """The Tiled server requires an API key and none was given."""


@dataclass
class TiledConnection:
    """A Tiled client, its raw-run container and, when embedded, its server.

    Attributes
    ----------
    client : tiled.client.container.Container
        The server's root.
    raw : bluesky_tiled_plugins CatalogOfBlueskyRuns
        Raw runs: ``raw[uid]``, ``raw[-1]``, ``raw["1a2b3c"]``.
    uri : str
        The server URI (with the API key for an embedded server).
    server : SimpleTiledServer or None
        The embedded server this connection started (None for a facility server).
    """

    client: Any
    raw: Any
    uri: str
    server: Any = None
    _closed: bool = field(default=False, repr=False)

    def close(self) -> None:
        """Close the client and stop the embedded server, if one was started."""
        if self._closed:
            return
        self._closed = True
        try:
            self.client.context.close()
        finally:
            if self.server is not None:
                self.server.close()


def connect(
    uri: str | None = None,
    *,
    api_key: str | None = None,
    data_dir: str | Path | None = None,
    hdf5_dir: str | Path,
    raw_key: str = RAW_CONTAINER,
    check_storage: bool = True,
) -> TiledConnection:
    """Connect to a Tiled server, starting an embedded one when ``uri`` is None.

    Parameters
    ----------
    uri : str, optional
        Facility server, e.g. ``https://tiled.example.org/api/v1``.
    api_key : str, optional
        Its API key.
    data_dir : str or Path, optional
        Embedded server only: where its SQLite catalog and data live
        (``data_dir/tiled``); None for a temporary directory deleted on close.
    hdf5_dir : str or Path
        Where the cameras write; the embedded server gets it as readable
        storage, a facility server must already have it.
    raw_key : str
        Container of raw runs under the root (created if missing).
    check_storage : bool
        Prove the server can read ``hdf5_dir`` (see :func:`check_readable_storage`).

    Returns
    -------
    TiledConnection

    Raises
    ------
    StorageNotReadableError
        The server cannot read ``hdf5_dir``.
    """
    hdf5_path = Path(hdf5_dir).expanduser().resolve()
    hdf5_path.mkdir(parents=True, exist_ok=True)
    server = None
    if uri is None:
        from tiled.server import SimpleTiledServer

        directory = None
        if data_dir is not None:
            directory = Path(data_dir).expanduser().resolve() / "tiled"
            directory.mkdir(parents=True, exist_ok=True)
        server = SimpleTiledServer(directory=directory, readable_storage=[hdf5_path])
        _pool_table_connections(server.storage)
        uri = server.uri
        logger.info(
            "embedded Tiled server at %s (data in %s)", redact(uri), server.directory
        )
    try:
        client = open_client(uri, api_key)
    except Exception:
        if server is not None:
            server.close()
        raise
    connection = TiledConnection(client=client, raw=None, uri=uri, server=server)
    try:
        connection.raw = ensure_run_container(client, raw_key)
        if check_storage:
            check_readable_storage(client, hdf5_path)
    except Exception:
        connection.close()
        raise
    return connection


def _pool_table_connections(storage: Any) -> None:
    """Give each request its own connection to the embedded server's DuckDB tables.

    tiled 0.2.20 serves DuckDB tables through a StaticPool: one ADBC connection
    shared by every request thread. Two clients appending at once (the
    RunEngine's raw run and the fusion worker's derived run) then get HTTP 500s
    ("No active transaction") and can crash the process (segfault, heap
    corruption: 3 writers of 5 runs crashed it every time). Clones of the
    connection share the database and are safe, one per thread.
    """
    import sqlalchemy.pool

    if getattr(storage, "dialect", None) != "duckdb":
        return
    storage.dispose()  # drops the shared connection and its StaticPool
    storage.__dict__["_connection_pool"] = sqlalchemy.pool.QueuePool(
        storage._adbc_connection.adbc_clone, pool_size=5, max_overflow=10
    )


def open_client(uri: str, api_key: str | None = None) -> Any:
    """Return a Tiled client of ``uri``; never prompt for a login.

    Parameters
    ----------
    uri : str
        The server (an API key in its query counts).
    api_key : str, optional
        Its API key.

    Raises
    ------
    APIKeyMissingError
        The server requires a key and none was given. (Tiled's own message
        shows a Python call; a server with login providers would prompt.)
    """
    from tiled.client.constructors import from_context
    from tiled.client.context import Context

    context, node_path_parts = Context.from_any_uri(uri, api_key=api_key or None)
    try:
        if not context.authenticated and context.server_info.authentication.required:
            raise APIKeyMissingError(
                f"the Tiled server {redact(uri)} requires an API key: pass "
                "--api-key KEY or set XFUSION_TILED_API_KEY (in Python: api_key=...)"
            )
        return from_context(context, node_path_parts=node_path_parts)
    except BaseException:
        context.close()
        raise


def redact(uri: str) -> str:
    """Return ``uri`` with its API key masked, for logs, errors and printing."""
    return re.sub(r"(api_key=)[^&]+", r"\1***", uri)


@dataclass(frozen=True)
class Catalogs:
    """The root of a Tiled server and its raw- and derived-run containers."""

    root: Any
    raw: Any
    fused: Any


def open_catalogs(
    target: Any,
    *,
    api_key: str | None = None,
    raw_key: str = RAW_CONTAINER,
    fused_key: str = FUSED_CONTAINER,
    create: bool = True,
) -> Catalogs:
    """Resolve what a user holds into the root, raw and fused containers.

    Parameters
    ----------
    target : str, Tiled node, TiledConnection, Beamline-like or Catalogs
        A server URI (``http://host:8000/api/v1``, API key in the query or in
        ``api_key``), the root client, any node on the server (``bl.tiled``, the
        raw container, works), a :class:`TiledConnection`, or an object with a
        ``connection`` attribute (a ``Beamline``).
    api_key : str, optional
        For a URI without one.
    raw_key, fused_key : str
        Container keys under the root.
    create : bool
        Create missing containers (needs write access); False leaves a missing
        one as None (read-only clients).

    Returns
    -------
    Catalogs
    """
    from tiled.client.constructors import from_context

    if isinstance(target, Catalogs):
        return target
    if hasattr(target, "connection"):
        target = target.connection
    if isinstance(target, TiledConnection):
        target = target.client
    if isinstance(target, str):
        root = open_client(target, api_key)
    elif target.path_parts:
        root = from_context(target.context, structure_clients=target.structure_clients)
    else:
        root = target

    def container(key: str) -> Any:
        if create:
            return ensure_run_container(root, key)
        return root.get(key, None)

    return Catalogs(root=root, raw=container(raw_key), fused=container(fused_key))


def ensure_run_container(client: Any, key: str = RAW_CONTAINER) -> Any:
    """Return run container ``key`` of ``client``; create a CatalogOfBlueskyRuns 3.0.

    Version 3 tells the client the catalog is SQL-backed, which makes negative
    indices and partial uids work (with another version every partial uid is
    reported as "multiple matches").
    """
    from tiled.client.utils import ClientError
    from tiled.structures.core import Spec

    if key not in client:
        try:
            client.create_container(
                key, specs=[Spec("CatalogOfBlueskyRuns", version="3.0")]
            )
            logger.info("created run container %r", key)
        except ClientError as err:
            # Another client (a worker starting beside the RunEngine) created it
            # between the check and the create: the server answers 409 Conflict.
            if err.response.status_code != 409:
                raise
    return client[key]


def external_hdf5(
    path: str | Path, dataset: str, structure: Any, **parameters: Any
) -> Any:
    """Return a Tiled ``DataSource`` for an HDF5 dataset the server reads in place.

    Parameters
    ----------
    path : str or Path
        The HDF5 file (absolute, on the server's readable storage).
    dataset : str
        The dataset inside it.
    structure : tiled.structures.array.ArrayStructure
        Its shape, type and chunks.
    **parameters
        More adapter parameters (``swmr``, ...).
    """
    from tiled.structures.core import StructureFamily
    from tiled.structures.data_source import Asset, DataSource, Management

    return DataSource(
        structure_family=StructureFamily.array,
        structure=structure,
        mimetype="application/x-hdf5",
        parameters={"dataset": dataset, **parameters},
        assets=[
            Asset(
                data_uri=f"file://localhost{path}",
                is_directory=False,
                parameter="data_uris",
                num=0,
            )
        ],
        management=Management.external,
    )


def check_readable_storage(client: Any, directory: str | Path) -> None:
    """Register a probe HDF5 file in ``directory`` and read it back through Tiled.

    Parameters
    ----------
    client : tiled.client.container.Container
        Where the probe node is created (and deleted again).
    directory : str or Path
        The directory the cameras write HDF5 into.

    Raises
    ------
    StorageNotReadableError
        Registration or read-back failed: the server does not list ``directory``
        in its readable storage (or sees it at another path).
    """
    from tiled.structures.array import ArrayStructure
    from tiled.structures.core import StructureFamily

    directory = Path(directory).expanduser().resolve()
    key = f"xfusion_storage_probe_{uuid.uuid4().hex[:8]}"
    path = directory / f".{key}.h5"
    expected = np.arange(6, dtype=np.uint16).reshape(1, 2, 3)
    with h5py.File(path, "w") as f:
        f.create_dataset("/entry/data/data", data=expected)
    data_source = external_hdf5(
        path, "/entry/data/data", ArrayStructure.from_array(expected)
    )
    try:
        node = client.new(StructureFamily.array, [data_source], key=key)
        # One plain request: the client's own reads retry a 500 for ~45 s.
        response = client.context.http_client.get(
            node.item["links"]["full"],
            headers={"Accept": "application/octet-stream"},
        )
        response.raise_for_status()
        got = np.frombuffer(response.content, dtype=expected.dtype)
        if not np.array_equal(got, expected.ravel()):
            raise StorageNotReadableError(
                f"Tiled read back wrong values from probe file {path}"
            )
    except StorageNotReadableError:
        raise
    except Exception as err:
        raise StorageNotReadableError(
            f"the Tiled server cannot read the HDF5 directory {directory} "
            f"({type(err).__name__}: {err}). Add it to the server's readable "
            "storage (tiled config `readable_storage`, `tiled serve ... -r DIR`), "
            "at the same path as on this host"
        ) from err
    finally:
        _delete_quietly(client, key)
        path.unlink(missing_ok=True)


def _delete_quietly(client: Any, key: str) -> None:
    """Delete probe node ``key`` if it was created; log instead of raising."""
    try:
        if key in client:
            client.delete_contents(key, external_only=True)
    except Exception:  # a leftover probe node is harmless
        logger.warning("could not delete storage probe node %r", key, exc_info=True)
