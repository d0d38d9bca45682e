"""The system tests' raw-run writer, for test folders beside ``tests/system``.

A conftest's fixtures belong to its own folder, so other folders load
``tests/system/conftest.py`` by path. Imported as ``from system_helpers import
...``: ``tests/`` is on ``sys.path`` (see ``tests/servers.py``).
"""

import importlib.util
from pathlib import Path

__all__ = ["load_by_path", "make_raw_run_writer", "scene_burst"]


def load_by_path(path, name):
    """Import the Python file ``path`` as module ``name`` (a conftest, a test file)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_helpers = load_by_path(
    Path(__file__).resolve().parent / "system" / "conftest.py", "system_test_helpers"
)
#: ``make_raw_run_writer(raw, hdf5_dir) -> write(**options) -> uid``.
make_raw_run_writer = _helpers.make_raw_run_writer
#: ``scene_burst() -> dict`` of lr, hr, lr_times, hr_times (a 24-frame burst).
scene_burst = _helpers.scene_burst
