"""`python -m xfusion_bluesky.ioc`, binds 127.0.0.1 by default.

Serves the simulated beamline over Channel Access: ``<P>UHS:`` and ``<P>HS:``
(areaDetector cam + HDF5 plugin), ``<P>DG1:`` (DG645 timing) and ``<P>SIM:`` (the
simulated event). When the DG645 fires, each armed camera images its burst of the
same event and its HDF5 plugin appends it to the open file.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from caproto.server import PVGroup, SubGroup, run

from xfusion_bluesky.devices.base import SCALE
from xfusion_bluesky.devices.sim.event import HSMount, SimEvent
from xfusion_bluesky.ioc.cameras import HSCameraGroup, UHSCameraGroup
from xfusion_bluesky.ioc.options import add_ioc_arguments
from xfusion_bluesky.ioc.timing import DG645Group, SimEventGroup
from xfusion_bluesky.synthetic import scene as scene_module

__all__ = ["SimBeamlineIOC", "build_parser", "main", "ready_line"]

logger = logging.getLogger(__name__)


class SimBeamlineIOC(PVGroup):
    """The whole simulated beamline: two cameras, the DG645, the event."""

    uhs = SubGroup(UHSCameraGroup, prefix="UHS:")
    hs = SubGroup(HSCameraGroup, prefix="HS:")
    dg = SubGroup(DG645Group, prefix="DG1:")
    sim = SubGroup(SimEventGroup, prefix="SIM:")

    def fire(self, *, pulse_id: int, uhs_delay_s: float, hs_delay_s: float) -> None:
        """Deliver one trigger to both cameras (channel A → UHS, C → HS)."""
        now = time.time()
        self.uhs.on_pulse(delay_s=uhs_delay_s, trigger_time=now, pulse_id=pulse_id)
        self.hs.on_pulse(delay_s=hs_delay_s, trigger_time=now, pulse_id=pulse_id)

    def event_for(self, pulse_id: int | None) -> tuple[SimEvent, int]:
        """Return the simulated event and the burst seed of pulse ``pulse_id``."""
        event = SimEvent(
            family=self.sim.scene_family.value or scene_module.DEFAULT_FAMILY,
            seed=int(self.sim.scene_seed.value),
            frame_period_s=float(self.sim.frame_period.value),
        )
        return event, int(event.seed) + (pulse_id or 0)

    def field_shape_hr(self) -> tuple[int, int]:
        """Return the simulated field: 4 × the UHS ROI, in HR pixels."""
        cam = self.uhs.cam
        return (int(cam.size_y.value) * SCALE, int(cam.size_x.value) * SCALE)

    def hs_mount(self) -> HSMount:
        """Return where the HS looks in the UHS field."""
        return HSMount(
            offset_y_hr_px=int(self.sim.mount_offset_y.value),
            offset_x_hr_px=int(self.sim.mount_offset_x.value),
            flip_y=bool(self.sim.mount_flip_y.value),
            flip_x=bool(self.sim.mount_flip_x.value),
        )


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``python -m xfusion_bluesky.ioc``."""
    parser = argparse.ArgumentParser(
        prog="python -m xfusion_bluesky.ioc",
        description="Serve the simulated beamline over Channel Access.",
    )
    return add_ioc_arguments(parser)


def ready_line(prefix: str, pv_count: int, interfaces: Sequence[str]) -> str:
    """Return the line the IOC prints once it serves: prefix, PVs, where, how to stop.

    Parameters
    ----------
    prefix : str
        The PV prefix.
    pv_count : int
        PVs served.
    interfaces : sequence of str
        Addresses it listens on.
    """
    port = os.environ.get("EPICS_CAS_SERVER_PORT") or os.environ.get(
        "EPICS_CA_SERVER_PORT", "5064"
    )
    return (
        f"sim IOC {prefix} serves {pv_count} PVs ({prefix}UHS:, {prefix}HS:, "
        f"{prefix}DG1:, {prefix}SIM:) on {' '.join(interfaces)}, Channel Access "
        f"port {port}; Ctrl-C stops it"
    )


def main(
    argv: Sequence[str] | None = None,
    args: Any = None,
    on_ready: Callable[[str], Any] | None = None,
) -> int:
    """Run the IOC until interrupted; return the exit code.

    Parameters
    ----------
    argv : sequence of str, optional
        Command line (default ``sys.argv[1:]``).
    args : argparse.Namespace, optional
        Already parsed options (the ``xfusion-bluesky sim-ioc`` verb).
    on_ready : callable, optional
        Called with :func:`ready_line` once the IOC serves (the verb prints it);
        default: logged at INFO.
    """
    if args is None:
        args = build_parser().parse_args(argv)
    if args.port is not None:  # caproto's server reads EPICS_CA_SERVER_PORT
        os.environ["EPICS_CA_SERVER_PORT"] = str(args.port)
        os.environ["EPICS_CAS_SERVER_PORT"] = str(args.port)
    # caproto formats prefixes with str.format at every group level.
    prefix = args.prefix.replace("{", "{{{{").replace("}", "}}}}")
    ioc = SimBeamlineIOC(prefix=prefix)

    async def startup(async_lib: Any) -> None:
        await ioc.sim.scene_family.write(args.scene)
        await ioc.sim.scene_seed.write(int(args.seed))
        await ioc.uhs.startup()
        await ioc.hs.startup()
        # The hook runs once the server listens: now clients can connect.
        (on_ready or logger.info)(
            ready_line(args.prefix, len(ioc.pvdb), args.interfaces)
        )

    logger.info("sim IOC %s on %s", args.prefix, " ".join(args.interfaces))
    run(
        ioc.pvdb,
        interfaces=list(args.interfaces),
        log_pv_names=args.list_pvs,
        startup_hook=startup,
    )
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    raise SystemExit(main())
