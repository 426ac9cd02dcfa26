"""mmring.Queue, JoinableQueue and SimpleQueue: multiprocessing's semantics
(Full/Empty, timeouts, task_done/join) across real processes under fork and
spawn, shutdown instead of sentinels, a producer killed mid-stream, and the
file's type identity as seen from Rust."""

import os
import pickle
import queue
import shutil
import signal
import subprocess
import threading
import time

import pytest

import mmring
from conftest import join_all

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# --- children (top level: spawn imports them) ---------------------------------


def _produce_then_shut_down(q, n):
    for i in range(n):
        q.put(i)
    q.shutdown()


def _consume_until_shutdown(q, results):
    got = []
    while True:
        try:
            got.append(q.get(timeout=60))
        except mmring.ShutDown:
            break
    results.put(got)


def _get_expecting_shutdown(q, ready):
    ready.set()
    try:
        q.get(timeout=60)
    except mmring.ShutDown:
        os._exit(0)
    os._exit(1)  # an item, or queue.Empty after a minute: not woken


def _put_counting(q, progress):
    i = 0
    while True:
        q.put(i)
        progress.value = i  # after the put returned
        i += 1


def _put_until_shutdown(q, index, returned):
    i = 0
    while True:
        try:
            q.put((index, i))
        except mmring.ShutDown:
            return
        returned.value = i
        i += 1


def _work_on_tasks(q, n):
    for _ in range(n):
        q.get(timeout=60)
        q.task_done()


def _simple_echo(sq, replies):
    replies.put(sq.get() * 2)


# --- across processes --------------------------------------------------------


def test_one_producer_several_consumers_each_item_exactly_once(ctx, name):
    n, consumers = 2000, 2
    # maxsize 7 (a ring of 8): the producer waits for room over and over.
    q = mmring.Queue(name("jobs"), maxsize=7, item_size=64)
    results = mmring.Queue(name("results"), maxsize=consumers, item_size=65536)
    procs = [ctx.Process(target=_consume_until_shutdown, args=(q, results)) for _ in range(consumers)]
    procs.append(ctx.Process(target=_produce_then_shut_down, args=(q, n)))
    for p in procs:
        p.start()
    lists = [results.get(timeout=60) for _ in range(consumers)]
    assert join_all(procs) == [0] * len(procs)
    for got in lists:
        assert got == sorted(got), "each consumer sees the producer's order"
    assert sorted(x for got in lists for x in got) == list(range(n))
    with pytest.raises(mmring.ShutDown):
        q.put(n)
    with pytest.raises(mmring.ShutDown):
        q.get_nowait()
    assert q.is_shutdown


def test_shutdown_wakes_every_blocked_getter_in_several_processes(ctx, name):
    q = mmring.Queue(name("q"), maxsize=4)
    readies = [mmring.Event(name(f"ready{i}")) for i in range(3)]
    procs = [ctx.Process(target=_get_expecting_shutdown, args=(q, r)) for r in readies]
    for p in procs:
        p.start()
    for r in readies:
        assert r.wait(60)
    # Not for correctness (a getter that comes late raises ShutDown just
    # the same): gives the getters time to be asleep in get().
    time.sleep(0.1)
    q.shutdown()
    assert join_all(procs) == [0, 0, 0]


def test_shutdown_mid_stream_strands_no_put_that_returned(ctx, name):
    # Two producers put flat out; the queue is shut down under them. Every
    # put that returned is got before ShutDown; the put that raised is not.
    q = mmring.Queue(name("q"), maxsize=8, item_size=32)
    returned = [ctx.RawValue("q", -1) for _ in range(2)]
    procs = [ctx.Process(target=_put_until_shutdown, args=(q, i, r)) for i, r in enumerate(returned)]
    for p in procs:
        p.start()
    got = [[], []]
    while len(got[0]) + len(got[1]) < 400:
        index, i = q.get(timeout=60)
        got[index].append(i)
    q.shutdown()
    while True:
        try:
            index, i = q.get(timeout=60)
        except mmring.ShutDown:
            break
        got[index].append(i)
    assert join_all(procs) == [0, 0]
    for mine, last in zip(got, returned):
        assert mine == list(range(last.value + 1))


