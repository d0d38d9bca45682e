"""The familiar databroker ``db`` over the same Tiled containers: ``open_broker(bl)``.

Analysts whose scripts say ``db[-1].table()`` keep them: :func:`open_broker`
wraps the raw or the fused run container in databroker 2's v1 ``Broker``. It adds
no copy and no second catalog; databroker reads what TiledWriter wrote, through
the same server. What of the v1 and v2 APIs works on these runs, and what does
not, is listed in :func:`open_broker`'s notes, each checked by its test.

The broker's nodes get a structure-client map of their own: databroker's v1
headers switch runs to their v2 client by editing a copy of that map, and a copy
of tiled's default map shares its entries, so without this one ``db[uid]`` would
turn every run any client of the process opens afterwards into a v2 run, on
which the package's readers find no data keys (bluesky-tiled-plugins 2.0.12).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from tiled.utils import OneShotCachedMap

from xfusion_bluesky.catalog.connect import (
    FUSED_CONTAINER,
    RAW_CONTAINER,
    open_catalogs,
)
from xfusion_bluesky.errors import InvalidInputError

if TYPE_CHECKING:
    from databroker.v1 import Broker

__all__ = ["open_broker"]

#: What ``which`` may name: the containers of raw and of derived runs.
WHICH = (RAW_CONTAINER, FUSED_CONTAINER)


def open_broker(
    target: Any, *, which: str = "raw", api_key: str | None = None
) -> Broker:
    """Return a databroker v1 ``Broker`` over the raw or the fused runs of a server.

    Parameters
    ----------
    target : str, Tiled node, TiledConnection, Beamline or Catalogs
        Whatever :func:`~xfusion_bluesky.catalog.connect.open_catalogs` accepts:
        ``bl``, ``bl.tiled``, a client from ``tiled.client.from_uri`` or a URI.
    which : {"raw", "fused"}
        The dual-camera runs the RunEngine wrote, or the derived (fused) runs.
    api_key : str, optional
        For a URI without one.

    Returns
    -------
    databroker.v1.Broker
        ``db[...]`` gives v1 headers; ``db.v2`` is the run container itself
        (``db.v2[uid]`` a BlueskyRun, ``db.v2[uid].primary.read()`` a Dataset).

    Raises
    ------
    InvalidInputError
        ``which`` is neither ``"raw"`` nor ``"fused"``.
    LookupError
        The server has no such container yet (nothing fused yet, for ``"fused"``)
        or it is not a catalog of bluesky runs.
    ImportError
        databroker's v1 API needs its ``back-compat`` extra (humanize, doct,
        boltons); the message gives the pip command.

    Notes
    -----
    Checked against runs written by bluesky-tiled-plugins' TiledWriter (SQL-backed
    ``BlueskyRun`` 3.0 nodes, camera frames as StreamResource/StreamDatum into
    external HDF5) with databroker 2.0.2:

    Works: ``db[-1]``, ``db[uid]``, ``db["1a2b3c"]`` (unique uid prefix),
    ``db[scan_id]`` (raw runs; find a derived run by ``fdb(raw_scan_id=N)`` or
    ``fdb(raw_uid=uid)``), ``db(**start_keys)`` and ``db(since=..., until=...)``
    searches, ``h.start``, ``h.stop``, ``h.uid``,
    ``h.descriptors``, ``h.fields()``, ``h.stream_names``, ``h.config_data(dev)``,
    ``h.table()`` (scalar and 1-D columns; image keys left out, as in v1),
    ``h.table(fill=True)`` (one image stack per row), ``h.data(key)`` (one array
    per event), ``h.xarray()`` and ``db.v2[uid].primary.read()`` (an
    ``xarray.Dataset`` with the images; it reads the whole stream).

    Needs the server's document exporter: ``h.documents()``, ``db.restream``,
    ``db.process``, ``db.get_documents`` and ``db.get_events`` ask the server for
    ``application/json-seq``, which a Tiled server serves only when configured
    with bluesky-tiled-plugins' ``json_seq_exporter`` for the ``BlueskyRun``
    spec; otherwise they fail with HTTP 406. Stream resources come back
    unfilled (``fill=True`` raises NotImplementedError).

    Does not work: ``h.xarray_dask()`` and ``db.get_images`` (AttributeError
    ``to_dask``: the SQL-backed v2 stream has none; ``get_images`` first needs
    pims). Handler registration and ``db.reg.root_map`` only warn: the server
    reads the HDF5 files, so clients have nothing to configure.

    databroker shows the documents as stored: runs written before the stored
    format was versioned keep their old start-document names (``lr``/``hr``
    blocks, ``derived_from``), which the package's own readers translate.

    Examples
    --------
    >>> db = open_broker(bl)  # doctest: +SKIP
    >>> h = db[-1]  # the latest raw run  # doctest: +SKIP
    >>> h.start["scan_id"], h.start["uhs"]["frame_rate_hz"]  # doctest: +SKIP
    >>> h.table()  # frame times, delays, burst seeds per burst  # doctest: +SKIP
    >>> uhs = next(h.data("uhs_image"))  # burst 0, (t, h, w)  # doctest: +SKIP
    >>> ds = db.v2[h.uid].primary.read()  # xarray, all bursts  # doctest: +SKIP
    >>> fdb = open_broker(bl, which="fused")  # doctest: +SKIP
    >>> derived = list(fdb(raw_uid=h.uid))[-1]  # its latest  # doctest: +SKIP
    >>> derived.table()["backward_attention"]  # doctest: +SKIP
    >>> fused = next(derived.data("fused"))  # fused frame 0, (H, W)  # doctest: +SKIP
    """
    if which not in WHICH:
        raise InvalidInputError(
            f"which must be one of {', '.join(map(repr, WHICH))}; got {which!r}"
        )
    broker_class = _broker_class()
    catalogs = open_catalogs(target, api_key=api_key, create=False)
    container = catalogs.raw if which == RAW_CONTAINER else catalogs.fused
    if container is None:
        raise LookupError(
            f"the Tiled server has no {which!r} container yet"
            + (": no run has been fused" if which == FUSED_CONTAINER else "")
        )
    # Only this client class resolves scan ids, uid prefixes and negative indices.
    if not _is_run_catalog(container):
        raise LookupError(
            f"the {which!r} container is not a CatalogOfBlueskyRuns (specs "
            f"{[spec.name for spec in container.specs]}); create it with "
            "xfusion_bluesky.catalog.connect.ensure_run_container"
        )
    private = container.new_variation(
        structure_clients=_IsolatedStructureClients.of(container.structure_clients)
    )
    return broker_class(private)


class _IsolatedStructureClients(OneShotCachedMap):
    """A spec → client-class map whose copies do not share its entries.

    bluesky-tiled-plugins picks a run's v2 or v3 client with
    ``copy.copy(node.structure_clients).set("BlueskyRun", ...)``; tiled's map
    pickles its entry dict by reference, so the copy's ``set`` would edit the
    process-wide default that every other client uses.
    """

    @classmethod
    def of(cls, clients: Any) -> _IsolatedStructureClients:
        """Return a lazy copy of ``clients`` (nothing is imported until used)."""
        return cls(
            {key: functools.partial(clients.__getitem__, key) for key in clients}
        )

    def __copy__(self) -> _IsolatedStructureClients:
        return self.of(self)


def _broker_class() -> type[Broker]:
    """Import databroker's v1 ``Broker``; say how to install what it lacks."""
    try:
        from databroker.v1 import Broker
    except ImportError as err:
        raise ImportError(
            f"databroker's v1 API cannot be imported ({err}): install its "
            "back-compat extra, pip install 'databroker[back-compat]'"
        ) from err
    return Broker


def _is_run_catalog(container: Any) -> bool:
    from bluesky_tiled_plugins import CatalogOfBlueskyRuns

    return isinstance(container, CatalogOfBlueskyRuns)
