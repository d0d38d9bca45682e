"""Read ahead and write behind, without Tiled: order, bounds, errors, joined threads."""

from __future__ import annotations

import threading

import pytest

from xfusion_bluesky.pipeline.overlap import HostThread, ReadAhead, WriteBehind


def _ours_alive() -> list[str]:
    return [
        t.name
        for t in threading.enumerate()
        if t.name.startswith(("xfusion-read", "xfusion-write"))
    ]


def test_write_behind_calls_in_order_on_its_thread_and_joins():
    calls = []
    with WriteBehind(threaded=True, max_pending=2) as sink:
        for i in range(20):
            sink.call(lambda i: calls.append((i, threading.current_thread().name)), i)
    assert [i for i, _ in calls] == list(range(20))
    assert {name for _, name in calls} == {"xfusion-write"}
    assert _ours_alive() == []


def test_write_behind_sequential_calls_at_once_in_the_caller():
    calls = []
    with WriteBehind(threaded=False, max_pending=2) as sink:
        sink.call(lambda: calls.append(threading.current_thread().name))
        assert calls == [threading.current_thread().name]


def test_write_behind_holds_at_most_max_pending_calls():
    gate = threading.Event()
    with WriteBehind(threaded=True, max_pending=2) as sink:
        sink.call(gate.wait)  # taken by the writer thread, which waits
        sink.call(lambda: None)
        sink.call(lambda: None)  # the queue holds two
        fourth = threading.Thread(target=sink.call, args=(lambda: None,))
        fourth.start()
        fourth.join(timeout=0.2)
        assert fourth.is_alive()  # waits for room
        gate.set()
        fourth.join(timeout=5)
        assert not fourth.is_alive()


def test_a_failed_write_drops_the_rest_and_is_raised_when_the_block_ends():
    written = []
    boom = OSError("disk full (injected)")

    def write(i):
        if i == 3:
            raise boom
        written.append(i)

    def fuse():
        with WriteBehind(threaded=True, max_pending=2) as sink:
            for i in range(6):  # 4 and 5 after the failure: dropped, or raised
                sink.call(write, i)

    with pytest.raises(OSError, match="disk full") as caught:
        fuse()
    assert caught.value is boom
    assert written == [0, 1, 2]
    assert _ours_alive() == []


def test_the_writers_error_comes_before_a_later_error_of_the_caller():
    boom = OSError("refused (injected)")
    failed = threading.Event()

    def write():
        failed.set()
        raise boom

    def fuse():
        with WriteBehind(threaded=True, max_pending=2) as sink:
            sink.call(write)
            failed.wait(5)
            raise ValueError("the fusion failed after the write")

    with pytest.raises(OSError, match="refused") as caught:
        fuse()
    assert caught.value is boom
    assert isinstance(caught.value.__context__, ValueError)
    assert _ours_alive() == []


def test_an_interrupt_is_not_replaced_by_the_writers_error():
    def fuse():
        with WriteBehind(threaded=True, max_pending=2) as sink:
            sink.call(lambda: 1 / 0)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fuse()
    assert _ours_alive() == []


def test_read_ahead_reads_the_next_item_while_one_is_used():
    started = {1: threading.Event()}
    events = []

    def read(k):
        events.append(("read", k, threading.current_thread().name))
        if k in started:
            started[k].set()
        return k * 10

    with HostThread(threaded=True) as host:
        reads = ReadAhead(host, read, 3)
        assert reads.get(0) == 0
        # Item 1 is read without being asked for, on the host thread.
        assert started[1].wait(5)
        assert reads.get(1) == 10
        assert reads.get(2) == 20
    assert [k for _, k, _ in events] == [0, 1, 2]
    assert {name for *_, name in events} == {"xfusion-read_0"}
    assert _ours_alive() == []


def test_sequential_reads_happen_when_taken_in_the_caller():
    events = []

    def read(k):
        events.append(("read", k, threading.current_thread().name))
        return k

    with HostThread(threaded=False) as host:
        reads = ReadAhead(host, read, 2)
        assert events == []
        for k in range(2):
            events.append(("use", reads.get(k), None))
    caller = threading.current_thread().name
    assert events == [
        ("read", 0, caller),
        ("use", 0, None),
        ("read", 1, caller),
        ("use", 1, None),
    ]


@pytest.mark.parametrize("threaded", [True, False])
def test_a_read_error_is_raised_when_its_item_is_taken(threaded):
    boom = RuntimeError("burst 1 unreadable (injected)")

    def read(k):
        if k == 1:
            raise boom
        return k

    with HostThread(threaded=threaded) as host:
        reads = ReadAhead(host, read, 3)
        assert reads.get(0) == 0
        with pytest.raises(RuntimeError, match="unreadable") as caught:
            reads.get(1)
        assert caught.value is boom
        assert reads.get(2) == 2
    assert _ours_alive() == []