def test_a_sigkilled_producer_loses_no_item_whose_put_returned(ctx, name):
    q = mmring.Queue(name("q"), maxsize=4, item_size=32)
    progress = ctx.RawValue("q", -1)  # the last item whose put returned
    p = ctx.Process(target=_put_counting, args=(q, progress))
    p.start()
    got = []
    # Take items while the producer runs flat out, then kill it mid-stream
    # (in a put, or between two).
    while progress.value < 300:
        got.append(q.get(timeout=60))
    os.kill(p.pid, signal.SIGKILL)
    p.join(60)
    assert p.exitcode == -signal.SIGKILL
    returned = progress.value
    while True:
        try:
            got.append(q.get_nowait())
        except queue.Empty:
            break
    # One producer: its items in order, none twice, none skipped; every
    # put that returned is there, and at most the one it was killed in.
    assert got == list(range(len(got)))
    assert returned + 1 <= len(got) <= returned + 2
    # The queue goes on: a put in flight when it died is recovered.
    for i in range(10):
        q.put(("after", i), timeout=30)
        assert q.get(timeout=30) == ("after", i)
    assert q.qsize() == 0 and q.empty()


def test_task_done_and_join_across_processes(ctx, name):
    jq = mmring.JoinableQueue(name("tasks"), maxsize=8)
    for i in range(5):
        jq.put(i)
    assert jq.unfinished_tasks == 5
    assert jq.join(timeout=0.05) is False
    p = ctx.Process(target=_work_on_tasks, args=(jq, 5))
    p.start()
    assert jq.join(timeout=60) is True
    assert join_all([p]) == [0]
    assert jq.unfinished_tasks == 0 and jq.join() is True
    with pytest.raises(ValueError, match="too many times"):
        jq.task_done()
    # Still counts correctly after the refused call.
    jq.put("x")
    assert jq.join(0) is False
    assert jq.get() == "x"
    jq.task_done()
    assert jq.join(0) is True


def test_simple_queue_across_processes(ctx, name):
    sq = mmring.SimpleQueue(name("s"))
    replies = mmring.SimpleQueue(name("r"))
    assert sq.empty()
    p = ctx.Process(target=_simple_echo, args=(sq, replies))
    p.start()
    sq.put([1, 2])
    assert replies.get() == [1, 2, 1, 2]
    assert join_all([p]) == [0]
    assert sq.empty()
    sq.close()
    with pytest.raises(ValueError, match="closed"):
        sq.put(1)


# --- one process ---------------------------------------------------------------


def test_full_and_empty_with_timeouts_and_block_false(name):
    q = mmring.Queue(name(), maxsize=3)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(block=False, timeout=-1)  # the timeout is ignored, as in queue.Queue
    t0 = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.1)
    assert time.monotonic() - t0 >= 0.09
    with pytest.raises(queue.Empty):
        q.get(timeout=0)
    for i in range(3):
        q.put_nowait(i)
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    with pytest.raises(queue.Full):
        q.put(3, block=False)
    t0 = time.monotonic()
    with pytest.raises(queue.Full):
        q.put(3, timeout=0.1)
    assert time.monotonic() - t0 >= 0.09
    with pytest.raises(ValueError):
        q.put(3, timeout=-1)
    with pytest.raises(ValueError):
        q.get(timeout=-1)
    assert [q.get_nowait() for _ in range(3)] == [0, 1, 2]


@pytest.mark.parametrize("maxsize", [1, 5, 6, 1000])
def test_full_comes_at_exactly_maxsize(name, maxsize):
    q = mmring.Queue(name(), maxsize=maxsize, item_size=32)
    assert q.maxsize == maxsize and q.item_size == 32
    for i in range(maxsize):
        assert (q.qsize(), q.full(), q.empty()) == (i, False, i == 0)
        q.put_nowait(i)
    assert (q.qsize(), q.full(), q.empty()) == (maxsize, True, False)
    with pytest.raises(queue.Full):
        q.put_nowait(-1)
    assert q.get_nowait() == 0
    assert (q.qsize(), q.full()) == (maxsize - 1, False)
    q.put_nowait(maxsize)
    assert q.full()
    assert [q.get_nowait() for _ in range(maxsize)] == list(range(1, maxsize + 1))
    assert q.empty()


def test_a_blocked_put_wakes_when_a_get_makes_room(name):
    q = mmring.Queue(name(), maxsize=1)
    q.put("first")
    t = threading.Thread(target=q.put, args=("second",))
    t.start()  # blocks with the GIL released: this thread goes on
    assert q.get(timeout=30) == "first"
    assert q.get(timeout=30) == "second"
    t.join(30)
    assert not t.is_alive()


