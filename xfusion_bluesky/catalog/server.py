"""A standalone Tiled server's configuration for the acquisition host.

``xfusion-bluesky serve`` writes what :func:`server_config` returns as a
``tiled serve config`` file: a catalog (SQLite or PostgreSQL) with writable
storage for derived runs and the cameras' HDF5 folder as readable storage,
behind a single-user API key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xfusion_bluesky.errors import InvalidInputError

__all__ = ["server_config"]


def server_config(
    *,
    data_dir: str | Path,
    hdf5_dir: str | Path,
    api_key: str,
    catalog_uri: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
) -> dict[str, Any]:
    """Return a ``tiled serve config`` configuration for the acquisition host.

    Parameters
    ----------
    data_dir : str or Path
        Where the catalog (SQLite), arrays and tables live (``data_dir/tiled``).
    hdf5_dir : str or Path
        The cameras' HDF5 directory: the server's readable storage.
    api_key : str
        Single-user API key, required (the server is reachable from the network).
    catalog_uri : str, optional
        Catalog database, e.g. ``postgresql://user:pass@db/tiled``; default a
        SQLite file. A PostgreSQL catalog also stores the tables.
    host, port : str, int
        Where uvicorn listens.

    Raises
    ------
    InvalidInputError
        No API key or one that is not alphanumeric, or a catalog URI that is
        neither SQLite nor PostgreSQL.
    """
    if not api_key:
        raise InvalidInputError(
            "api_key is required for a standalone Tiled server; set "
            "XFUSION_TILED_API_KEY or pass --api-key"
        )
    if not api_key.isalnum():  # else the server exits at start-up, in its log only
        raise InvalidInputError(
            "api_key must hold letters and digits only (Tiled refuses others); "
            "e.g. python -c 'import secrets; print(secrets.token_hex(32))'"
        )
    root = Path(data_dir).expanduser().resolve() / "tiled"
    if catalog_uri is None:
        catalog_uri = f"sqlite:///{root / 'catalog.db'}"
    if not catalog_uri.startswith(("sqlite", "postgresql")):
        raise InvalidInputError(
            "catalog_uri must be sqlite:///... or postgresql://...; "
            f"got {catalog_uri!r}"
        )
    tables = (
        catalog_uri
        if catalog_uri.startswith("postgresql")
        else f"sqlite:///{root / 'tables.sqlite'}"
    )
    return {
        "authentication": {"single_user_api_key": api_key},
        # A streaming cache makes client.subscribe() (websockets) work.
        "streaming_cache": {"uri": "memory"},
        "trees": [
            {
                "path": "/",
                "tree": "catalog",
                "args": {
                    "uri": catalog_uri,
                    # Without writable storage TiledWriter gets HTTP 405.
                    "writable_storage": [str(root / "data"), tables],
                    "readable_storage": [str(Path(hdf5_dir).expanduser().resolve())],
                    "init_if_not_exists": True,
                },
            }
        ],
        "uvicorn": {"host": host, "port": int(port)},
    }
