"""Wiring: the RunEngine, Tiled (embedded or facility) with its writer, the devices.

``bl = setup("sim")`` returns a :class:`Beamline` whose ``bl.RE``, ``bl.uhs``,
``bl.hs``, ``bl.timing`` and ``bl.tiled`` (the catalog of raw runs: ``bl.tiled[uid]``,
``bl.tiled[-1]``) are ready, and registers the devices as the plans' defaults, so
``bl.RE(dual_camera_scan())`` just works; ``bl.close()`` stops what it started.
``setup(..., fusion="process")`` (or ``bl.start_fusion()``) adds automatic fusion:
a :class:`~xfusion_bluesky.callbacks.FusionWorker` on the beamline's Tiled, fed by
a :class:`~xfusion_bluesky.callbacks.FusionCallback` on ``bl.RE``;
``bl.stop_fusion()`` takes both away again. A beamline still open when the
interpreter exits is closed then. The profile's startup files and the demo call it.
"""

from __future__ import annotations

import atexit
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from bluesky import RunEngine

from xfusion_bluesky.catalog.connect import TiledConnection, connect, redact
from xfusion_bluesky.catalog.raw import subscribe_raw_writer
from xfusion_bluesky.devices.base import Registration
from xfusion_bluesky.devices.presets import ROI_PRESETS, apply_roi_preset
from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.plans.defaults import BeamlineDevices, set_default_devices
from xfusion_bluesky.settings import Settings

__all__ = ["Beamline", "run_demo_scan", "setup"]

logger = logging.getLogger(__name__)


#: Seconds ``Beamline.close()`` lets the fusion worker finish its current run.
FUSION_CLOSE_TIMEOUT_S = 5.0
#: The same when the interpreter exits: a session must end within seconds. An idle
#: worker stops well within it; a fusion (tens of seconds at least) would not end
#: anyway, so it is cut short and fused again by the next worker's catch-up.
EXIT_CLOSE_TIMEOUT_S = 1.0


