"""Per-role API keys for a standalone Tiled server: who may write which container.

``xfusion-bluesky serve --roles`` gives three Tiled service principals one API
key each and lets :class:`RoleAccessPolicy` decide, per top-level container,
what each may do:

============  ===============  ===============  ==========================
role          ``raw``          ``fused``        elsewhere (root, probes)
============  ===============  ===============  ==========================
acquisition   write            read             write (probe, containers)
fusion        read             write            read (+ create ``fused``)
analyst       read             read             read
============  ===============  ===============  ==========================

Tiled checks both layers on every request: the key's own scopes (the ceiling)
and the scopes this policy allows on the node.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

from tiled.access_control.protocols import AccessPolicy, normalize_access_tags
from tiled.server.protocols import InternalAuthenticator

from xfusion_bluesky.errors import InvalidInputError

__all__ = [
    "ROLES",
    "KeysOnlyAuthenticator",
    "RoleAccessPolicy",
    "provision_role_keys",
]

#: Reading: metadata and data.
READ = frozenset({"read:metadata", "read:data"})
#: Writing runs: TiledWriter creates nodes, registers the cameras' HDF5 files,
#: appends table rows; the storage probe is deleted again.
WRITE = READ | {
    "write:metadata",
    "write:data",
    "create:node",
    "register",
    "delete:node",
    "delete:revision",
}
#: Creating a top-level container (the fusion worker creates ``fused`` once).
CREATE = READ | {"write:metadata", "create:node"}

#: The roles, each with the Tiled role of its principal ("register" is an admin
#: scope in Tiled) and the scopes of its key (the ceiling on every node).
ROLES: dict[str, dict[str, Any]] = {
    "acquisition": {"principal_role": "admin", "scopes": WRITE},
    "fusion": {"principal_role": "admin", "scopes": WRITE},
    "analyst": {"principal_role": "user", "scopes": READ},
}


class KeysOnlyAuthenticator(InternalAuthenticator):
    """Refuse every password login: the per-role API keys are the only way in.

    Tiled needs one authentication provider to run with principals and API
    keys; this one lets nobody log in.
    """

    def authenticate(self, username: str, password: str) -> None:
        """Refuse the login."""
        return None


class RoleAccessPolicy(AccessPolicy):
    """Allow each role's principal the scopes of its table, per top-level container.

    Parameters
    ----------
    roles : dict
        Principal UUID (hex string) → role name, one of :data:`ROLES`.
    raw, fused : str
        Keys of the raw- and derived-run containers under the root.
    """

    def __init__(
        self, roles: dict[str, str], raw: str = "raw", fused: str = "fused"
    ) -> None:
        unknown = sorted(set(roles.values()) - set(ROLES))
        if unknown:
            raise ValueError(f"unknown roles {unknown}; known: {sorted(ROLES)}")
        self.roles = {str(uuid).replace("-", ""): role for uuid, role in roles.items()}
        self.raw, self.fused = raw, fused

    def role_of(self, principal: Any) -> str | None:
        """Return the role of ``principal`` (None: anonymous or not one of ours)."""
        if principal is None:
            return None
        return self.roles.get(principal.uuid.hex)

    def scopes_for(self, role: str | None, top: str | None) -> frozenset[str]:
        """Scopes of ``role`` on a node under top-level container ``top``.

        ``top`` is None for the root itself.
        """
        if role == "acquisition":
            return READ if top == self.fused else WRITE
        if role == "fusion":
            if top is None:
                return CREATE
            return WRITE if top == self.fused else READ
        if role == "analyst":
            return READ
        return frozenset()

    async def init_node(
        self,
        principal: Any,
        authn_access_tags: Any,
        authn_scopes: Any,
        access_tags: Any = None,
    ) -> tuple[bool, Any]:
        """Keep a new node's access tags as they are: access follows its path."""
        return (False, access_tags or normalize_access_tags())

    async def allowed_scopes(
        self,
        node: Any,
        principal: Any,
        authn_access_tags: Any,
        authn_scopes: Any,
    ) -> set[str]:
        """Return the scopes the principal has on ``node`` (within its key's)."""
        role = self.role_of(principal)
        if role is None:
            return set()
        allowed = self.scopes_for(role, await _top_segment(node))
        return set(allowed) & {str(getattr(s, "value", s)) for s in authn_scopes}

    async def filters(
        self,
        node: Any,
        principal: Any,
        authn_access_tags: Any,
        authn_scopes: Any,
        scopes: Any,
    ) -> Any:
        """Every role reads everything; a stranger sees nothing."""
        from tiled.access_control.access_policies import ALL_ACCESS, NO_ACCESS

        return ALL_ACCESS if self.role_of(principal) else NO_ACCESS


