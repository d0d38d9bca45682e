"""The only reader of environment variables (Tiled URI, API key, data dir).

=========================  ==========================================================
``XFUSION_DATA``           data directory: embedded Tiled catalog + HDF5 files
                           (default: the user data dir, e.g. ``~/.local/share/
                           xfusion-bluesky``)
``XFUSION_TILED_URL``      facility Tiled server (unset: an embedded server)
``XFUSION_TILED_API_KEY``  its API key
``XFUSION_BEAMLINE``       ``sim`` (default) or ``epics``: what the profile builds
``XFUSION_IOC_PREFIX``     PV prefix of the EPICS beamline (default ``XF:XFUSION:``)
``XFUSION_HDF5_DIR``       where the cameras write HDF5 (default ``$XFUSION_DATA/hdf5``;
                           when set, it wins over a data directory given in code)
``XFUSION_SCENE``          scene family of the simulated event (default the
                           scene generator's default)
``XFUSION_FUSION``         automatic fusion in the profile: ``process`` (default,
                           a worker process), ``thread``, ``prefect`` (a flow run
                           of the facility's Prefect deployment) or ``off``
``XFUSION_PREFECT_DEPLOYMENT``  the Prefect fusion deployment ``fusion="prefect"``
                           submits to (default ``xfusion-fuse-run/xfusion``)
``XFUSION_ROI``            ROI and rate preset of the profile's beamline: ``small``
                           (default), ``full`` or ``demo``
                           (``devices.presets.ROI_PRESETS``)
``XFUSION_SIM_MISALIGN``   seed of a misaligned simulation (unset: the aligned
                           one): the HS ROI shrinks to 3/4 of the UHS field and
                           gets a random scale, rotation, shift and flips, each
                           camera a trigger latency (``devices.sim.misalign``)
``XFUSION_ADAPT``          self-supervised adaptation of the network to each
                           burst before the profile's worker fuses it: ``off``
                           (default), ``on`` (the default recipe) or a number
                           of fine-tuning iterations
``XFUSION_VALIDATION``     folder holding the real validation radiographs
                           (``savu_i13_projections/``); not shipped: unset, the
                           evaluation skips them
=========================  ==========================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_IOC_PREFIX", "Settings"]

DEFAULT_IOC_PREFIX = "XF:XFUSION:"
_MODES = ("sim", "epics")
_FUSION_MODES = ("process", "thread", "prefect", "off")


def _default_data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("xfusion-bluesky", appauthor=False))


@dataclass(frozen=True)
class Settings:
    """Deployment settings, read once from the environment.

    Attributes
    ----------
    data_dir : Path
        Root of the embedded catalog (``tiled/``) and the HDF5 files.
    hdf5_dir : Path
        Where the cameras write (must be in the Tiled server's readable storage).
    tiled_url, tiled_api_key : str or None
        Facility Tiled server; None for the embedded one.
    beamline : str
        ``"sim"`` or ``"epics"``.
    ioc_prefix : str
        PV prefix of the EPICS devices.
    scene_family : str or None
        Scene family of the simulation (None: the generator's default).
    fusion : str
        ``"process"``, ``"thread"``, ``"prefect"`` or ``"off"``: how the profile
        fuses runs.
    fusion_api_key : str or None
        API key of the fusion worker (``XFUSION_FUSION_API_KEY``) on a server with
        one key per role (``serve --roles``); None: the beamline's key.
    validation_dir : Path or None
        Folder of the real validation radiographs; None when not available.
    roi : str
        ROI preset name (``XFUSION_ROI``); ``setup`` checks it against its presets.
    sim_misalign : int or None
        Seed of the misaligned simulation (``XFUSION_SIM_MISALIGN``); None: aligned.
    hdf5_dir_set : bool
        ``XFUSION_HDF5_DIR`` was given (see :meth:`hdf5_dir_for`).
    fusion_adapt : dict or None
        ``XFUSION_ADAPT``: None (off), ``{}`` (the default recipe) or
        ``{"iterations": N}``; the worker's ``adapt`` option.
    prefect_deployment : str
        ``XFUSION_PREFECT_DEPLOYMENT``: where ``fusion="prefect"`` submits runs.
    """

    data_dir: Path
    hdf5_dir: Path
    tiled_url: str | None
    tiled_api_key: str | None
    beamline: str
    ioc_prefix: str
    scene_family: str | None
    fusion: str = "process"
    fusion_api_key: str | None = None
    validation_dir: Path | None = None
    roi: str = "small"
    hdf5_dir_set: bool = False
    sim_misalign: int | None = None
    fusion_adapt: dict[str, int] | None = None
    prefect_deployment: str = "xfusion-fuse-run/xfusion"

    def hdf5_dir_for(self, data_dir: str | Path | None) -> Path:
        """Return where the cameras write when code chose ``data_dir``.

        ``XFUSION_HDF5_DIR``, when set, wins: it names a place the Tiled server can
        read, which a data directory chosen in code does not change. Otherwise
        ``data_dir/hdf5``, or :attr:`hdf5_dir` when ``data_dir`` is None.
        """
        if self.hdf5_dir_set or data_dir is None:
            return self.hdf5_dir
        return Path(data_dir).expanduser() / "hdf5"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``environ`` (default ``os.environ``).

        Raises
        ------
        ValueError
            ``XFUSION_BEAMLINE`` is neither ``sim`` nor ``epics``, or
            ``XFUSION_FUSION`` not one of ``process``, ``thread``, ``prefect``,
            ``off``, or
            ``XFUSION_SIM_MISALIGN`` not a non-negative integer, or
            ``XFUSION_ADAPT`` not ``off``, ``on`` or a positive integer (a plain
            ValueError: settings sits beside errors, below every other layer).
        """
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("XFUSION_DATA") or _default_data_dir()).expanduser()
        hdf5_dir = Path(env.get("XFUSION_HDF5_DIR") or data_dir / "hdf5").expanduser()
        beamline = env.get("XFUSION_BEAMLINE", "sim").strip().lower() or "sim"
        if beamline not in _MODES:
            raise ValueError(
                f"XFUSION_BEAMLINE must be one of {_MODES}; got {beamline!r}"
            )
        fusion = env.get("XFUSION_FUSION", "process").strip().lower() or "process"
        if fusion not in _FUSION_MODES:
            raise ValueError(
                f"XFUSION_FUSION must be one of {_FUSION_MODES}; got {fusion!r}"
            )
        misalign = (env.get("XFUSION_SIM_MISALIGN") or "").strip()
        if misalign and not misalign.isdigit():
            raise ValueError(
                "XFUSION_SIM_MISALIGN must be a seed (an integer ≥ 0) or unset; got "
                f"{misalign!r}"
            )
        return cls(
            fusion_adapt=_adapt_setting(env.get("XFUSION_ADAPT") or ""),
            prefect_deployment=env.get("XFUSION_PREFECT_DEPLOYMENT")
            or "xfusion-fuse-run/xfusion",
            data_dir=data_dir,
            hdf5_dir=hdf5_dir,
            tiled_url=env.get("XFUSION_TILED_URL") or None,
            tiled_api_key=env.get("XFUSION_TILED_API_KEY") or None,
            beamline=beamline,
            ioc_prefix=env.get("XFUSION_IOC_PREFIX") or DEFAULT_IOC_PREFIX,
            scene_family=env.get("XFUSION_SCENE") or None,
            fusion=fusion,
            fusion_api_key=env.get("XFUSION_FUSION_API_KEY") or None,
            roi=env.get("XFUSION_ROI", "small").strip().lower() or "small",
            hdf5_dir_set=bool(env.get("XFUSION_HDF5_DIR")),
            sim_misalign=int(misalign) if misalign else None,
            validation_dir=(
                Path(env["XFUSION_VALIDATION"]).expanduser()
                if env.get("XFUSION_VALIDATION")
                else None
            ),
        )


def _adapt_setting(text: str) -> dict[str, int] | None:
    """Read ``XFUSION_ADAPT``: off → None, on → {}, N → {"iterations": N}."""
    value = text.strip().lower()
    if value in ("", "off", "0", "false", "no"):
        return None
    if value in ("on", "true", "yes"):
        return {}
    if value.isdigit():
        return {"iterations": int(value)}
    raise ValueError(
        "XFUSION_ADAPT must be off, on or a number of fine-tuning iterations; got "
        f"{text!r}"
    )