def test_shutdown_drains_then_raises_and_wakes_a_blocked_put(name):
    q = mmring.Queue(name(), maxsize=2)
    q.put(1)
    q.put(2)
    errors = []

    def put_blocked():
        try:
            q.put(3, timeout=60)
        except BaseException as e:  # noqa: BLE001 (the test reports it)
            errors.append(e)

    t = threading.Thread(target=put_blocked)
    t.start()
    time.sleep(0.05)  # not for correctness: either way put raises ShutDown
    q.shutdown()
    t.join(30)
    assert len(errors) == 1 and isinstance(errors[0], mmring.ShutDown)
    assert issubclass(mmring.ShutDown, Exception)
    with pytest.raises(mmring.ShutDown):
        q.put_nowait(4)
    assert q.get() == 1 and q.get_nowait() == 2
    with pytest.raises(mmring.ShutDown):
        q.get()
    with pytest.raises(mmring.ShutDown):
        q.get(timeout=1)
    # Another handle on the file sees it shut down too.
    assert mmring.Queue.open(name()).is_shutdown


def test_shutdown_immediate_discards_and_finishes_the_tasks(name):
    jq = mmring.JoinableQueue(name(), maxsize=4)
    for i in range(3):
        jq.put(i)
    jq.shutdown(immediate=True)
    with pytest.raises(mmring.ShutDown):
        jq.get_nowait()
    assert jq.join(0) is True


def test_an_oversized_item_is_refused_naming_both_sizes_and_nothing_is_lost(name):
    q = mmring.Queue(name(), maxsize=4, item_size=64)
    q.put("before")
    big = b"x" * 100
    pickled = len(pickle.dumps(big, protocol=5))
    with pytest.raises(ValueError) as e:
        q.put(big)
    assert f"{pickled} bytes" in str(e.value) and "item_size is 64" in str(e.value)
    with pytest.raises(ValueError, match="65 bytes"):
        q.put_bytes(b"y" * 65)
    q.put_bytes(b"y" * 64)  # exactly item_size fits
    q.put_bytes(bytearray(b"ba"))
    q.put_bytes(memoryview(b"mv"))
    with pytest.raises(TypeError):
        q.put_bytes("not bytes")
    assert q.qsize() == 4
    assert q.get() == "before"
    assert q.get_bytes() == b"y" * 64
    assert q.get_bytes() == b"ba" and q.get_bytes() == b"mv"
    assert q.empty()


def test_bad_shapes_are_value_errors(name):
    for kwargs in [dict(item_size=0), dict(item_size=65537), dict(maxsize=2**31 + 1)]:
        with pytest.raises(ValueError):
            mmring.Queue(name("bad"), **kwargs)
        assert not os.path.exists(name("bad"))
    with pytest.raises(TypeError, match="name"):
        mmring.Queue(3.5)
    with pytest.raises(TypeError):
        mmring.Queue(5, maxsize=6)


def test_an_existing_queue_is_opened_as_it_is_never_reset(name):
    q = mmring.Queue(name(), maxsize=5, item_size=100)
    q.put("kept")
    # No shape given: whatever the file has; the same shape: fine.
    for again in (mmring.Queue(name()), mmring.Queue(name(), maxsize=5, item_size=100),
                  mmring.Queue(name(), maxsize=0), mmring.Queue.open(name())):
        assert (again.maxsize, again.item_size, again.qsize()) == (5, 100, 1)
    # Another shape: refused, naming both, the file untouched.
    for kwargs in [dict(maxsize=6), dict(item_size=200)]:
        with pytest.raises(mmring.Error) as e:
            mmring.Queue(name(), **kwargs)
        assert "maxsize=5, item_size=100" in str(e.value)
        assert not isinstance(e.value, mmring.WrongKindError)
    assert q.get() == "kept"


def test_defaults_and_maxsize_zero(name):
    q = mmring.Queue(name("a"))
    assert (q.maxsize, q.item_size) == (1024, 4096)
    assert mmring.Queue(name("b"), maxsize=0).maxsize == 1024
    assert mmring.Queue(name("c"), maxsize=-1).maxsize == 1024
    assert mmring.JoinableQueue(name("d")).maxsize == 1024


