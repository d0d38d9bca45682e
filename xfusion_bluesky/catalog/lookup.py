"""Find a server and a run on it from what a person types: a URI or none, a uid prefix.

The command line and notebooks name runs loosely: a raw run's uid when they mean
its fusion, a prefix of either uid, no server at all (the environment names one).
These functions turn that into a :class:`~xfusion_bluesky.catalog.connect.Catalogs`
and a :class:`~xfusion_bluesky.catalog.queries.FusedRun`, or into an error that
says which uid or server was wrong and what to type instead.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from xfusion_bluesky.catalog.connect import Catalogs, open_catalogs, redact
from xfusion_bluesky.catalog.queries import FusedRun, fetch_fused
from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.settings import Settings

__all__ = [
    "check_raw_uid",
    "one_api_key",
    "open_server",
    "resolve_fused",
    "server_address",
]


def server_address(
    uri: str | None = None,
    api_key: str | None = None,
    *,
    settings: Settings | None = None,
) -> tuple[str, str | None]:
    """Return the Tiled server and API key to use: the ones given, else the environment.

    Parameters
    ----------
    uri : str, optional
        Server URI, e.g. ``http://host:8000/api/v1``; default ``XFUSION_TILED_URL``.
    api_key : str, optional
        Its API key; default ``XFUSION_TILED_API_KEY`` (None: the URI carries one,
        or the server needs none).
    settings : Settings, optional
        Overrides the environment (tests).

    Returns
    -------
    str, str or None
        The URI and the API key.

    Raises
    ------
    InvalidInputError
        Neither ``uri`` nor ``XFUSION_TILED_URL`` names a server.
    """
    env = settings or Settings.from_env()
    address = uri or env.tiled_url
    if not address:
        raise InvalidInputError(
            "no Tiled server: pass --tiled URI or set XFUSION_TILED_URL (an "
            "IPython session prints its embedded server's URI as bl.connection.uri; "
            "`xfusion-bluesky serve` runs a standalone one)"
        )
    return address, api_key or env.tiled_api_key


def open_server(
    uri: str | None = None,
    api_key: str | None = None,
    *,
    create: bool = False,
    settings: Settings | None = None,
) -> tuple[Catalogs, str]:
    """Open the server :func:`server_address` names.

    Parameters
    ----------
    uri, api_key : str, optional
        As for :func:`server_address`.
    create : bool
        Create missing run containers (needs write access).
    settings : Settings, optional
        Overrides the environment (tests).

    Returns
    -------
    Catalogs, str
        The root, raw and fused containers; the server URI (for messages: pass
        it through :func:`~xfusion_bluesky.catalog.connect.redact` to print it).

    Raises
    ------
    InvalidInputError
        No server named.
    """
    address, key = server_address(uri, api_key, settings=settings)
    return open_catalogs(address, api_key=key, create=create), address


def resolve_fused(
    catalogs: Catalogs, uid: str, *, uri: str = "", method: str | None = None
) -> FusedRun:
    """Return the derived run ``uid`` names: a derived uid, or a raw run's.

    Parameters
    ----------
    catalogs : Catalogs
        The server's containers.
    uid : str
        A derived run's uid, or a raw run's: its derived run of ``method``, by
        default of the method the raw run requested (the rule of
        :func:`~xfusion_bluesky.catalog.choice.pick_fused`); unique prefixes work.
    uri : str
        The server, for messages (its API key is masked).
    method : str, optional
        The fusion method; with a derived uid, it must be that run's.

    Returns
    -------
    FusedRun

    Raises
    ------
    LookupError
        Neither a derived nor a raw run has that uid, the raw run has no derived
        run (of ``method``) yet, or the derived run is of another method.
    """
    if catalogs.fused is not None:
        try:
            fused = FusedRun(catalogs.fused[uid], catalogs)
        except KeyError:
            pass
        else:
            if method not in (None, fused.method):
                raise LookupError(
                    f"derived run {fused.uid} is a {fused.method} fusion, not "
                    f"{method}: give its raw run's uid ({fused.raw_uid}) to pick "
                    "one by method"
                )
            return fused
    if catalogs.raw is not None and _holds(catalogs.raw, uid):
        return fetch_fused(catalogs, uid, method=method)
    raise LookupError(
        f"no raw or derived run {uid!r} on {redact(uri) or 'the server'}: check the "
        "uid (a unique prefix works)"
    )


def check_raw_uid(catalogs: Catalogs, uid: str, *, uri: str = "") -> None:
    """Raise an error that says what ``uid`` is when it names no raw run.

    Parameters
    ----------
    catalogs : Catalogs
        The server's containers.
    uid : str
        What should be a raw run's uid (a unique prefix works).
    uri : str
        The server, for messages (its API key is masked).

    Raises
    ------
    LookupError
        No raw run has that uid; the message names the raw run when ``uid`` is
        a derived run's.
    """
    if catalogs.raw is not None and _holds(catalogs.raw, uid):
        return
    hint = "check the uid (a unique prefix works)"
    if catalogs.fused is not None and _holds(catalogs.fused, uid):
        derived = FusedRun(catalogs.fused[uid], catalogs)
        hint = (
            f"it is a derived run, of raw run {derived.raw_uid}: give the raw run's uid"
        )
    raise LookupError(f"no raw run {uid!r} on {redact(uri) or 'the server'}: {hint}")


def _holds(container: Any, uid: str) -> bool:
    """Tell whether ``container`` has a run ``uid`` (a unique prefix works)."""
    try:
        container[uid]
    except KeyError:
        return False
    return True


def one_api_key(uri: str, api_key: str | None) -> str | None:
    """Return the ``api_key`` to pass beside ``uri`` (Tiled refuses two of them).

    Raises
    ------
    InvalidInputError
        The URI carries another key than ``api_key``.
    """
    in_uri = parse_qs(urlsplit(uri).query).get("api_key")
    if not api_key or not in_uri:
        return api_key or None
    if in_uri == [api_key]:
        return None
    raise InvalidInputError(
        "tiled_uri carries an api_key and api_key names another one; pass one"
    )