@dataclass
class Beamline:
    """What :func:`setup` built; ``close()`` stops what it started.

    Attributes
    ----------
    RE : RunEngine
        Writes every run to ``tiled`` through TiledWriter.
    uhs, hs, timing : Device
        The cameras and the timing generator (sim or EPICS flavour).
    registration : Registration
        Where the HS field lies in the UHS field (``registration_scan`` updates it).
    tiled : CatalogOfBlueskyRuns
        Raw runs: ``bl.tiled[uid]``, ``bl.tiled[-1]``.
    connection : TiledConnection
        Client, URI and embedded server.
    mode : str
        ``"sim"`` or ``"epics"``.
    hdf5_dir : Path
        Where the cameras write their HDF5 files.
    fusion_worker : FusionWorker or None
        The automatic-fusion worker, once :meth:`start_fusion` ran.
    backup_dir : Path or None
        Where the raw writer backs documents up while Tiled is down; the
        fusion worker replays them.
    fusion_api_key : str or None
        The worker's own key on a server with one key per role
        (``XFUSION_FUSION_API_KEY``); None: the beamline's key.
    """

    RE: RunEngine
    uhs: Any
    hs: Any
    timing: Any
    registration: Registration
    tiled: Any = field(repr=False)  # its repr asks the server
    connection: TiledConnection = field(repr=False)
    mode: str
    hdf5_dir: Path
    fusion_worker: Any = None
    backup_dir: Path | None = None
    fusion_api_key: str | None = field(default=None, repr=False)
    _tokens: list[int] = field(default_factory=list, repr=False)
    _fusion_token: int | None = field(default=None, repr=False)

    def start_fusion(self, mode: str = "process", **options: Any) -> Any:
        """Fuse every finished run automatically: start a worker, subscribe a callback.

        A worker that can no longer take runs (stopped, gave up, failed) is
        replaced, its callback with it; the new worker catches up on the runs
        that finished meanwhile.

        Parameters
        ----------
        mode : {"process", "thread", "prefect"}
            The worker runs in a child process (default) or a thread; or each
            run becomes a flow run of the facility's Prefect fusion deployment
            (:class:`~xfusion_bluesky.orchestration.submit.PrefectSubmitter`).
        **options
            More :class:`~xfusion_bluesky.callbacks.FusionWorker` keywords
            (``method``, ``device``, ``since``, ...); in ``prefect`` mode
            ``PrefectSubmitter`` keywords (``deployment``, ``method``, ``model``).

        Returns
        -------
        FusionWorker or PrefectSubmitter
            Also ``bl.fusion_worker``; ``bl.stop_fusion()`` or ``bl.close()``
            stops it.

        Raises
        ------
        InvalidInputError
            Unknown ``mode``, or a working worker already runs.
        """
        from xfusion_bluesky.callbacks import FusionCallback

        if self.fusion_worker is not None:
            if self.fusion_worker.accepting:
                raise InvalidInputError(
                    "automatic fusion already runs on this beamline "
                    f"(bl.fusion_worker is {self.fusion_worker.state}); "
                    "bl.stop_fusion() first"
                )
            self.stop_fusion()
        api_key = self.fusion_api_key or self.connection.client.context.api_key
        if mode == "prefect":
            worker = self._prefect_submitter(api_key, **options)
        else:
            from xfusion_bluesky.callbacks import FusionWorker

            if self.backup_dir is not None:
                options.setdefault("backup_dir", self.backup_dir)
            worker = FusionWorker(
                self.connection.uri, api_key=api_key, mode=mode, **options
            ).start()
        self.fusion_worker = worker
        self._fusion_token = int(self.RE.subscribe(FusionCallback(worker)))
        return worker

    def _prefect_submitter(self, api_key: str | None, **options: Any) -> Any:
        """Start the submitter of ``mode="prefect"`` (Prefect is an optional extra)."""
        from xfusion_bluesky.orchestration.submit import PrefectSubmitter

        options.setdefault("deployment", Settings.from_env().prefect_deployment)
        return PrefectSubmitter(self.connection.uri, api_key=api_key, **options).start()

    def stop_fusion(self, timeout: float = FUSION_CLOSE_TIMEOUT_S) -> None:
        """Stop automatic fusion: unsubscribe its callback, close its worker.

        Runs recorded afterwards, and a run the worker had queued or was fusing,
        are not lost: the next :meth:`start_fusion` catches up on them (or
        ``xfusion-bluesky fuse UID``). Does nothing when no fusion runs.

        Parameters
        ----------
        timeout : float
            Seconds the worker may finish its current run before it is ended.
        """
        if self._fusion_token is not None:
            self.RE.unsubscribe(self._fusion_token)
            self._fusion_token = None
        worker, self.fusion_worker = self.fusion_worker, None
        if worker is not None:
            worker.close(timeout=timeout)

    def close(self, timeout: float = FUSION_CLOSE_TIMEOUT_S) -> None:
        """Unsubscribe the callbacks, stop the fusion worker and the embedded server.

        Parameters
        ----------
        timeout : float
            Seconds the fusion worker may finish its current run; one cut short
            is fused again by the next worker's catch-up.
        """
        try:
            self.stop_fusion(timeout)
        finally:
            for token in self._tokens:
                self.RE.unsubscribe(token)
            self._tokens.clear()
            set_default_devices(None)
            self.connection.close()
            _OPEN.pop(id(self), None)


#: Beamlines not closed yet, by id; closed (newest first) when the interpreter exits.
_OPEN: dict[int, Beamline] = {}


def _close_at_exit(beamline: Beamline) -> None:
    """Close ``beamline`` when the interpreter exits, before it joins its threads.

    The embedded Tiled server serves from a non-daemon thread, and Python joins
    those threads *before* it runs ``atexit`` functions: a ``bl.close`` left to
    ``atexit`` never ran and every session hung at exit. ``threading``'s own exit
    hooks (the ones ``concurrent.futures`` uses) run before that join, on every
    way out: ``exit``, end of input, ``sys.exit``, the end of ``ipython -c`` or
    of a script. An IPython shutdown hook would cover the interactive loop
    only, and a daemon server thread would be killed mid-request, leaving the
    worker's derived run and the catalog half-written; an orderly close stops
    the worker first (its queued runs stay pending for the next catch-up), then
    the server. A Ctrl-C during the close ends it and Python exits anyway.
    """
    global _exit_hook_registered
    _OPEN[id(beamline)] = beamline
    if _exit_hook_registered:
        return
    register = getattr(threading, "_register_atexit", None)
    if register is None:  # a Python without it: better late than never
        atexit.register(_close_open_beamlines)
    else:
        register(_close_open_beamlines)
    _exit_hook_registered = True


_exit_hook_registered = False


def _close_open_beamlines() -> None:
    for beamline in reversed(list(_OPEN.values())):
        try:
            beamline.close(timeout=EXIT_CLOSE_TIMEOUT_S)
        except Exception:  # the others must still close
            logger.exception("could not close the beamline at exit")


