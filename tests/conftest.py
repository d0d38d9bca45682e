"""Shared fixtures; marks `gpu` and `torchvision` tests to skip where unavailable."""

import contextlib
import os
import socket


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Channel Access on loopback, on a private port. This must run before anything
# imports ophyd: pyepics' libca reads these once, when its context is created
# (setting them in a fixture fails once another test has imported ophyd).
_CA_PORT = str(_free_port())
# A second IOC (the sim-ioc verb's test) needs its own port: two servers on one
# UDP port would split the searches between them.
_CA_SPARE_PORT = str(_free_port())
os.environ.update(
    EPICS_CA_ADDR_LIST=f"127.0.0.1 127.0.0.1:{_CA_SPARE_PORT}",
    EPICS_CA_AUTO_ADDR_LIST="NO",
    EPICS_CA_SERVER_PORT=_CA_PORT,
    EPICS_CAS_INTF_ADDR_LIST="127.0.0.1",
    EPICS_CAS_SERVER_PORT=_CA_PORT,
)
# ophyd's client side: caproto's pure-Python Channel Access client by default. With
# pyepics' libca a full run segfaulted once in four (element_count on a channel in
# ophyd's metadata thread, 2026-11-25); OPHYD_CONTROL_LAYER=pyepics runs it that way.
os.environ.setdefault("OPHYD_CONTROL_LAYER", "caproto")
# Tiled's client retries a failed request for up to 45 s; failure tests (a deleted
# HDF5 file, a refused write) would wait that long for an answer that is known.
os.environ.setdefault("TILED_RETRY_ATTEMPTS", "2")
os.environ.setdefault("TILED_RETRY_TIMEOUT", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

# Test tensors are tiny: one thread is faster than two fighting over 2 cores.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    skip_tv = pytest.mark.skip(
        reason="torchvision.ops does not import beside this torch"
    )
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)
        if "torchvision" in item.keywords and not _torchvision_available():
            item.add_marker(skip_tv)


def _torchvision_available() -> bool:
    # Imported only when a torchvision test is collected: running one test file
    # must not need the fusion package to import.
    from xfusion_bluesky.fusion.model.deform_conv import torchvision_available

    return torchvision_available()


@pytest.fixture(autouse=True)
def _session_server_keeps_its_key():
    """Put back the API key Tiled held before a test started servers of its own.

    Tiled keeps one settings object per process and each new in-process server
    writes its key there: without this, the session's server refuses its own key
    (401) in every later test.
    """
    from tiled.server.settings import get_settings

    settings = get_settings()
    key = settings.single_user_api_key
    yield
    settings.single_user_api_key = key


@pytest.fixture
def server(tiled, monkeypatch):
    """``--tiled URL`` of the session's server; the environment names none."""
    monkeypatch.delenv("XFUSION_TILED_URL", raising=False)
    monkeypatch.delenv("XFUSION_TILED_API_KEY", raising=False)
    return ["--tiled", tiled.uri]


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# -- beamline: embedded Tiled, RunEngine, sim devices (imports stay lazy) ------------


@pytest.fixture(scope="session")
def hdf5_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("hdf5")


@pytest.fixture(scope="session")
def tiled(hdf5_dir):
    """One embedded Tiled server (SQLite, temp dir) for the session; `.raw` for runs."""
    from xfusion_bluesky.catalog.connect import connect

    connection = connect(hdf5_dir=hdf5_dir)
    yield connection
    connection.close()


@pytest.fixture
def RE(tiled):
    """A RunEngine writing raw runs to the session's Tiled through TiledWriter."""
    from bluesky import RunEngine

    from xfusion_bluesky.catalog.raw import subscribe_raw_writer

    engine = RunEngine()
    subscribe_raw_writer(engine, tiled.raw)
    return engine