def test_opening_a_name_as_the_wrong_kind_is_a_clear_error(name):
    q = mmring.Queue(name("q"))
    jq = mmring.JoinableQueue(name("jq"))
    ev = mmring.Event(name("ev"))
    with pytest.raises(mmring.WrongKindError, match="wrong object kind"):
        mmring.Event.open(name("q"))
    with pytest.raises(mmring.WrongKindError, match="wrong object kind"):
        mmring.Event(name("q"))
    for opener in (mmring.Queue, mmring.Queue.open, mmring.JoinableQueue.open, mmring.SimpleQueue):
        with pytest.raises(mmring.WrongKindError):
            opener(name("ev"))
    with pytest.raises(mmring.WrongKindError, match="expected a JoinableQueue"):
        mmring.JoinableQueue(name("q"))
    with pytest.raises(mmring.WrongKindError, match="found a JoinableQueue"):
        mmring.Queue.open(name("jq"))
    with pytest.raises(mmring.WrongKindError):
        mmring.SimpleQueue.open(name("jq"))
    with pytest.raises(FileNotFoundError):
        mmring.Queue.open(name("absent"))
    # A SimpleQueue and a Queue are the same file kind.
    mmring.SimpleQueue.open(name("q")).put("via simple")
    assert q.get_nowait() == "via simple"
    del jq, ev


def test_pickles_as_its_path_and_keeps_its_class(name):
    q = mmring.Queue(name("q"))
    jq = mmring.JoinableQueue(name("jq"))
    sq = mmring.SimpleQueue(name("sq"))
    for obj in (q, jq, sq):
        other = pickle.loads(pickle.dumps(obj))
        assert type(other) is type(obj) and other.path == obj.path
        other.put("x")
        assert obj.get() == "x"
    assert isinstance(jq, mmring.Queue) and repr(jq) == f"mmring.JoinableQueue({name('jq')!r})".replace("'", '"')


def test_close_is_this_handle_only(name):
    q = mmring.Queue(name())
    other = mmring.Queue(name())
    q.put(1)
    q.close()
    q.join_thread()
    q.cancel_join_thread()
    with pytest.raises(ValueError, match="closed"):
        q.put(2)
    with pytest.raises(ValueError, match="closed"):
        q.get()
    assert other.get_nowait() == 1
    other.put(3)
    assert not other.is_shutdown


def test_an_unnamed_queue_removes_its_file_when_collected():
    q = mmring.Queue(8)  # multiprocessing.Queue(maxsize) unchanged
    assert q.maxsize == 8
    path = q.path
    assert os.path.exists(path)
    del q
    assert not os.path.exists(path)


def test_ctrl_c_interrupts_a_blocked_get_and_put(name):
    q = mmring.Queue(name(), maxsize=1)
    pid = os.getpid()

    def interrupted(call):
        timer = threading.Timer(0.2, lambda: os.kill(pid, signal.SIGINT))
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            call()
        timer.join()
        return time.monotonic() - t0

    assert interrupted(q.get) < 5  # empty: get blocks
    q.put_nowait(1)
    assert interrupted(lambda: q.put(2)) < 5  # full: put blocks
    # Nothing half done: the queue holds the one item.
    assert q.qsize() == 1 and q.get_nowait() == 1 and q.empty()


@pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo is not on PATH: cannot run the Rust example")
def test_a_python_queue_is_a_byte_queue_in_rust_and_not_a_u64_queue(name):
    q = mmring.Queue(name("py"), maxsize=6, item_size=200)
    q.put_bytes(b"hello from python")
    q.put(("a", 1))
    run = subprocess.run(
        ["cargo", "run", "--quiet", "--locked", "--example", "python_queue", "--", name("py"), name("u64")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "maxsize 6, item_size 200" in out
    # The refusal names both payloads, by their stable names.
    assert "expected mpmc queue of u64 (8 B, align 8)" in out
    assert "found mpmc byte queue of bytes (200 B, align 1)" in out
    assert q.get_bytes(timeout=30) == b"rust got: hello from python"
    reply = q.get_bytes(timeout=30)
    assert reply.startswith(b"rust got: ") and pickle.loads(reply[10:]) == ("a", 1)
    # And the other way: Rust's Queue<u64> is not a Python Queue.
    with pytest.raises(mmring.WrongKindError) as e:
        mmring.Queue(name("u64"))
    assert "u64 (8 B, align 8)" in str(e.value) and "bytes" in str(e.value)
