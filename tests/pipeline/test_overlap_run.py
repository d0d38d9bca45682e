"""fuse_run reading ahead and writing behind stores what the sequential pipeline stores.

Both pipelines fuse the same two-burst raw run on the session's Tiled server
(bicubic, tiny frames, a few frames per write request so that the write queue
fills and several requests go out); every stored document, key and array must
agree but for uids and clock times. Failures injected in the reader and the
writer give the sequential pipeline's failed run, and every thread is joined.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from xfusion_bluesky.catalog import derived
from xfusion_bluesky.catalog.reader import RawRun
from xfusion_bluesky.pipeline import fuse_run, overlap

#: Clock times and uids: the only parts of a derived run allowed to differ.
VOLATILE = {"uid", "time", "started", "finished", "wall_time_s", "run_start"}


def _fuse(tiled, uid, monkeypatch, threaded: bool):
    monkeypatch.setattr(overlap, "OVERLAP", threaded)
    fused = fuse_run(tiled.raw, uid, method="bicubic", force=True)
    alive = [t.name for t in threading.enumerate() if t.name.startswith("xfusion-")]
    assert alive == []  # every thread joined
    return fused


def _stable(value: Any) -> Any:
    """``value`` without its volatile keys, at every depth."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _stored(fused) -> dict[str, Any]:
    """Everything the derived run stores, but for uids and clock times."""
    stop = _stable(fused.stop)
    stop.get("outcome", {}).pop("traceback", None)  # compared by its last line
    out: dict[str, Any] = {"start": _stable(fused.metadata), "stop": stop}
    for name in ("primary", "normalized"):
        if name not in fused.node:
            continue
        stream = fused.node[name]
        out[f"{name} descriptor"] = _stable(dict(stream.metadata))
        for key, part in stream.base.items():  # the parts as stored
            if part.structure_family == "table":
                table = part.read()
                for column in table.columns:
                    if column != "time" and not column.startswith("ts_"):
                        out[f"{name}/{key}/{column}"] = table[column].to_numpy()
            else:
                out[f"{name}/{key}"] = part.read()
                out[f"{name}/{key} chunks"] = part.structure().chunks
    return out


def _assert_same(left: dict[str, Any], right: dict[str, Any]) -> None:
    assert left.keys() == right.keys()
    for key, value in left.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, right[key], err_msg=key)
            assert value.dtype == right[key].dtype, key
        else:
            assert value == right[key], key


@pytest.mark.slow  # two fusions of a two-burst run: ~2-4 s on busy cores
@pytest.mark.timeout(120)
def test_overlapped_pipeline_writes_the_sequential_derived_run(
    tiled, two_burst_run, monkeypatch
):
    uid = two_burst_run
    monkeypatch.setattr(derived, "MAX_WRITE_BATCH", 16)  # 3 write requests
    threads: dict[str, set[str]] = {"read": set(), "write": set()}
    burst, write_frame = RawRun.burst, derived.DerivedRunWriter.write_frame

    def read(self, index):
        threads["read"].add(threading.current_thread().name)
        return burst(self, index)

    def write(self, record):
        threads["write"].add(threading.current_thread().name)
        return write_frame(self, record)

    monkeypatch.setattr(RawRun, "burst", read)
    monkeypatch.setattr(derived.DerivedRunWriter, "write_frame", write)
    sequential = _fuse(tiled, uid, monkeypatch, threaded=False)
    assert threads == {"read": {"MainThread"}, "write": {"MainThread"}}
    threads = {"read": set(), "write": set()}
    overlapped = _fuse(tiled, uid, monkeypatch, threaded=True)
    assert threads == {"read": {"xfusion-read_0"}, "write": {"xfusion-write"}}

    assert sequential.status == overlapped.status == "success"
    assert overlapped.uid != sequential.uid
    assert overlapped.frames.shape == (48, 64, 96)
    assert [b["burst"] for b in overlapped.outcome["bursts"]] == [0, 1]
    _assert_same(_stored(sequential), _stored(overlapped))


def _inject(monkeypatch, where: str) -> str:
    """Make the reader or the writer fail part-way; return the expected reason."""
    if where == "writer":
        write_frame = derived.DerivedRunWriter.write_frame

        def write(self, record):
            if record.burst == 0 and record.uhs_frame == 7:
                raise OSError("no space left on device (injected)")
            return write_frame(self, record)

        monkeypatch.setattr(derived.DerivedRunWriter, "write_frame", write)
        return "OSError: no space left on device (injected)"
    burst = RawRun.burst

    def read(self, index):
        if index == 1:
            raise RuntimeError("the HDF5 plugin crashed (injected)")
        return burst(self, index)

    monkeypatch.setattr(RawRun, "burst", read)
    return "RuntimeError: the HDF5 plugin crashed (injected)"


@pytest.mark.slow  # ~1-3 s on busy cores
@pytest.mark.timeout(120)  # a lost error would hang a queue: fail instead
@pytest.mark.parametrize("where", ["writer", "reader"])
def test_a_failure_in_a_thread_gives_the_sequential_failed_run(
    tiled, two_burst_run, monkeypatch, where
):
    monkeypatch.setattr(derived, "MAX_WRITE_BATCH", 4)  # the queue fills
    reason = _inject(monkeypatch, where)
    fused = _fuse(tiled, two_burst_run, monkeypatch, threaded=True)
    # What the sequential pipeline writes (the same run, compared in full
    # when these tests were written): the failure's reason and traceback, and
    # the frames fused before it.
    assert fused.status == "failed"
    assert fused.reason == reason
    assert fused.stop["exit_status"] == "fail"
    assert reason.split(": ", 1)[1] in fused.outcome["traceback"]
    written = 7 if where == "writer" else 24
    assert fused.frames_written == written
    assert fused.frames.shape == (written, 64, 96)
    # A write failure stops the burst; a read failure comes after burst 0 ended.
    normalized = list(fused.node["normalized"].base)  # a table once rows came
    assert normalized == (["internal"] if where == "reader" else [])
    fused_bursts = [b["burst"] for b in fused.outcome["bursts"]]
    assert fused_bursts == ([0] if where == "reader" else [])
    raw_stop = tiled.raw[two_burst_run].metadata["stop"]
    assert raw_stop["exit_status"] == "success"  # the raw run is never modified


@pytest.mark.slow  # < 1 s, but the only user of the raw run in a quick run
@pytest.mark.timeout(60)
@pytest.mark.parametrize("threaded", [False, True])
def test_a_derived_run_that_cannot_be_opened_raises_and_ends_nothing(
    tiled, two_burst_run, monkeypatch, threaded
):
    from xfusion_bluesky.catalog import find_derived

    refused = PermissionError("the server refused the start document (injected)")
    ended = []

    def refuse(self):
        raise refused

    monkeypatch.setattr(derived.DerivedRunWriter, "open", refuse)
    monkeypatch.setattr(
        derived.DerivedRunWriter, "fail", lambda self, *a: ended.append(a)
    )
    before = len(find_derived(tiled.raw, two_burst_run))
    with pytest.raises(PermissionError) as caught:
        _fuse(tiled, two_burst_run, monkeypatch, threaded=threaded)
    assert caught.value is refused  # raised to the caller, as a usage error is
    assert ended == []
    assert len(find_derived(tiled.raw, two_burst_run)) == before
    alive = [t.name for t in threading.enumerate() if t.name.startswith("xfusion-")]
    assert alive == []
