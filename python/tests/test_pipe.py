import gc
import multiprocessing
import os
import pickle
import signal
import threading
import time
from multiprocessing import BufferTooShort

import pytest

import mmring
from conftest import join_all

# Children: top level, so that spawn can import them.


def _echo_plus_one(conn, n):
    for _ in range(n):
        conn.send(conn.recv() + 1)
    conn.close()


def _send_then_close(conn, items):
    for item in items:
        conn.send(item)
    conn.close()


def _send_then_hang(conn, items, sent):
    for item in items:
        conn.send(item)
    sent.set()
    time.sleep(600)  # killed by the test


def _hold_until(conn, go):
    # Holds the end it was given (never uses it) until told to exit.
    go.wait(60)


def _big_both_ways(conn, size):
    msg = conn.recv_bytes()
    ok = len(msg) == size and msg == bytes(i % 251 for i in range(size))
    conn.send_bytes(msg[::-1])
    conn.send(ok)
    conn.close()


def _recv_once_then_close(conn, got):
    conn.recv()
    got.set()
    conn.close()


def _recv_once_then_hang(conn, got):
    conn.recv()
    got.set()
    time.sleep(600)  # killed by the test


def _talk_to_itself(a, b, go):
    # Uses a pipe only after the parent let go of both its ends.
    assert go.wait(60)
    b.send("to a")
    a.send("to b")
    assert (a.recv(), b.recv()) == ("to a", "to b")


def _recv_then_reply(conn):
    got = conn.recv()
    conn.send(("child got", got))
    conn.close()


def _report_end(conn):
    conn.send((os.getpid(), conn.end, conn.name, conn.readable, conn.writable))
    conn.close()


def test_ping_pong_both_directions(ctx, name):
    a, b = mmring.Pipe(name("chan"))
    p = ctx.Process(target=_echo_plus_one, args=(b, 50))
    p.start()
    b.close()
    for i in range(0, 100, 2):
        a.send(i)
        assert a.recv() == i + 1
    with pytest.raises(EOFError):
        a.recv()
    assert join_all([p]) == [0]


def test_one_way_pipe(ctx, name):
    r, w = mmring.Pipe(name("oneway"), duplex=False)
    assert (r.readable, r.writable, w.readable, w.writable) == (True, False, False, True)
    assert os.path.exists(name("oneway") + ".a") and not os.path.exists(name("oneway") + ".b")
    with pytest.raises(OSError, match="read-only"):
        r.send(1)
    with pytest.raises(OSError, match="write-only"):
        w.recv()
    p = ctx.Process(target=_send_then_close, args=(w, [1, "two", (3,)]))
    p.start()
    w.close()
    assert [r.recv(), r.recv(), r.recv()] == [1, "two", (3,)]
    with pytest.raises(EOFError):
        r.recv()
    assert join_all([p]) == [0]
    with pytest.raises(ValueError, match="duplex"):
        mmring.Pipe(name("oneway"))


def test_a_message_far_larger_than_the_ring_arrives_whole(ctx, name):
    # 4 slots of 64 bytes; 1 MiB each way, streamed in pieces.
    a, b = mmring.Pipe(name("big"), capacity=4, slot_size=64)
    size = 1 << 20
    msg = bytes(i % 251 for i in range(size))
    p = ctx.Process(target=_big_both_ways, args=(b, size))
    p.start()
    b.close()
    a.send_bytes(msg)
    assert a.recv_bytes() == msg[::-1]
    assert a.recv() is True
    assert join_all([p]) == [0]
    assert mmring.Connection.MAX_MESSAGE_LEN == 1 << 30


def test_eof_after_the_writer_closes_only_once_all_is_read(ctx, name):
    a, b = mmring.Pipe(name())
    items = [b"x" * 10, list(range(1000)), None]
    p = ctx.Process(target=_send_then_close, args=(b, items))
    p.start()
    b.close()
    assert join_all([p]) == [0]  # gone before anything is read
    assert a.poll() is True
    assert [a.recv(), a.recv(), a.recv()] == items
    assert a.poll() is True  # end of file: recv would not block
    with pytest.raises(EOFError):
        a.recv()
    with pytest.raises(EOFError):
        a.recv_bytes()


def test_eof_after_the_writer_is_killed(ctx, name):
    a, b = mmring.Pipe(name())
    sent = mmring.Event(name("sent"))
    p = ctx.Process(target=_send_then_hang, args=(b, ["one", "two"], sent))
    p.start()
    b.close()
    assert sent.wait(60)
    p.kill()
    p.join(60)
    assert a.recv() == "one" and a.recv() == "two"
    with pytest.raises(EOFError):
        a.recv()


