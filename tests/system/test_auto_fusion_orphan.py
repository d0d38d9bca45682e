"""A worker process whose RunEngine process dies does not outlive it."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

SCRIPT = """
import os, signal, sys, time
from xfusion_bluesky.callbacks import FusionWorker
from xfusion_bluesky.catalog.connect import connect

if __name__ == "__main__":  # spawn re-imports the main module in the child
    connection = connect(hdf5_dir=sys.argv[1])
    worker = FusionWorker(connection.uri, poll_s=0.2).start()
    assert worker.wait_idle(120)
    print(worker.pid, flush=True)
    time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGKILL)  # the acquisition process crashes
"""


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # an unreaped zombie is gone too
        return stat.read().split()[2] != "Z"


@pytest.mark.slow
def test_worker_exits_when_its_parent_is_killed(tmp_path):
    script = tmp_path / "acquire.py"
    script.write_text(textwrap.dedent(SCRIPT))
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "hdf5")],
        capture_output=True,
        text=True,
        timeout=240,
    )
    child = int(result.stdout.split()[0])
    deadline = time.monotonic() + 20
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.2)
    survived = _alive(child)
    if survived:
        os.kill(child, signal.SIGKILL)  # leave no orphan behind
    assert not survived
