"""The facility's Prefect stack on one machine: a server and workers as subprocesses.

For trying the scale-out on a laptop, for the system test and for
``benchmarks/bench_scale.py``: :class:`LocalPrefect` starts ``prefect server
start`` on 127.0.0.1 with its own ``PREFECT_HOME`` (a SQLite database inside it)
and :meth:`LocalPrefect.start_worker` one ``prefect worker start --limit 1``.
A facility runs the same commands as services (see ``docs/facility.md``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

__all__ = ["LocalPrefect", "WorkerProcess"]

#: Seconds a fresh server may take to migrate its database and answer.
START_TIMEOUT_S = 90.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _prefect() -> str:
    """Return the ``prefect`` command of this interpreter's environment."""
    beside = Path(sys.executable).parent / "prefect"
    return str(beside) if beside.exists() else shutil.which("prefect") or "prefect"


class WorkerProcess:
    """One ``prefect worker start`` subprocess.

    Attributes
    ----------
    name : str
        The worker's name in Prefect.
    process : subprocess.Popen
    log : Path
    """

    def __init__(self, name: str, process: subprocess.Popen[bytes], log: Path):
        self.name = name
        self.process = process
        self.log = log

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return int(self.process.pid)

    def kill(self) -> None:
        """Kill the worker, then each flow-run process it started, as a node dies.

        Prefect starts each flow run in a session of its own, so the worker's
        process group does not hold them; killing only the worker would leave
        its flow run fusing on. The worker goes first: alive, it would report
        its flow run's death itself.
        """
        import psutil

        if self.process.poll() is not None:
            return
        flow_runs = psutil.Process(self.process.pid).children(recursive=True)
        self.process.kill()
        self.process.wait(10)
        for child in flow_runs:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the worker as Ctrl-C does; kill it after ``timeout`` s."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


class LocalPrefect:
    """A Prefect server on 127.0.0.1 with its home (and SQLite database) in ``home``.

    Parameters
    ----------
    home : path
        ``PREFECT_HOME``: the database and the logs go there.
    port : int, optional
        Default a free port.
    scheduler_s : float
        How often the server's scheduler makes runs of scheduled deployments.

    Examples
    --------
    >>> with LocalPrefect(tmp_path) as prefect:  # doctest: +SKIP
    ...     os.environ.update(prefect.env)
    ...     deploy(tiled_uri)
    ...     prefect.start_worker("gpu0", {"XFUSION_DEVICE": "cuda:0"})
    """

    def __init__(
        self,
        home: str | os.PathLike[str],
        port: int | None = None,
        scheduler_s: float = 5.0,
    ):
        self.home = Path(home)
        self.port = int(port or _free_port())
        self.scheduler_s = float(scheduler_s)
        self.process: subprocess.Popen[bytes] | None = None
        self.workers: list[WorkerProcess] = []

    @property
    def api_url(self) -> str:
        """``PREFECT_API_URL`` of this server."""
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def env(self) -> dict[str, str]:
        """The environment a client or worker of this server needs."""
        return {
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            # Workers look for runs every second, not every 10 s (latency).
            "PREFECT_WORKER_QUERY_SECONDS": "1",
        }

    def start(self) -> LocalPrefect:
        """Start the server; return once it answers its health check."""
        self.home.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **self.env,
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": str(self.scheduler_s),
        }
        command = [_prefect(), "server", "start", "--host", "127.0.0.1"]
        with (self.home / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        if self.process is None:
            raise RuntimeError("start() the server first")
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = (self.home / "server.log").read_text()[-2000:]
                raise RuntimeError(f"the Prefect server exited:\n{tail}")
            try:
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"the Prefect server did not answer in {START_TIMEOUT_S} s")

    def start_worker(
        self, name: str, env: dict[str, str] | None = None, pool: str = "xfusion"
    ) -> WorkerProcess:
        """Start ``prefect worker start --pool POOL --limit 1`` named ``name``.

        Parameters
        ----------
        name : str
            The worker's name.
        env : dict, optional
            More environment: ``XFUSION_DEVICE``, ``XFUSION_TORCH_THREADS``,
            the Tiled API key.
        pool : str
            The work pool.
        """
        log = self.home / f"worker-{name}.log"
        command = [_prefect(), "worker", "start", "--pool", pool, "--limit", "1"]
        with log.open("ab") as out:
            process = subprocess.Popen(
                [*command, "--name", name],
                env={**os.environ, **self.env, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in a terminal is for the caller
            )
        worker = WorkerProcess(name, process, log)
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        """Stop the workers, then the server."""
        for worker in self.workers:
            worker.stop()
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)

    def __enter__(self) -> LocalPrefect:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