def test_no_eof_while_another_holder_of_the_writing_end_lives(ctx, name):
    a, b = mmring.Pipe(name())
    go = mmring.Event(name("go"))
    # The child gets b and never uses it; here b is closed at once.
    p = ctx.Process(target=_hold_until, args=(b, go))
    p.start()
    b.close()
    assert a.poll(0.3) is False  # neither a message nor end of file
    go.set()
    assert join_all([p]) == [0]
    with pytest.raises(EOFError):
        a.recv()


def test_the_creator_holds_both_ends_until_it_closes_them(name):
    a, b = mmring.Pipe(name())
    b.send("last")
    assert a.recv() == "last"
    assert a.poll(0.05) is False  # b is still held (here)
    with b:
        pass
    assert b.closed
    with pytest.raises(EOFError):
        a.recv()
    with pytest.raises(OSError, match="closed"):
        b.send(1)
    b.close()  # idempotent


def test_poll_with_and_without_timeout(ctx, name):
    a, b = mmring.Pipe(name())
    assert a.poll() is False and a.poll(0) is False and a.poll(-1) is False
    t0 = time.monotonic()
    assert a.poll(0.1) is False
    assert time.monotonic() - t0 >= 0.09
    p = ctx.Process(target=_send_then_close, args=(b, ["late"]))
    p.start()
    b.close()
    assert a.poll(None) is True  # waits for the child's message
    assert a.poll() is True  # kept for recv
    assert a.recv() == "late"
    assert join_all([p]) == [0]


def test_recv_bytes_maxlength_keeps_the_message(name):
    a, b = mmring.Pipe(name())
    b.send_bytes(b"0123456789")
    with pytest.raises(OSError, match="bad message length"):
        a.recv_bytes(4)
    assert a.recv_bytes(10) == b"0123456789"  # nothing lost
    with pytest.raises(ValueError):
        a.recv_bytes(-1)
    b.send_bytes(bytearray(b"abcdef"), 2)
    b.send_bytes(memoryview(b"abcdef"), 1, 2)
    assert a.recv_bytes() == b"cdef" and a.recv_bytes() == b"bc"
    for bad in [(-1, None), (7, None), (0, -1), (2, 5)]:
        with pytest.raises(ValueError):
            b.send_bytes(b"abcdef", *bad)
    buf = bytearray(8)
    b.send_bytes(b"xyz")
    assert a.recv_bytes_into(buf, 4) == 3 and buf == bytearray(b"\0\0\0\0xyz\0")
    b.send_bytes(b"too long for it")
    with pytest.raises(BufferTooShort) as e:
        a.recv_bytes_into(buf)
    assert e.value.args[0] == b"too long for it"


def test_broken_pipe_once_the_reader_closed(ctx, name):
    a, b = mmring.Pipe(name())
    got = mmring.Event(name("got"))
    p = ctx.Process(target=_recv_once_then_close, args=(b, got))
    p.start()
    b.close()
    a.send("hello")
    assert got.wait(60)
    assert join_all([p]) == [0]
    with pytest.raises(BrokenPipeError):
        a.send("anyone?")


def test_broken_pipe_once_the_reader_was_killed(ctx, name):
    a, b = mmring.Pipe(name(), capacity=4, slot_size=16)
    got = mmring.Event(name("got"))
    p = ctx.Process(target=_recv_once_then_hang, args=(b, got))
    p.start()
    b.close()
    a.send("hello")
    assert got.wait(60)
    p.kill()
    p.join(60)
    # Sends may fill the ring its consumer left; then the pipe is broken.
    with pytest.raises(BrokenPipeError):
        for _ in range(1000):
            a.send("anyone?")


def test_ctrl_c_interrupts_a_blocked_recv(name):
    a, b = mmring.Pipe(name())
    pid = os.getpid()
    threading.Timer(0.2, lambda: os.kill(pid, signal.SIGINT)).start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        a.recv()
    assert time.monotonic() - t0 < 5
    b.send("still works")
    assert a.recv() == "still works"


def test_an_end_pickled_to_a_spawned_child(name):
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    a, b = mmring.Pipe(name("pickled"))
    p = ctx.Process(target=_report_end, args=(b,))
    p.start()
    b.close()
    child, end, nm, readable, writable = a.recv()
    assert child == p.pid and (end, nm, readable, writable) == ("b", name("pickled"), True, True)
    with pytest.raises(EOFError):
        a.recv()
    assert join_all([p]) == [0]
    with pytest.raises(OSError, match="closed"):
        pickle.dumps(b)