async def _top_segment(node: Any) -> str | None:
    """Return the first path segment of ``node``; None for the root.

    A node of unknown shape gets a key no role may write (read only).
    """
    inner = getattr(node, "node", None)
    if inner is not None and getattr(inner, "id", None) == 0:
        return None
    if not hasattr(node, "path_segments"):
        return "\0unknown"
    segments = await node.path_segments()
    return str(segments[0]) if segments else None


def provision_role_keys(directory: str | Path) -> dict[str, dict[str, str]]:
    """Create (once) a service principal and an API key per role; return them.

    The authentication database is ``directory/authn.db``; the keys go to
    ``directory/role_keys.json``, readable by its owner only. A second call
    returns the keys already written.

    Parameters
    ----------
    directory : str or Path
        The server's directory (``DATA_DIR/tiled``).

    Returns
    -------
    dict
        Role → ``{"uuid": principal UUID (hex), "api_key": key}``.

    Raises
    ------
    InvalidInputError
        ``role_keys.json`` exists without its database, or lacks a role.
    """
    directory = Path(directory).expanduser().resolve()
    database, keys_path = directory / "authn.db", directory / "role_keys.json"
    if keys_path.exists():
        keys: dict[str, dict[str, str]] = json.loads(keys_path.read_text())
        missing = sorted(set(ROLES) - set(keys))
        if missing or not database.exists():
            raise InvalidInputError(
                f"{keys_path} does not match {database} (missing: "
                f"{missing or 'the database'}); move both aside to make new keys"
            )
        return keys
    directory.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{database}"
    if not database.exists():
        # Tiled's own command creates the tables and stamps the schema version,
        # as its server does on first start.
        subprocess.run(
            [sys.executable, "-m", "tiled", "admin", "initialize-database", uri],
            check=True,
            capture_output=True,
        )
    keys = asyncio.run(_create_principals(uri))
    descriptor = os.open(keys_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as f:
        json.dump(keys, f, indent=2)
    return keys


async def _create_principals(uri: str) -> dict[str, dict[str, str]]:
    """Add one service principal and one scoped API key per role to the database."""
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
    from tiled.authn_database import orm
    from tiled.authn_database.core import create_service
    from tiled.utils import ensure_specified_sql_driver

    engine = create_async_engine(ensure_specified_sql_driver(uri))
    keys = {}
    try:
        async with AsyncSession(engine, expire_on_commit=False) as db:
            for role, spec in ROLES.items():
                principal = await create_service(db, spec["principal_role"])
                # As Tiled's POST /auth/apikey does: 36 random bytes, stored hashed.
                secret = secrets.token_bytes(36)
                db.add(
                    orm.APIKey(
                        principal_id=principal.id,
                        expiration_time=None,
                        note=f"xfusion-bluesky {role}",
                        scopes=sorted(spec["scopes"]),
                        access_tags=None,
                        first_eight=secret.hex()[:8],
                        hashed_secret=hashlib.sha256(secret).digest(),
                    )
                )
                await db.commit()
                keys[role] = {"uuid": principal.uuid.hex, "api_key": secret.hex()}
    finally:
        await engine.dispose()
    return keys
