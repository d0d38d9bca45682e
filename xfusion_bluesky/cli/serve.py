"""`xfusion-bluesky serve`: a standalone Tiled server for the acquisition host."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``serve`` verb."""
    parser = subparsers.add_parser(
        "serve",
        help="run a Tiled server for raw and fused runs (API key required)",
        description=(
            "Write a Tiled configuration (catalog on SQLite or PostgreSQL, the "
            "HDF5 directory as readable storage, an API key) and serve it with "
            "`tiled serve config`. Point the beamline at it with "
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
        "--config-only",
        action="store_true",
        help="write the configuration, print its path, do not serve",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the configuration and run ``tiled serve config`` on it."""
    from xfusion_bluesky.catalog.server import server_config
    from xfusion_bluesky.settings import Settings

    settings = Settings.from_env()
    data_dir = Path(args.data_dir) if args.data_dir else settings.data_dir
    hdf5_dir = Path(args.hdf5_dir) if args.hdf5_dir else settings.hdf5_dir
    if args.hdf5_dir is None and args.data_dir is not None:
        hdf5_dir = data_dir / "hdf5"
    config = server_config(
        data_dir=data_dir,
        hdf5_dir=hdf5_dir,
        api_key=args.api_key or settings.tiled_api_key or "",
        catalog_uri=args.catalog_uri,
        host=args.host,
        port=args.port,
    )
    root = data_dir.expanduser().resolve() / "tiled"
    (root / "data").mkdir(parents=True, exist_ok=True)
    hdf5_dir.expanduser().mkdir(parents=True, exist_ok=True)
    path = root / "config.yml"
    path.write_text(json.dumps(config, indent=2))  # JSON is valid YAML
    path.chmod(0o600)  # it holds the API key
    print(path)
    if args.config_only:
        return 0
    tiled = shutil.which("tiled", path=str(Path(sys.executable).parent))
    tiled = tiled or shutil.which("tiled")
    if tiled is None:
        print("tiled: command not found; install tiled[server]", file=sys.stderr)
        return 1
    sys.stdout.flush()
    # Become the server, so a signal to this process reaches it (no orphan).
    os.execv(tiled, [tiled, "serve", "config", str(path)])
    return 0  # not reached