def test_open_by_name_remove_and_names(name):
    a, b = mmring.Pipe(name("named"))
    assert (a.name, a.path, a.end, b.end) == (name("named"), name("named"), "a", "b")
    other = mmring.Connection.open(name("named"), "b")
    other.send("via open")
    assert a.recv() == "via open"
    with pytest.raises(io_unsupported()):
        a.fileno()
    mmring.remove(name("named"))
    assert not os.path.exists(name("named") + ".a") and not os.path.exists(name("named") + ".b")
    with pytest.raises(FileNotFoundError):
        mmring.remove(name("named"))
    with pytest.raises(FileNotFoundError):
        mmring.Connection.open(name("named"), "a")
    with pytest.raises(ValueError):
        mmring.Pipe(name("x"), capacity=0)
    with pytest.raises(ValueError):
        mmring.Pipe(name("x"), slot_size=1 << 17)


def test_an_unnamed_pipe_removes_its_files_when_both_ends_are_collected():
    a, b = mmring.Pipe()
    path = a.path
    assert os.path.exists(path + ".a") and os.path.exists(path + ".b")
    del a
    assert os.path.exists(path + ".a")
    del b
    assert not os.path.exists(path + ".a") and not os.path.exists(path + ".b")


def io_unsupported():
    import io

    return io.UnsupportedOperation


def _wait_until(cond, what):
    deadline = time.monotonic() + 60
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.001)


def test_an_unnamed_pipe_handed_to_a_child_keeps_its_files(ctx, name):
    # Process.start() drops its reference to the arguments at once: here
    # both ends' last references in this process go with it, before the
    # child has opened either ring.
    go = mmring.Event(name("go"))
    a, b = mmring.Pipe()
    path = a.path
    p = ctx.Process(target=_talk_to_itself, args=(a, b, go))
    del a, b
    p.start()
    gc.collect()
    go.set()
    try:
        assert join_all([p]) == [0]
        # Kept until this process exits (the package's atexit hook).
        assert os.path.exists(path + ".a") and os.path.exists(path + ".b")
    finally:
        mmring.remove(path)


def test_a_fork_while_a_thread_waits_in_recv(name):
    # The child inherits the end while the parent's thread is inside recv:
    # the child's own recv and send on it must not wait for that thread
    # (which does not exist there).
    ctx = multiprocessing.get_context("fork")
    a, b = mmring.Pipe(name())
    got = []
    t = threading.Thread(target=lambda: got.append(a.recv()))
    t.start()
    _wait_until(lambda: a._receiving, "the thread never entered recv")
    p = ctx.Process(target=_recv_then_reply, args=(a,))
    p.start()
    b.send("for the thread")
    t.join(60)
    assert got == ["for the thread"]
    a.close()  # gives the receiving role back (the child still holds a)
    b.send("for the child")
    assert b.recv() == ("child got", "for the child")
    assert join_all([p]) == [0]


def test_ctrl_c_interrupts_a_wait_for_an_end_another_thread_uses(name):
    a, b = mmring.Pipe(name())
    got = []
    t = threading.Thread(target=lambda: got.append(a.recv()))
    t.start()
    _wait_until(lambda: a._receiving, "the thread never entered recv")
    pid = os.getpid()
    threading.Timer(0.2, lambda: os.kill(pid, signal.SIGINT)).start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        a.recv()  # waits for the thread's turn
    assert time.monotonic() - t0 < 5
    b.send("one")
    b.send("two")
    t.join(60)
    assert got == ["one"]
    assert a.recv() == "two"


def test_close_from_a_signal_handler_during_recv(name):
    # The handler runs in the middle of the recv it interrupts: close()
    # must not wait for that recv, which then raises; the end is let go of
    # (its hold and its receiving role) as that recv returns.
    a, b = mmring.Pipe(name())
    old = signal.signal(signal.SIGUSR1, lambda *_: a.close())
    try:
        pid = os.getpid()
        threading.Timer(0.2, lambda: os.kill(pid, signal.SIGUSR1)).start()
        with pytest.raises(OSError, match="closed"):
            a.recv()
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert a.closed
    with pytest.raises(EOFError):
        b.recv()  # no one holds end a any more
    again = mmring.Connection.open(name(), "a")  # its role is free
    b.send("again")
    assert again.recv() == "again"