def setup(
    mode: str | None = None,
    *,
    tiled_uri: str | None = None,
    api_key: str | None = None,
    data_dir: str | Path | None = None,
    hdf5_dir: str | Path | None = None,
    prefix: str | None = None,
    roi: str | None = None,
    scene_family: str | None = None,
    scene_seed: int = 0,
    settings: Settings | None = None,
    fusion: str | None = None,
    misalign: int | None = None,
) -> Beamline:
    """Build the RunEngine, Tiled and the devices; return them as a :class:`Beamline`.

    Parameters
    ----------
    mode : {"sim", "epics"}, optional
        Simulated devices (no IOC), or EPICS devices over Channel Access;
        default ``XFUSION_BEAMLINE`` (else ``"sim"``).
    tiled_uri, api_key : str, optional
        Facility Tiled server; default ``XFUSION_TILED_URL`` /
        ``XFUSION_TILED_API_KEY``, else an embedded server.
    data_dir : str or Path, optional
        Embedded catalog and HDF5 root; default ``XFUSION_DATA``.
    hdf5_dir : str or Path, optional
        Where the cameras write; default ``XFUSION_HDF5_DIR`` (when set, even
        beside ``data_dir``), else ``data_dir/hdf5``.
    prefix : str, optional
        EPICS PV prefix; default ``XFUSION_IOC_PREFIX``.
    roi : {"small", "full", "demo"}, optional
        ROI and rate preset (:data:`ROI_PRESETS`); ``full`` is both full sensors;
        default ``XFUSION_ROI`` (else ``"small"``).
    scene_family : str, optional
        Simulated event's scene family; default ``XFUSION_SCENE`` or the scene
        generator's default.
    scene_seed : int
        Seed of the simulated event (burst k images seed + k).
    settings : Settings, optional
        Overrides the environment (tests).
    fusion : {"process", "thread", "prefect", "off"}, optional
        Start automatic fusion (:meth:`Beamline.start_fusion`); None or
        ``"off"``: none (the profile reads ``XFUSION_FUSION``).
    misalign : int, optional
        Simulation only: the seed of a misaligned camera pair, as a real one is
        (:func:`~xfusion_bluesky.devices.sim.misalign`: the HS ROI shrinks to
        3/4 of the UHS field, the HS gets a random scale ratio, rotation,
        sub-pixel shift and flips, each camera a trigger latency). The
        registration stays nominal until ``registration_scan()`` and
        ``latency_scan()`` measure it. Default ``XFUSION_SIM_MISALIGN``, else
        aligned.

    Returns
    -------
    Beamline

    Raises
    ------
    InvalidInputError
        Unknown ``mode``, ``roi`` or ``fusion``, or ``misalign`` with EPICS
        devices.
    StorageNotReadableError
        The Tiled server cannot read ``hdf5_dir``.
    """
    env = settings or Settings.from_env()
    mode = env.beamline if mode is None else mode
    if mode not in ("sim", "epics"):
        raise InvalidInputError(f"mode must be 'sim' or 'epics'; got {mode!r}")
    if roi is None and env.roi not in ROI_PRESETS:
        raise InvalidInputError(
            f"XFUSION_ROI must be one of {tuple(ROI_PRESETS)}; got {env.roi!r}"
        )
    roi = env.roi if roi is None else roi
    if roi not in ROI_PRESETS:
        raise InvalidInputError(f"roi must be one of {tuple(ROI_PRESETS)}; got {roi!r}")
    if fusion not in (None, "off", "process", "thread", "prefect"):
        raise InvalidInputError(
            "fusion must be 'process', 'thread', 'prefect', 'off' or None; "
            f"got {fusion!r}"
        )
    misalign = env.sim_misalign if misalign is None else misalign
    if misalign is not None and mode != "sim":
        raise InvalidInputError(
            f"misalign={misalign!r} misaligns the simulated cameras; a real pair is "
            "as it is: unset XFUSION_SIM_MISALIGN or use mode='sim'"
        )
    data_root = Path(data_dir).expanduser() if data_dir is not None else env.data_dir
    hdf5_path = Path(hdf5_dir) if hdf5_dir is not None else env.hdf5_dir_for(data_dir)
    hdf5_path = hdf5_path.expanduser().resolve()
    connection = connect(
        tiled_uri or env.tiled_url,
        api_key=api_key or env.tiled_api_key,
        data_dir=data_root,
        hdf5_dir=hdf5_path,
    )
    try:
        if mode == "sim":
            family = scene_family or env.scene_family
            uhs, hs, timing = _sim_devices(hdf5_path, family, scene_seed)
        else:
            uhs, hs, timing = _epics_devices(prefix or env.ioc_prefix, hdf5_path)
        registration = Registration(name="registration")
        apply_roi_preset(uhs, hs, registration, ROI_PRESETS[roi])
        if misalign is not None:
            from xfusion_bluesky.devices.sim import misalign as misalign_sim

            truth = misalign_sim(uhs, hs, seed=int(misalign), fit_hs_roi=True)
            logger.info("misaligned simulation (seed %d): %s", misalign, truth)
            # The nominal guess for the smaller HS ROI: centred, as the preset's.
            field, shape = uhs.field_shape_hr(), hs.settings().frame_shape
            registration.reset(((field[0] - shape[0]) // 2, (field[1] - shape[1]) // 2))
        RE = RunEngine()
        backup_dir = data_root / "backup"
        token = subscribe_raw_writer(RE, connection.raw, backup_directory=backup_dir)
    except Exception:
        connection.close()
        raise
    set_default_devices(BeamlineDevices(uhs, hs, timing, registration))
    logger.info("%s beamline ready; raw runs in %s", mode, redact(connection.uri))
    beamline = Beamline(
        RE=RE,
        uhs=uhs,
        hs=hs,
        timing=timing,
        registration=registration,
        tiled=connection.raw,
        connection=connection,
        mode=mode,
        hdf5_dir=hdf5_path,
        backup_dir=backup_dir,
        # An embedded server has one key; only a standalone one has roles.
        fusion_api_key=env.fusion_api_key if connection.server is None else None,
        _tokens=[token],
    )
    _close_at_exit(beamline)
    if fusion in ("process", "thread", "prefect"):
        try:
            options: dict[str, Any] = (
                {"deployment": env.prefect_deployment}
                if fusion == "prefect"
                else {}
                if env.fusion_adapt is None
                else {"adapt": env.fusion_adapt}
            )
            beamline.start_fusion(fusion, **options)
        except Exception:
            beamline.close()
            raise
    return beamline


def _sim_devices(hdf5_dir: Path, family: str | None, seed: int) -> tuple[Any, Any, Any]:
    from xfusion_bluesky.devices.sim import (
        SimEvent,
        SimHSCamera,
        SimTimingGenerator,
        SimUHSCamera,
    )

    event = SimEvent(seed=seed) if family is None else SimEvent(family, seed=seed)
    timing = SimTimingGenerator(name="timing", event=event)
    uhs = SimUHSCamera(
        name="uhs", timing=timing, timing_channel=timing.a, write_dir=hdf5_dir
    )
    hs = SimHSCamera(
        name="hs", timing=timing, timing_channel=timing.c, write_dir=hdf5_dir, uhs=uhs
    )
    return uhs, hs, timing


def _epics_devices(prefix: str, hdf5_dir: Path) -> tuple[Any, Any, Any]:
    from xfusion_bluesky.devices.epics import HSCamera, TimingGenerator, UHSCamera

    timing = TimingGenerator(f"{prefix}DG1:", name="timing")
    uhs = UHSCamera(
        f"{prefix}UHS:", name="uhs", timing_channel=timing.a, write_dir=hdf5_dir
    )
    hs = HSCamera(
        f"{prefix}HS:", name="hs", timing_channel=timing.c, write_dir=hdf5_dir
    )
    for device in (timing, uhs, hs):
        device.wait_for_connection(timeout=10)
    return uhs, hs, timing


@dataclass(frozen=True)
class DemoScan:
    """Result of :func:`run_demo_scan`: where the run and its data are."""

    uid: str
    tiled_uri: str
    hdf5_files: list[str]
    scan_id: int

    def describe(self) -> str:
        """Return the lines the demo prints."""
        files = "\n".join(f"  {path}" for path in self.hdf5_files)
        return (
            f"raw run {self.uid} (scan_id {self.scan_id})\n"
            f"in Tiled at {self.tiled_uri} (container 'raw')\n"
            f"HDF5 files:\n{files}"
        )


def run_demo_scan(bl: Beamline, **scan_kwargs: Any) -> DemoScan:
    """Run one default ``dual_camera_scan`` on ``bl``; return where its data are."""
    from xfusion_bluesky.plans.dual_camera import dual_camera_scan

    (uid,) = cast(tuple[str, ...], bl.RE(dual_camera_scan(**scan_kwargs)))
    run = bl.tiled[uid]
    files = []
    for key in ("uhs_image", "hs_image"):
        for source in run["primary"][key].data_sources():
            files += [
                asset.data_uri.removeprefix("file://localhost")
                for asset in source.assets
            ]
    return DemoScan(
        uid=uid,
        tiled_uri=bl.connection.uri,
        hdf5_files=files,
        scan_id=int(run.start["scan_id"]),
    )
