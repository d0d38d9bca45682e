import pytest

from xfusion_bluesky.catalog import fetch_fused, find_derived
from xfusion_bluesky.cli.main import main


@pytest.mark.slow
def test_fuse_writes_a_derived_run_once_unless_forced(raw_uid, server, tiled, capsys):
    argv = ["fuse", raw_uid[:8], "--method", "bicubic", *server]
    assert main(argv) == 0
    out = capsys.readouterr().out
    fused = fetch_fused(tiled.client, raw_uid)
    assert f"derived run  {fused.uid}" in out
    assert "status       success" in out
    assert "frames       128 × 64×96 px uint16" in out
    assert fused.fusion["method"] == "bicubic"

    assert main(argv) == 0  # the same fusion again: found, not redone
    assert "existing: pass --force" in capsys.readouterr().out
    assert len(find_derived(tiled.client, raw_uid)) == 1

    assert main([*argv, "--force"]) == 0
    assert len(find_derived(tiled.client, raw_uid)) == 2

    assert main(["fuse", fused.uid, *server]) == 1  # a derived uid by mistake
    assert f"of raw run {raw_uid}: give the raw run's uid" in capsys.readouterr().err


def test_failed_fusion_exits_1_with_the_reason(raw_uid, server, tmp_path, capsys):
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    argv = ["fuse", raw_uid, "--model", str(broken), "--device", "cpu", *server]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "status       failed" in out
    assert "reason       the model for 'edvr_stf_detail' does not load" in out


@pytest.mark.slow  # ~1 s: kept out of the quick loop
def test_a_model_that_does_not_exist_is_a_usage_error(
    raw_uid, server, tiled, tmp_path, capsys
):
    argv = ["fuse", raw_uid, "--model", str(tmp_path / "nope.pth"), *server]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "--model" in capsys.readouterr().err
    assert find_derived(tiled.client, raw_uid) == []  # nothing written


def test_unknown_uid_is_explained_without_the_key(tiled, server, capsys):
    assert main(["fuse", "0000dead", *server]) == 1
    err = capsys.readouterr().err
    assert "no raw run '0000dead'" in err
    assert "api_key=***" in err  # the key is not printed


def test_no_server_named(monkeypatch, capsys):
    monkeypatch.delenv("XFUSION_TILED_URL", raising=False)
    assert main(["show", "abc"]) == 1
    assert "pass --tiled URI or set XFUSION_TILED_URL" in capsys.readouterr().err
