"""`xfusion-bluesky serve`: a standalone Tiled server for the acquisition host."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``serve`` verb."""
    parser = subparsers.add_parser(
        "serve",
        help="run a Tiled server for raw and fused runs (API key or --roles)",
        description=(
            "Write a Tiled configuration (catalog on SQLite or PostgreSQL, the "
            "HDF5 directory as readable storage, an API key or one key per role) "
            "and serve it. Point the beamline at it with "
            "XFUSION_TILED_URL=http://HOST:PORT/api/v1 and XFUSION_TILED_API_KEY."
        ),
    )
    parser.add_argument(
        "--data-dir",
        metavar="PATH",
        help="catalog and data (default XFUSION_DATA)",
    )
    parser.add_argument(
        "--hdf5-dir",
        metavar="PATH",
        help="camera files (default XFUSION_HDF5_DIR, else DATA_DIR/hdf5)",
    )
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        help="the key clients must present (default XFUSION_TILED_API_KEY; required)",
    )
    parser.add_argument(
        "--catalog-uri",
        metavar="URI",
        help="postgresql://... catalog (default SQLite in the data dir)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        metavar="HOST",
        help="address to listen on (default 127.0.0.1: this machine only)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8000,
        metavar="N",
        help="port to listen on (default 8000)",
    )
    parser.add_argument(
        "--roles",
        action="store_true",
        help="one API key per role instead of one full-access key: acquisition "
        "writes raw runs, fusion reads raw and writes fused, analyst reads; the "
        "keys go to DATA_DIR/tiled/role_keys.json (owner-only), made once",
    )
    parser.add_argument(
        "--config-only",
        action="store_true",
        help="write the configuration, print its path, do not serve",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the configuration and serve it (in this process)."""
    from xfusion_bluesky.catalog.server import serve, server_config, server_uri
    from xfusion_bluesky.errors import InvalidInputError
    from xfusion_bluesky.settings import Settings

    settings = Settings.from_env()
    data_dir = Path(args.data_dir) if args.data_dir else settings.data_dir
    hdf5_dir = (
        Path(args.hdf5_dir)
        if args.hdf5_dir
        else settings.hdf5_dir_for(data_dir if args.data_dir is not None else None)
    )
    root = data_dir.expanduser().resolve() / "tiled"
    roles = None
    api_key = args.api_key or settings.tiled_api_key or ""
    if args.roles:
        if args.api_key:
            raise InvalidInputError(
                "--roles makes one key per role; leave --api-key out"
            )
        from xfusion_bluesky.catalog.access import provision_role_keys

        keys = provision_role_keys(root)
        roles = {entry["uuid"]: role for role, entry in keys.items()}
        api_key = ""  # XFUSION_TILED_API_KEY names a client's key here
    config = server_config(
        data_dir=data_dir,
        hdf5_dir=hdf5_dir,
        api_key=api_key or None,
        roles=roles,
        catalog_uri=args.catalog_uri,
        host=args.host,
        port=args.port,
    )
    (root / "data").mkdir(parents=True, exist_ok=True)
    hdf5_dir.expanduser().mkdir(parents=True, exist_ok=True)
    path = root / "config.yml"
    # Owner-only from the start: it holds the API key.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as f:
        json.dump(config, f, indent=2)  # JSON is valid YAML
    path.chmod(0o600)  # an older file keeps its mode through O_TRUNC
    print(path)
    if args.config_only:
        return 0
    uri = server_uri(args.host, args.port)
    print(f"Tiled server for xfusion-bluesky: {uri}")
    if roles:
        print(
            f"API keys per role in {root / 'role_keys.json'} (owner-only): "
            "acquisition -> XFUSION_TILED_API_KEY on the beamline host; "
            "fusion -> the worker's key; analyst -> read-only clients"
        )
    else:
        source = "--api-key" if args.api_key else "XFUSION_TILED_API_KEY"
        print(f"API key: the one given by {source} (not printed)")
    print(f"Beamline: XFUSION_TILED_URL={uri} XFUSION_TILED_API_KEY=<key>")
    sys.stdout.flush()
    serve(path)
    return 0
