"""Raw runs for the worker's tests, written in a fraction of a second each.

A fusion-requested run of a start and a stop document is a real raw run that the
pipeline cannot fuse (it has no camera blocks): its derived run is a ``failed``
record, which is all the loop and the worker need to show what they did with it.
Tests that need a success run a real ``dual_camera_scan``.
"""

import time

import pytest

REQUESTED = {"requested": True, "method": "bicubic"}


@pytest.fixture
def since():
    """Now (epoch s): a worker catching up from here sees only this test's runs."""
    return time.time()


@pytest.fixture
def catalogs(tiled):
    """The session's Tiled opened by URI, as the worker's own loop opens it."""
    from xfusion_bluesky.catalog.connect import open_catalogs

    opened = open_catalogs(tiled.uri)
    yield opened
    opened.root.context.close()


@pytest.fixture
def write_run(tiled):
    """Return ``write(requested=True, finished=True) -> uid``: a raw run in Tiled.

    Just a start and, when finished, a stop document, through TiledWriter: the
    worker finds it like any other run, and the pipeline records it as failed
    (it has no camera blocks).
    """
    from bluesky_tiled_plugins import TiledWriter
    from event_model import compose_run

    def write(*, requested: bool = True, finished: bool = True) -> str:
        bundle = compose_run(metadata={"fusion": REQUESTED} if requested else {})
        writer = TiledWriter(tiled.raw)
        writer("start", bundle.start_doc)
        if finished:
            writer("stop", bundle.compose_stop())
        return str(bundle.start_doc["uid"])

    return write
