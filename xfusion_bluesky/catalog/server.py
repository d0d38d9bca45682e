"""A standalone Tiled server's configuration for the acquisition host, and serving it.

``xfusion-bluesky serve`` writes what :func:`server_config` returns as a
Tiled configuration file: a catalog (SQLite or PostgreSQL) with writable
storage for derived runs and the cameras' HDF5 folder as readable storage,
behind a single-user API key or, with ``roles``, one API key per role (see
:mod:`xfusion_bluesky.catalog.access`). :func:`serve` runs it.
"""

from __future__ import annotations

import secrets
import socket
from pathlib import Path
from typing import Any

from xfusion_bluesky.errors import InvalidInputError, XFusionError

__all__ = ["serve", "server_config", "server_uri"]


def server_config(
    *,
    data_dir: str | Path,
    hdf5_dir: str | Path,
    api_key: str | None = None,
    roles: dict[str, str] | None = None,
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
    api_key : str, optional
        Single-user API key with full access; required without ``roles``
        (the server is reachable from the network).
    roles : dict, optional
        Principal UUID → role (``acquisition``, ``fusion``, ``analyst``), as
        :func:`~xfusion_bluesky.catalog.access.provision_role_keys` made them:
        their API keys in ``data_dir/tiled/authn.db`` replace the single key.
    catalog_uri : str, optional
        Catalog database, e.g. ``postgresql://user:pass@db/tiled``; default a
        SQLite file. A PostgreSQL catalog also stores the tables.
    host, port : str, int
        Where uvicorn listens.

    Raises
    ------
    InvalidInputError
        Neither an API key nor roles, or both; a key that is not alphanumeric;
        a catalog URI that is neither SQLite nor PostgreSQL.
    """
    if roles and api_key:
        raise InvalidInputError(
            "give either an api_key (one full-access key) or roles (one key per "
            "role), not both"
        )
    if not roles and not api_key:
        raise InvalidInputError(
            "an API key is required for a standalone Tiled server: pass --api-key "
            "KEY or set XFUSION_TILED_API_KEY (or use --roles for one key per role)"
        )
    if api_key and not api_key.isalnum():  # else the server exits at start-up
        raise InvalidInputError(
            f"API key {api_key[:2]}... holds characters other than letters and "
            "digits, which Tiled refuses; e.g. `openssl rand -hex 32` makes one"
        )
    root = Path(data_dir).expanduser().resolve() / "tiled"
    if catalog_uri is None:
        catalog_uri = f"sqlite:///{root / 'catalog.db'}"
    if not catalog_uri.startswith(("sqlite", "postgresql")):
        raise InvalidInputError(
            "catalog_uri must be sqlite:///... or postgresql://...; "
            f"got {catalog_uri!r}"
        )
    tables = f"sqlite:///{root / 'tables.sqlite'}"
    if catalog_uri.startswith("postgresql"):
        # Tables go through ADBC, which takes only the bare scheme (no +asyncpg).
        tables = "postgresql:" + catalog_uri.split(":", 1)[1]
    config: dict[str, Any] = {
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
    if roles:
        config["authentication"] = {
            "providers": [
                {
                    "provider": "xfusion",
                    "authenticator": "xfusion_bluesky.catalog.access:"
                    "KeysOnlyAuthenticator",
                }
            ],
            # Signs session tokens; nobody logs in, so a fresh one per start.
            "secret_keys": [secrets.token_hex(32)],
            "allow_anonymous_access": False,
        }
        config["database"] = {
            "uri": f"sqlite:///{root / 'authn.db'}",
            "init_if_not_exists": True,
        }
        config["access_control"] = {
            "access_policy": "xfusion_bluesky.catalog.access:RoleAccessPolicy",
            "args": {"roles": dict(roles)},
        }
    return config


def server_uri(host: str, port: int) -> str:
    """Return the address clients use for a server listening on ``host:port``."""
    if host in ("0.0.0.0", "::", ""):  # every interface: name this machine
        host = socket.getfqdn()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{int(port)}/api/v1"


def serve(config_path: str | Path) -> None:
    """Serve the Tiled configuration at ``config_path`` until interrupted.

    Unlike ``tiled serve config``, prints no banner: tiled 0.2.20 prints a URL
    with a random key of its own there, not the configured one, and the server
    refuses it.

    Raises
    ------
    XFusionError
        Tiled's server parts are not installed.
    """
    try:
        import uvicorn
        from tiled.config import parse_configs
        from tiled.server.app import build_app_from_config
        from tiled.server.logging_config import LOGGING_CONFIG
    except ImportError as err:
        raise XFusionError(f"serving needs tiled[server] installed ({err})") from err

    config = parse_configs(Path(config_path))
    app = build_app_from_config(config)
    uvicorn.run(app, **{**config.uvicorn, "log_config": LOGGING_CONFIG})