@contextlib.contextmanager
def sim_beamline(hdf5_dir):
    """Tiny sim beamline: UHS 16×24 (field 64×96 HR), HS 64×96; the plans' defaults."""
    from xfusion_bluesky.devices.base import Registration
    from xfusion_bluesky.devices.presets import RoiPreset, apply_roi_preset
    from xfusion_bluesky.devices.sim import (
        SimEvent,
        SimHSCamera,
        SimTimingGenerator,
        SimUHSCamera,
    )
    from xfusion_bluesky.plans.defaults import BeamlineDevices, set_default_devices

    timing = SimTimingGenerator(name="timing", event=SimEvent("fast_front", seed=7))
    uhs = SimUHSCamera(
        name="uhs", timing=timing, timing_channel=timing.a, write_dir=hdf5_dir
    )
    hs = SimHSCamera(
        name="hs", timing=timing, timing_channel=timing.c, write_dir=hdf5_dir, uhs=uhs
    )
    registration = Registration(name="registration")
    apply_roi_preset(uhs, hs, registration, RoiPreset((16, 24), (64, 96), 2e6, 125e3))
    devices = BeamlineDevices(uhs, hs, timing, registration)
    set_default_devices(devices)
    try:
        yield devices
    finally:
        set_default_devices(None)
        for camera in (uhs, hs):
            camera.unstage()


@pytest.fixture
def sim_devices(hdf5_dir):
    """Tiny sim beamline (:func:`sim_beamline`) for one test."""
    with sim_beamline(hdf5_dir) as devices:
        yield devices


@pytest.fixture
def sim_bl(RE, tiled, sim_devices, hdf5_dir):
    """A ``Beamline`` of the tiny sim devices on the session's Tiled, no fusion yet."""
    from xfusion_bluesky.beamline import Beamline

    bl = Beamline(
        RE=RE,
        uhs=sim_devices.uhs,
        hs=sim_devices.hs,
        timing=sim_devices.timing,
        registration=sim_devices.registration,
        tiled=tiled.raw,
        connection=tiled,
        mode="sim",
        hdf5_dir=hdf5_dir,
    )
    yield bl
    bl.stop_fusion()


@pytest.fixture(scope="session")
def fused_sim_run(tiled, hdf5_dir):
    """One sim scan fused with bicubic, shared by read-only tests: 128 frames 64×96.

    Scanning and fusing take ~2.5 s; tests that only read the result share one.
    """
    from bluesky import RunEngine

    from xfusion_bluesky.catalog.raw import subscribe_raw_writer
    from xfusion_bluesky.pipeline import fuse_run
    from xfusion_bluesky.plans.dual_camera import dual_camera_scan

    engine = RunEngine()
    subscribe_raw_writer(engine, tiled.raw)
    with sim_beamline(hdf5_dir):
        (uid,) = engine(dual_camera_scan())
    return fuse_run(tiled.client, uid, method="bicubic")


@pytest.fixture(scope="session")
def sim_ioc():
    """Run the caproto sim IOC on 127.0.0.1; yield its PV prefix."""
    import subprocess
    import sys

    prefix = "XF:TEST:"
    process = subprocess.Popen(
        [sys.executable, "-m", "xfusion_bluesky.ioc", "--prefix", prefix,
         "--port", _CA_PORT, "--scene", "fast_front", "--seed", "3"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        from ophyd import EpicsSignalRO

        probe = EpicsSignalRO(f"{prefix}DG1:PulseCount_RBV", name="probe")
        probe.wait_for_connection(timeout=30)
        probe.destroy()
        yield prefix
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="session")
def ca_spare_port():
    """A second CA server port the clients of this session also search."""
    return _CA_SPARE_PORT


@pytest.fixture
def prefect_settings(monkeypatch):
    """Point this process's Prefect at a server: ``prefect_settings(env_dict)``.

    Prefect reads its settings once, at import; the global context is refreshed
    after the environment changes, and again once it is restored.
    """
    from prefect.context import refresh_global_settings_context

    def apply(env):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        refresh_global_settings_context()

    yield apply
    monkeypatch.undo()
    refresh_global_settings_context()
