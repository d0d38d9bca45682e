"""ingest_recordings(): a pair of recordings made before becomes one raw run in Tiled.

Checks first (:mod:`~xfusion_bluesky.ingest.recordings`, the registration file),
then the HDF5 file Tiled reads for each recording and a look that the server
reads it (:mod:`~xfusion_bluesky.ingest.storage`), then the documents
(:mod:`~xfusion_bluesky.ingest.documents`) through the same writer the RunEngine
uses for raw runs (:class:`~xfusion_bluesky.catalog.raw.RawWriter`). A mistake is
refused before the run's first document. The run asks for fusion like any
other, so a running worker fuses it at its next look at the catalog.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.ingest.documents import compose_documents
from xfusion_bluesky.ingest.recordings import RecordingPair, check_pair
from xfusion_bluesky.ingest.registration_file import (
    HOW_TO_GET_ONE,
    check_fits,
    read_registration,
    sha256_of,
)
from xfusion_bluesky.ingest.storage import prepare_files, remove_created

__all__ = ["check_ingest", "ingest_recordings"]

logger = logging.getLogger(__name__)


def ingest_recordings(
    target: Any,
    uhs_path: str | Path,
    hs_path: str | Path,
    *,
    registration: str | Path | None,
    uhs_rate_hz: float | None = None,
    hs_rate_hz: float | None = None,
    hs_delay_s: float = 0.0,
    uhs_dataset: str | None = None,
    hs_dataset: str | None = None,
    md: Mapping[str, Any] | None = None,
) -> str:
    """Write one raw run referencing a UHS + HS recording pair; return its uid.

    Parameters
    ----------
    target : str, Tiled node, TiledConnection or Beamline
        Where the runs are (see :func:`~xfusion_bluesky.catalog.connect.open_catalogs`);
        the run goes to its ``raw`` container.
    uhs_path, hs_path : str or Path
        The recordings: multi-page TIFF, HDF5 or Phantom ``.cine``, in a folder
        the Tiled server reads. TIFF and ``.cine`` are converted once into
        HDF5 beside the original (``<name>.h5``); HDF5 is referenced as it is.
    registration : str or Path
        The registration file (``docs/format.md``; ``xfusion-bluesky register``
        makes one). Required: without it the HS field's place is unknown.
    uhs_rate_hz, hs_rate_hz : float, optional
        Frame rates for files whose header has none (must match where it has).
    hs_delay_s : float
        Where the HS file's time 0 lies on the UHS file's time axis, seconds.
    uhs_dataset, hs_dataset : str, optional
        The frames' dataset in an HDF5 recording (default: found by the reader).
    md : mapping, optional
        Extra start-document metadata (sample, operator, ...).

    Returns
    -------
    str
        The raw run's uid.

    Raises
    ------
    RecordingError, InvalidInputError
        Refused, with the reason, before anything is written: see
        :func:`~xfusion_bluesky.ingest.recordings.check_pair`,
        :func:`~xfusion_bluesky.ingest.registration_file.check_fits`, and a file
        the server cannot read.
    RuntimeError
        Tiled refused a document of the run (nothing stored, or a run without a
        stop document that a worker marks orphaned later); the files stay.
    """
    from xfusion_bluesky.catalog.connect import open_catalogs

    block, pair = check_ingest(
        uhs_path,
        hs_path,
        registration=registration,
        uhs_rate_hz=uhs_rate_hz,
        hs_rate_hz=hs_rate_hz,
        hs_delay_s=hs_delay_s,
        uhs_dataset=uhs_dataset,
        hs_dataset=hs_dataset,
    )
    registration_path = Path(str(registration)).expanduser()
    catalogs = open_catalogs(target)
    files = prepare_files(
        catalogs.root, {"uhs": pair.uhs.recording, "hs": pair.hs.recording}
    )
    options = {
        "uhs": str(Path(uhs_path).absolute()),
        "hs": str(Path(hs_path).absolute()),
        "uhs_rate_hz": uhs_rate_hz,
        "hs_rate_hz": hs_rate_hz,
        "hs_delay_s": float(hs_delay_s),
        "registration": str(registration_path.absolute()),
    }
    try:
        docs = compose_documents(
            pair,
            files,
            block,
            options=options,
            registration_file={
                "path": str(registration_path.absolute()),
                "sha256": sha256_of(registration_path),
            },
            md=md,
        )
    except Exception:
        remove_created(files.values())
        raise
    return _write(catalogs.raw, docs)


def check_ingest(
    uhs_path: str | Path,
    hs_path: str | Path,
    *,
    registration: str | Path | None,
    uhs_rate_hz: float | None = None,
    hs_rate_hz: float | None = None,
    hs_delay_s: float = 0.0,
    uhs_dataset: str | None = None,
    hs_dataset: str | None = None,
) -> tuple[dict[str, Any], RecordingPair]:
    """Check what :func:`ingest_recordings` would ingest, without Tiled; write nothing.

    Parameters are those of :func:`ingest_recordings`.

    Returns
    -------
    dict, RecordingPair
        The registration block and the checked pair.

    Raises
    ------
    RecordingError, InvalidInputError
        What :func:`ingest_recordings` refuses before it opens the server.
    """
    if registration is None:
        raise InvalidInputError(
            "a registration is required (--registration FILE): without it the "
            f"place of the HS field in the UHS field is unknown; {HOW_TO_GET_ONE}"
        )
    registration_path = Path(registration).expanduser()
    block = read_registration(registration_path)
    pair = check_pair(
        uhs_path,
        hs_path,
        uhs_rate_hz=uhs_rate_hz,
        hs_rate_hz=hs_rate_hz,
        hs_delay_s=hs_delay_s,
        uhs_dataset=uhs_dataset,
        hs_dataset=hs_dataset,
    )
    check_fits(
        block,
        pair.uhs.frame_shape,
        pair.hs.frame_shape,
        source=f"the registration file {registration_path}",
    )
    return block, pair


def _write(raw: Any, docs: list[tuple[str, dict[str, Any]]]) -> str:
    """Send the documents through the raw runs' writer; check the run is stored."""
    from xfusion_bluesky.catalog.raw import make_raw_writer

    writer = make_raw_writer(raw)
    for name, doc in docs:
        writer(name, doc)
    uid = str(docs[0][1]["uid"])
    try:
        stored = raw[uid].metadata.get("stop")
    except Exception as err:
        raise RuntimeError(
            f"Tiled did not store the ingested run {uid} ({type(err).__name__}: "
            f"{err}): the log above says why; ingest again once it is fixed"
        ) from err
    if not stored:
        raise RuntimeError(
            f"Tiled refused part of the ingested run {uid} (it has no stop "
            "document): the log above says why; ingest again once it is fixed"
        )
    logger.info("ingested %s as raw run %s", docs[0][1]["ingest"]["uhs"]["path"], uid)
    return uid
