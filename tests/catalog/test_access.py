import json
import stat
import uuid

import pytest

from xfusion_bluesky.catalog.access import (
    READ,
    WRITE,
    RoleAccessPolicy,
    provision_role_keys,
)
from xfusion_bluesky.catalog.server import server_config
from xfusion_bluesky.errors import InvalidInputError


def test_role_table():
    policy = RoleAccessPolicy({uuid.uuid4().hex: "analyst"})
    assert policy.scopes_for("acquisition", "raw") == WRITE
    assert policy.scopes_for("acquisition", "fused") == READ
    assert policy.scopes_for("fusion", "raw") == READ
    assert policy.scopes_for("fusion", "fused") == WRITE
    assert "create:node" in policy.scopes_for("fusion", None)  # makes `fused` once
    assert "register" not in policy.scopes_for("fusion", None)
    for top in (None, "raw", "fused", "elsewhere"):
        assert policy.scopes_for("analyst", top) == READ
        assert policy.scopes_for(None, top) == frozenset()
    with pytest.raises(ValueError, match="unknown roles"):
        RoleAccessPolicy({"0" * 32: "admin"})


@pytest.mark.slow  # ~1 s: kept out of the quick loop
def test_keys_are_made_once_owner_only(tmp_path):
    keys = provision_role_keys(tmp_path)
    path = tmp_path / "role_keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert provision_role_keys(tmp_path) == keys == json.loads(path.read_text())
    roles = {entry["uuid"]: role for role, entry in keys.items()}
    config = server_config(data_dir=tmp_path, hdf5_dir=tmp_path, roles=roles)
    assert "single_user_api_key" not in config["authentication"]
    assert config["access_control"]["args"]["roles"] == roles
    with pytest.raises(InvalidInputError, match="not both"):
        server_config(data_dir=tmp_path, hdf5_dir=tmp_path, api_key="k", roles=roles)
    (tmp_path / "authn.db").unlink()
    with pytest.raises(InvalidInputError, match="does not match"):
        provision_role_keys(tmp_path)
