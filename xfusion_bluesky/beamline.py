"""Wiring: the RunEngine, Tiled (embedded or facility) with its writer, the devices.

``bl = setup("sim")`` returns a :class:`Beamline` whose ``bl.RE``, ``bl.uhs``,
``bl.hs``, ``bl.timing`` and ``bl.tiled`` (the catalog of raw runs: ``bl.tiled[uid]``,
``bl.tiled[-1]``) are ready, and registers the devices as the plans' defaults, so
``bl.RE(dual_camera_scan())`` just works; ``bl.close()`` stops what it started.
``setup(..., fusion="process")`` (or ``bl.start_fusion()``) adds automatic fusion:
a :class:`~xfusion_bluesky.callbacks.FusionWorker` on the beamline's Tiled, fed by
a :class:`~xfusion_bluesky.callbacks.FusionCallback` on ``bl.RE``.
The profile's startup files and the demo call it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from bluesky import RunEngine

from xfusion_bluesky.catalog.connect import TiledConnection, connect
from xfusion_bluesky.catalog.raw import subscribe_raw_writer
from xfusion_bluesky.devices.base import SCALE, Registration
from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.plans.defaults import BeamlineDevices, set_default_devices
from xfusion_bluesky.settings import Settings

__all__ = ["ROI_PRESETS", "Beamline", "RoiPreset", "run_demo_scan", "setup"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoiPreset:
    """ROIs and rates of a beamline preset (both cameras centred on their sensors).

    Attributes
    ----------
    uhs_shape, hs_shape : tuple of int
        ``(height, width)`` of the UHS (LR) and HS (HR) ROIs.
    uhs_frame_rate_hz, hs_frame_rate_hz : float
        Frame rates; their ratio is the HR interval in LR frames.
    uhs_frames : int
        Frames per UHS burst.
    """

    uhs_shape: tuple[int, int]
    hs_shape: tuple[int, int]
    uhs_frame_rate_hz: float
    hs_frame_rate_hz: float
    uhs_frames: int = 128


#: Seconds ``Beamline.close()`` lets the fusion worker finish its current run.
FUSION_CLOSE_TIMEOUT_S = 5.0

#: ``small`` (default): 128 frames fused by the small EDVR-STF in ~1.5–2.5 min on 2
#: CPU cores, HR separation 16; ``full``: both full sensors, HR separation 16 (the
#: HS at 75 kHz of 76 kHz);
#: ``demo`` (``make demo``): a 128×192 HS field inside a 40×56 UHS ROI (so the
#: registration crops), HR separation 10, fused in ~20–40 s on one CPU core.
ROI_PRESETS: dict[str, RoiPreset] = {
    "small": RoiPreset((64, 96), (256, 384), 2e6, 125e3),
    "full": RoiPreset((250, 400), (800, 1280), 1.2e6, 75e3),
    "demo": RoiPreset((40, 56), (128, 192), 2e6, 200e3),
}


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
    """

    RE: RunEngine
    uhs: Any
    hs: Any
    timing: Any
    registration: Registration
    tiled: Any
    connection: TiledConnection
    mode: str
    hdf5_dir: Path
    fusion_worker: Any = None
    _tokens: list[int] = field(default_factory=list, repr=False)

    def start_fusion(self, mode: str = "process", **options: Any) -> Any:
        """Fuse every finished run automatically: start a worker, subscribe a callback.

        Parameters
        ----------
        mode : {"process", "thread"}
            The worker runs in a child process (default) or a thread.
        **options
            More :class:`~xfusion_bluesky.callbacks.FusionWorker` keywords
            (``method``, ``device``, ``since``, ...).

        Returns
        -------
        FusionWorker
            Also ``bl.fusion_worker``; ``bl.close()`` stops it.

        Raises
        ------
        InvalidInputError
            Unknown ``mode``, or a worker already runs.
        """
        from xfusion_bluesky.callbacks import FusionCallback, FusionWorker

        if self.fusion_worker is not None:
            raise InvalidInputError(
                "automatic fusion already runs on this beamline (bl.fusion_worker)"
            )
        worker = FusionWorker(
            self.connection.uri,
            api_key=self.connection.client.context.api_key,
            mode=mode,
            **options,
        ).start()
        self.fusion_worker = worker
        self._tokens.append(int(self.RE.subscribe(FusionCallback(worker))))
        return worker

    def close(self) -> None:
        """Unsubscribe the callbacks, stop the fusion worker and the embedded server."""
        for token in self._tokens:
            self.RE.unsubscribe(token)
        self._tokens.clear()
        try:
            if self.fusion_worker is not None:
                # A run cut short here is re-fused by the next worker's catch-up.
                self.fusion_worker.close(timeout=FUSION_CLOSE_TIMEOUT_S)
                self.fusion_worker = None
        finally:
            set_default_devices(None)
            self.connection.close()


