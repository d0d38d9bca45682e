"""A throw-away PostgreSQL cluster for tests: initdb in a temp dir, 127.0.0.1, trust.

Test files import it as ``from postgres import ...`` (``tests/`` is on
``sys.path``, see ``tests/servers.py``). PostgreSQL refuses to run as root, so
under root the cluster belongs to, and runs as, the ``postgres`` user.
"""

import asyncio
import atexit
import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from servers import free_port

__all__ = ["PostgresCluster", "postgres_binaries", "require_postgres"]

#: The programs a cluster needs, all from one installation.
PROGRAMS = ("initdb", "pg_ctl", "postgres")
#: The cluster's superuser; trust authentication lets anyone on 127.0.0.1 be it.
SUPERUSER = "postgres"
#: The system user that owns and runs the cluster when tests run as root.
SYSTEM_USER = "postgres"

# Durability off and little memory: a test cluster lives for seconds and holds
# kilobytes; fsync alone costs seconds per start on a busy disk.
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "16MB",
    "max_connections": "100",
    "log_min_messages": "warning",
}


def _complete(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in PROGRAMS)


def _version(bin_dir: Path) -> tuple[int, ...]:
    # "/usr/lib/postgresql/15/bin" -> (15,): numeric, so that 10 sorts above 9.
    return tuple(int(part) for part in bin_dir.parent.name.split(".") if part.isdigit())


def postgres_binaries() -> Path | None:
    """Return the directory holding ``initdb``, ``pg_ctl`` and ``postgres``.

    ``initdb`` on ``PATH`` first (its link resolved, so that a
    ``/usr/local/bin`` link leads to its installation), then Debian's
    ``/usr/lib/postgresql/VERSION/bin``, highest version first.

    Returns
    -------
    Path or None
        The directory; None when no installation has all three programs.
    """
    found = shutil.which("initdb")
    if found is not None:
        directory = Path(found).resolve().parent
        if _complete(directory):
            return directory
    installed = Path("/usr/lib/postgresql").glob("*/bin")
    for directory in sorted(installed, key=_version, reverse=True):
        if _complete(directory):
            return directory
    return None


def _missing_reason() -> str | None:
    if postgres_binaries() is None:
        return (
            "PostgreSQL is not installed (no initdb, pg_ctl and postgres on PATH or "
            "in /usr/lib/postgresql/*/bin); e.g. apt-get install postgresql"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            return (
                f"PostgreSQL refuses to run as root and there is no {SYSTEM_USER!r} "
                "user to run it as"
            )
        if shutil.which("runuser") is None:
            return "PostgreSQL refuses to run as root and runuser is missing"
    return None


def require_postgres() -> None:
    """Skip the calling test (or module) when no cluster can be started here."""
    reason = _missing_reason()
    if reason is not None:
        pytest.skip(reason)


class PostgresCluster:
    """A PostgreSQL cluster on 127.0.0.1, in a temp dir, removed when stopped.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`; a
    cluster left running at interpreter exit is stopped then.

    Parameters
    ----------
    database : str
        A database created at start-up.

    Attributes
    ----------
    port : int
        The TCP port it listens on, on 127.0.0.1.
    directory : Path or None
        Its temp dir: ``data/``, ``socket/`` and ``server.log``.
    startup_s : float
        Seconds from initdb to a running cluster with ``database`` in it.
    """

    def __init__(self, database: str = "tiled"):
        self.database = database
        self.port = free_port()
        self.directory: Path | None = None
        self.startup_s = float("nan")
        self._bin = postgres_binaries()
        self._running = False

    def uri(self, database: str | None = None) -> str:
        """Return ``postgresql://postgres@127.0.0.1:PORT/DATABASE``.

        The form Tiled takes both as a catalog URI (it adds the asyncpg driver)
        and as table storage (through ADBC, which wants the bare scheme).
        """
        name = database or self.database
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{name}"

    def start(self) -> "PostgresCluster":
        """Create the cluster, start it and create :attr:`database`.

        Raises
        ------
        RuntimeError
            PostgreSQL is missing or would not start (the log's tail says why).
        """
        reason = _missing_reason()
        if reason is not None:
            raise RuntimeError(reason)
        started = time.perf_counter()
        # Not pytest's tmp_path: its parents are root-only, the server user's not.
        self.directory = Path(tempfile.mkdtemp(prefix="xfusion-pg-"))
        (self.directory / "socket").mkdir()
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SYSTEM_USER)
            for path in (self.directory, self.directory / "socket"):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb", "-D", str(self._data), "-U", SUPERUSER, "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions",
        )  # fmt: skip
        with (self._data / "postgresql.conf").open("a") as conf:
            for key, value in {
                **SETTINGS,
                "port": str(self.port),
                "unix_socket_directories": f"'{self.directory / 'socket'}'",
            }.items():
                conf.write(f"{key} = {value}\n")
        atexit.register(self.stop)
        self._running = True
        try:
            self._run(
                "pg_ctl", "start", "-w", "-t", "30", "-D", str(self._data),
                "-l", str(self.directory / "server.log"),
            )  # fmt: skip
            self.create_database(self.database)
        except BaseException:
            # The start's own error says more than a failed stop would.
            with contextlib.suppress(RuntimeError):
                self.stop()
            raise
        self.startup_s = time.perf_counter() - started
        return self

    @property
    def _data(self) -> Path:
        assert self.directory is not None
        return self.directory / "data"

    def _run(self, program: str, *args: str) -> None:
        assert self._bin is not None
        command = [str(self._bin / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SYSTEM_USER, "--", *command]
        # The cwd must be one the server user may enter.
        done = subprocess.run(
            command, cwd=self.directory, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            log = self.directory / "server.log" if self.directory else None
            tail = log.read_text()[-2000:] if log and log.exists() else ""
            raise RuntimeError(
                f"{program} failed ({done.returncode}): {done.stderr.strip()}\n{tail}"
            )

    def fetch(self, query: str, database: str | None = None) -> list[Any]:
        """Run ``query`` in ``database`` (default :attr:`database`); return its rows.

        Through asyncpg, the driver Tiled's catalog uses: no psql needed.
        """
        import asyncpg

        async def fetch() -> list[Any]:
            connection = await asyncpg.connect(self.uri(database))
            try:
                return list(await connection.fetch(query))
            finally:
                await connection.close()

        return asyncio.run(fetch())

    def create_database(self, name: str) -> str:
        """Create database ``name`` and return its URI (see :meth:`uri`)."""
        if not name.replace("_", "").isalnum():  # it goes into SQL unquoted
            raise ValueError(f"database name must be letters, digits, _; got {name!r}")
        self.fetch(f"CREATE DATABASE {name}", database="postgres")
        return self.uri(name)

    def stop(self) -> None:
        """Stop the server (``pg_ctl stop -m fast``) and remove its directory."""
        atexit.unregister(self.stop)
        if self.directory is None:
            return
        try:
            if self._running:
                self._running = False
                self._run("pg_ctl", "stop", "-m", "fast", "-w", "-D", str(self._data))
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> "PostgresCluster":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
