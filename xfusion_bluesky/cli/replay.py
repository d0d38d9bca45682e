"""`xfusion-bluesky replay [FILE ...] [--all]`: backed-up raw runs into Tiled.

While Tiled is down, the RunEngine's raw-run writer keeps each run whole in
``DATA_DIR/backup/<uid>.jsonl``; this verb writes such files into Tiled with
:func:`~xfusion_bluesky.catalog.backup.replay_backup` and moves each one to
``backup/replayed/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from xfusion_bluesky.cli.options import add_tiled_arguments, open_from_args

DESCRIPTION = """\
Write raw runs that were kept in the backup directory during a Tiled outage
into Tiled, once the server is back. Each file holds one run, every document
as the RunEngine emitted it; a partial copy of the run left in Tiled by the
outage is replaced (its HDF5 files stay). A replayed file is moved to
backup/replayed/; replaying a run Tiled already has complete changes nothing.
The fusion worker does the same at each catch-up when it knows the backup
directory, then fuses the replayed runs.
"""

EPILOG = """\
examples:
  xfusion-bluesky replay --all                        # every file in the backup dir
  xfusion-bluesky replay ~/data/backup/1a2b...e9.jsonl
  xfusion-bluesky replay --all --backup-dir /data/xfusion/backup --tiled URI

A file without a stop document (the run is still going, or its RunEngine
died) is left alone unless --partial is given.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``replay`` verb."""
    parser = subparsers.add_parser(
        "replay",
        help="write raw runs backed up during a Tiled outage into Tiled",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "files", nargs="*", metavar="FILE", help="backup files (<uid>.jsonl)"
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="replay every backup file in --backup-dir",
    )
    parser.add_argument(
        "--backup-dir",
        metavar="DIR",
        help="the backup directory (default $XFUSION_DATA/backup)",
    )
    parser.add_argument(
        "--partial",
        action="store_true",
        help="also replay files without a stop document (the run stays unfinished)",
    )
    add_tiled_arguments(parser, api_key_note="; needs write access to raw runs")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Replay the named files (or all); print one line per file."""
    from xfusion_bluesky.catalog.backup import list_backups, replay_backup
    from xfusion_bluesky.catalog.connect import redact
    from xfusion_bluesky.errors import InvalidInputError
    from xfusion_bluesky.settings import Settings

    if bool(args.files) == bool(args.all):
        raise InvalidInputError("name backup files or give --all (not both)")
    files = [Path(name) for name in args.files]
    if args.all:
        directory = (
            Path(args.backup_dir)
            if args.backup_dir
            else Settings.from_env().data_dir / "backup"
        )
        files = list_backups(directory.expanduser())
        if not files:
            print(f"no backup files in {directory}")
            return 0
    for path in files:
        if not path.is_file():
            raise InvalidInputError(f"no backup file {path}")
    catalogs, uri = open_from_args(args, create=True)
    failures = 0
    try:
        for path in files:
            try:
                uid = replay_backup(path, catalogs.raw, partial=args.partial)
            except Exception as err:  # one bad file: report it, go on
                failures += 1
                print(f"{path}: not replayed: {err}", file=sys.stderr)
                continue
            if uid is None:
                print(f"{path}: already complete in Tiled, nothing written")
            else:
                print(f"{path}: raw run {uid} replayed into {redact(uri)}")
    finally:
        catalogs.root.context.close()
    return 1 if failures else 0