def setup(
    mode: str | None = None,
    *,
    tiled_uri: str | None = None,
    api_key: str | None = None,
    data_dir: str | Path | None = None,
    hdf5_dir: str | Path | None = None,
    prefix: str | None = None,
    roi: str = "small",
    scene_family: str | None = None,
    scene_seed: int = 0,
    settings: Settings | None = None,
    fusion: str | None = None,
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
        Where the cameras write; default ``XFUSION_HDF5_DIR`` or ``data_dir/hdf5``.
    prefix : str, optional
        EPICS PV prefix; default ``XFUSION_IOC_PREFIX``.
    roi : {"small", "full", "demo"}
        ROI and rate preset (:data:`ROI_PRESETS`); ``full`` is both full sensors.
    scene_family : str, optional
        Simulated event's scene family; default ``XFUSION_SCENE`` or the scene
        generator's default.
    scene_seed : int
        Seed of the simulated event (burst k images seed + k).
    settings : Settings, optional
        Overrides the environment (tests).
    fusion : {"process", "thread", "off"}, optional
        Start automatic fusion (:meth:`Beamline.start_fusion`); None or
        ``"off"``: none (the profile reads ``XFUSION_FUSION``).

    Returns
    -------
    Beamline

    Raises
    ------
    InvalidInputError
        Unknown ``mode``, ``roi`` or ``fusion``.
    StorageNotReadableError
        The Tiled server cannot read ``hdf5_dir``.
    """
    env = settings or Settings.from_env()
    mode = env.beamline if mode is None else mode
    if mode not in ("sim", "epics"):
        raise InvalidInputError(f"mode must be 'sim' or 'epics'; got {mode!r}")
    if roi not in ROI_PRESETS:
        raise InvalidInputError(f"roi must be one of {tuple(ROI_PRESETS)}; got {roi!r}")
    if fusion not in (None, "off", "process", "thread"):
        raise InvalidInputError(
            f"fusion must be 'process', 'thread', 'off' or None; got {fusion!r}"
        )
    data_root = Path(data_dir).expanduser() if data_dir is not None else env.data_dir
    if hdf5_dir is not None:
        hdf5_path = Path(hdf5_dir)
    elif data_dir is not None:
        hdf5_path = data_root / "hdf5"
    else:
        hdf5_path = env.hdf5_dir
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
        RE = RunEngine()
        token = subscribe_raw_writer(
            RE, connection.raw, backup_directory=data_root / "backup"
        )
    except Exception:
        connection.close()
        raise
    set_default_devices(BeamlineDevices(uhs, hs, timing, registration))
    logger.info("%s beamline ready; raw runs in %s", mode, connection.uri)
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
        _tokens=[token],
    )
    if fusion in ("process", "thread"):
        try:
            beamline.start_fusion(fusion)
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


def apply_roi_preset(uhs: Any, hs: Any, registration: Any, preset: RoiPreset) -> None:
    """Centre both ROIs on their sensors, set rates, and the nominal registration.

    The HS field is centred in the UHS field; a simulated HS is mounted there.
    """
    for camera, shape, rate in (
        (uhs, preset.uhs_shape, preset.uhs_frame_rate_hz),
        (hs, preset.hs_shape, preset.hs_frame_rate_hz),
    ):
        spec, cam = camera.spec, camera.cam
        _set_all(
            (cam.size_y, shape[0]),
            (cam.size_x, shape[1]),
            (cam.min_y, (spec.sensor_height - shape[0]) // 2),
            (cam.min_x, (spec.sensor_width - shape[1]) // 2),
            (cam.acquire_period, 1.0 / rate),
            (cam.acquire_time, 0.5 / rate),
        )
    hs_frames = round(
        preset.uhs_frames * preset.hs_frame_rate_hz / preset.uhs_frame_rate_hz
    )
    _set_all((uhs.cam.num_images, preset.uhs_frames), (hs.cam.num_images, hs_frames))
    offset = (
        (preset.uhs_shape[0] * SCALE - preset.hs_shape[0]) // 2,
        (preset.uhs_shape[1] * SCALE - preset.hs_shape[1]) // 2,
    )
    registration.offset_y_hr_px.put(offset[0])
    registration.offset_x_hr_px.put(offset[1])
    registration.flip_y.put(False)
    registration.flip_x.put(False)
    registration.measured_by.put("nominal")
    if hasattr(hs, "mount_offset_y_hr_px"):
        hs.mount_offset_y_hr_px.put(offset[0])
        hs.mount_offset_x_hr_px.put(offset[1])


def _set_all(*pairs: tuple[Any, Any]) -> None:
    """Set signals and wait for each (an EPICS setpoint until its readback agrees)."""
    for signal, value in pairs:
        signal.set(value).wait(10)


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
