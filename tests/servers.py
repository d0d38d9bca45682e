"""Standalone Tiled servers for tests: a subprocess on a free port, healthy before use.

Test files import it as ``from servers import ...``: ``tests/`` is on
``sys.path`` because ``tests/conftest.py`` sits there without an ``__init__.py``.
"""

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from xfusion_bluesky.catalog.server import server_config

__all__ = [
    "ServedTiled",
    "free_port",
    "serve_command",
    "tiled_config_command",
    "write_tiled_config",
]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that the system had free a moment ago.

    Returns
    -------
    int
        The port; another process may take it before it is used.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_command(*args: str) -> list[str]:
    """Return ``xfusion-bluesky serve ARGS`` run by this interpreter.

    Parameters
    ----------
    *args : str
        The verb's options, e.g. ``"--data-dir", str(path), "--port", "8123"``.

    Returns
    -------
    list of str
        The command line for :class:`ServedTiled`.
    """
    return [sys.executable, "-m", "xfusion_bluesky", "serve", *args]


def write_tiled_config(root: Path, hdf5_dir: Path, api_key: str, port: int) -> Path:
    """Write the acquisition host's Tiled configuration for data in ``root``.

    Parameters
    ----------
    root : Path
        The data directory; the configuration is written as ``root/config.yml``.
    hdf5_dir : Path
        The cameras' HDF5 directory: the server's readable storage.
    api_key : str
        The single API key the server requires.
    port : int
        The port the server listens on, on 127.0.0.1.

    Returns
    -------
    Path
        The configuration file, for :func:`tiled_config_command`.
    """
    config = server_config(data_dir=root, hdf5_dir=hdf5_dir, api_key=api_key, port=port)
    # The `serve` verb creates the writable storage; `tiled serve config` does not.
    (root / "tiled" / "data").mkdir(parents=True, exist_ok=True)
    path = root / "config.yml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def tiled_config_command(config: Path) -> list[str]:
    """Return ``tiled serve config CONFIG`` with this environment's ``tiled``.

    Parameters
    ----------
    config : Path
        A Tiled configuration file, e.g. from :func:`write_tiled_config`.

    Returns
    -------
    list of str
        The command line for :class:`ServedTiled`.
    """
    tiled = Path(sys.executable).parent / "tiled"
    return [str(tiled), "serve", "config", str(config)]


class ServedTiled:
    """A Tiled server in a subprocess on 127.0.0.1, waited for until healthy.

    Use it as a context manager (start on entry, stop on exit) or call
    :meth:`start` and :meth:`stop`; it can be started again after a stop, on the
    same port, appending to the same log.

    Parameters
    ----------
    command : list of str
        The server's command line, e.g. from :func:`serve_command` or
        :func:`tiled_config_command`; it must listen on ``port``.
    port : int
        The port the command listens on, e.g. from :func:`free_port`.
    log : Path
        The file that gets the server's stdout and stderr.
    env : dict, optional
        The server's environment; this process's environment by default.

    Attributes
    ----------
    process : subprocess.Popen or None
        The latest server process; None before the first :meth:`start`.
    """

    def __init__(
        self,
        command: list[str],
        port: int,
        log: Path,
        env: dict[str, str] | None = None,
    ):
        self.command = command
        self.port = port
        self.log = log
        self.env = env
        self.process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        """The server's API address, ``http://127.0.0.1:PORT/api/v1``."""
        return f"http://127.0.0.1:{self.port}/api/v1"

    def start(self) -> "ServedTiled":
        """Start the server and return once it answers ``/healthz``.

        Returns
        -------
        ServedTiled
            This server.

        Raises
        ------
        pytest.fail.Exception
            The server exited (the log's tail is the message) or was not healthy
            within 60 s (it is stopped).
        """
        # Appending: a restart keeps the first run's log for a failure message.
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                self.command, stdout=out, stderr=subprocess.STDOUT, env=self.env
            )
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        assert self.process is not None
        for _ in range(240):
            if self.process.poll() is not None:
                pytest.fail(self.log.read_text()[-3000:])
            try:
                url = f"http://127.0.0.1:{self.port}/healthz"
                if httpx.get(url).status_code == 200:
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            time.sleep(0.25)
        pytest.fail(f"the Tiled server never became healthy: {self.command}")

    def stop(self) -> None:
        """Terminate the server if it is running, and wait for it to exit."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def __enter__(self) -> "ServedTiled":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
