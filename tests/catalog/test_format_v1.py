"""docs/format.md against the documents the code writes: a scan, then its fusion."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

FORMAT_MD = Path(__file__).resolve().parents[2] / "docs" / "format.md"
_ROW = re.compile(r"^\| `([^`]+)` \|(.*)$")


def documented() -> dict[str, dict[str, bool]]:
    """Return {"h2 / h3": {key: optional}} for every key table of docs/format.md."""
    tables: dict[str, dict[str, bool]] = {}
    h2 = h3 = ""
    for line in FORMAT_MD.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            h2, h3 = line[3:].strip(), ""
        elif line.startswith("### "):
            h3 = line[4:].strip()
        elif (match := _ROW.match(line)) and "…" not in match.group(1):
            optional = "*optional*" in match.group(2)
            tables.setdefault(f"{h2} / {h3}", {})[match.group(1)] = optional
    for keys in tables.values():  # "hs.camera … hs.frame_times_key": as uhs
        keys.update(
            {"hs." + k[4:]: o for k, o in list(keys.items()) if k[:4] == "uhs."}
        )
    return tables


def written(doc: dict, table: dict[str, bool], prefix: str = "") -> set[str]:
    """Dotted keys of ``doc``, stopping where the table documents a whole object."""
    keys = set()
    for key, value in doc.items():
        path = prefix + key
        if path not in table and isinstance(value, dict):
            keys |= written(value, table, path + ".")
        else:
            keys.add(path)
    return keys


def check(doc: dict, table: dict[str, bool], what: str) -> None:
    keys = written(doc, table)
    undocumented = keys - set(table)
    missing = {k for k, optional in table.items() if not optional} - keys
    assert not undocumented, f"{what}: written but not in docs/format.md"
    assert not missing, f"{what}: in docs/format.md but not written"


@pytest.fixture(scope="module")
def tables():
    return documented()


def test_format_md_documents_every_part_of_both_kinds_of_run(tables):
    raw, derived = "Raw run (`dual_camera_scan`)", "Derived run (fusion of one raw run)"
    for part in ("Start document", "`primary` stream (one event per burst)"):
        assert len(tables[f"{raw} / {part}"]) >= 10
    assert "outcome.bursts" in tables[f"{derived} / Stop document: the outcome"]
    assert tables[f"{raw} / Start document"]["sim"] is True  # optional


@pytest.mark.slow
def test_written_documents_match_docs_format_md(
    tables, RE, sim_devices, tiled, tmp_path
):
    from xfusion_bluesky.pipeline import fuse_run
    from xfusion_bluesky.plans import dual_camera_scan
    from xfusion_bluesky.stored_format import FORMAT_VERSION

    documents: dict[str, list[dict]] = {}
    RE.subscribe(lambda name, doc: documents.setdefault(name, []).append(doc))
    (uid,) = RE(dual_camera_scan(num_bursts=1))
    raw = "Raw run (`dual_camera_scan`)"
    (start,) = documents["start"]
    assert start["xfusion_format"] == FORMAT_VERSION
    check(start, tables[f"{raw} / Start document"], "raw start")
    (descriptor,) = documents["descriptor"]
    stream = tables[f"{raw} / `primary` stream (one event per burst)"]
    check(descriptor["data_keys"], stream, "raw primary data keys")

    fused = fuse_run(tiled.raw, uid, method="bicubic")
    assert fused.status == "success", fused.reason
    derived = "Derived run (fusion of one raw run)"
    assert fused.metadata["xfusion_format"] == FORMAT_VERSION
    check(fused.metadata, tables[f"{derived} / Start document"], "derived start")
    check(fused.stop, tables[f"{derived} / Stop document: the outcome"], "stop")
    streams = {
        "primary": "one event per fused frame, written as frames are fused",
        "normalized": "one event per fused frame, written when its burst ends",
    }
    for name, about in streams.items():
        # Tiled's own columns: event time, sequence number, per-key timestamps.
        stored = [k for k in fused.node[name] if k not in ("time", "seq_num")]
        keys = dict.fromkeys(k for k in stored if not k.startswith("ts_"))
        table = tables[f"{derived} / `{name}` stream ({about})"]
        check(keys, table, f"derived {name}")

    # A checkpoint that exists but does not load is recorded as a failed run (a
    # path that does not exist is a usage error: nothing is written).
    broken_weights = tmp_path / "broken.pth"
    broken_weights.write_bytes(b"not a checkpoint")
    failed = fuse_run(tiled.raw, uid, method="edvr_stf", model=broken_weights)
    assert failed.status == "failed"
    assert failed.outcome["traceback"]
    check(failed.metadata, tables[f"{derived} / Start document"], "failed start")
    check(failed.stop, tables[f"{derived} / Stop document: the outcome"], "failed stop")
