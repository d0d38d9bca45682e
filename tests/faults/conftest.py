"""The fault-injection suite: each test reproduces one way the beamline broke.

Every test here starts servers, scans or subprocesses, so the whole folder is
``slow``: ``pytest -m "not slow"`` leaves it out, a plain ``pytest`` runs it.
"""

import pytest


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/faults/" in item.nodeid:
            item.add_marker(pytest.mark.slow)
