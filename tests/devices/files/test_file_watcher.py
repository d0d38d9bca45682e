"""wait_for_new_file(): only a new file, only once it stops growing, else a timeout."""

import threading
import time

import pytest

from xfusion_bluesky.devices.files.watcher import (
    WatchCancelledError,
    snapshot,
    wait_for_new_file,
)
from xfusion_bluesky.errors import RecordingError


def test_a_new_file_is_returned_once_it_stops_growing(tmp_path):
    (tmp_path / "old.bin").write_bytes(b"x")
    before = snapshot(tmp_path, "*.bin")
    path = tmp_path / "new.bin"

    def vendor():
        with open(path, "wb") as f:
            for _ in range(3):
                f.write(b"y" * 100)
                f.flush()
                time.sleep(0.05)

    writer = threading.Thread(target=vendor)
    writer.start()
    found = wait_for_new_file(before, timeout_s=2.0, settle_s=0.1, poll_s=0.01)
    writer.join()
    assert found == path
    assert found.stat().st_size == 300


def test_no_new_file_times_out_naming_the_directory_and_pattern(tmp_path):
    (tmp_path / "old.bin").write_bytes(b"x")  # there before arming: not taken
    before = snapshot(tmp_path, "*.bin")
    with pytest.raises(
        RecordingError, match=rf"no new file matching {tmp_path}/\*\.bin"
    ):
        wait_for_new_file(before, timeout_s=0.1, poll_s=0.02)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(WatchCancelledError):
        wait_for_new_file(before, timeout_s=5.0, cancel=cancel)
    with pytest.raises(RecordingError, match="does not exist"):
        snapshot(tmp_path / "nowhere", "*.bin")
