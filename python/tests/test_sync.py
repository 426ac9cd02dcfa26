"""Semaphore, BoundedSemaphore, Lock and Barrier across real processes, under
the fork and spawn start methods."""

import os
import pickle
import signal
import threading
import time

import pytest

import mmring
from conftest import join_all

# -------------------------------------------------------------- children


def _bounded_worker(sem, inside, rounds):
    """Enters ``sem`` ``rounds`` times; ``inside`` counts the processes in
    (a second semaphore, released on entry and taken on exit). Exits 1 if
    it ever saw more inside than ``sem``'s permits allow."""
    worst = 0
    for _ in range(rounds):
        with sem:
            inside.release()
            worst = max(worst, inside.get_value())
            time.sleep(0.001)  # widen the window; correctness does not depend on it
            assert inside.acquire(timeout=30)
    os._exit(0 if worst <= 2 else 1)


def _locked_increments(lock, path, rounds):
    """Adds 1 to the number in ``path`` ``rounds`` times, read-modify-write
    under ``lock`` (without it, increments would be lost)."""
    for _ in range(rounds):
        with lock:
            with open(path) as f:
                n = int(f.read())
            with open(path, "w") as f:
                f.write(str(n + 1))


def _hold(obj, acquired, go):
    """Takes ``obj`` (a Lock or semaphore), says so, and keeps it until
    ``go`` is set (or for ever: the test may kill it)."""
    assert obj.acquire(timeout=30)
    acquired.set()
    if go is not None:
        assert go.wait(60)
        obj.release()
    else:
        time.sleep(600)


def _take_and_exit(obj):
    """Takes a permit (or the lock) without waiting and exits normally,
    keeping it: exit code 0 if it got one, 1 if not."""
    os._exit(0 if obj.acquire(block=False) else 1)


def _take_within(obj):
    """Takes a permit, waiting up to 30 s, and exits keeping it."""
    os._exit(0 if obj.acquire(timeout=30) else 1)


def _give(obj):
    """Releases one permit (a signal) and exits."""
    obj.release()


def _barrier_rounds(barrier, rounds, q):
    """Waits ``rounds`` times, reporting (round, index) for each."""
    for r in range(rounds):
        q.put((r, barrier.wait(timeout=60)))


def _barrier_then_broken(barrier):
    """Passes round 0, then expects round 1 to break (a party dies)."""
    barrier.wait(timeout=60)
    try:
        barrier.wait(timeout=60)
    except threading.BrokenBarrierError:
        os._exit(0)
    os._exit(1)


def _barrier_then_sleep(barrier):
    """Passes round 0, then sleeps until killed."""
    barrier.wait(timeout=60)
    time.sleep(600)


def _barrier_expect_broken(barrier):
    """Waits once; exits 0 if the round broke, 1 if it passed."""
    try:
        barrier.wait(timeout=60)
    except threading.BrokenBarrierError:
        os._exit(0)
    os._exit(1)


# -------------------------------------------------------------- semaphores


def test_semaphore_bounds_concurrency_across_processes(ctx, name):
    sem = mmring.Semaphore(name("slots"), 2)
    inside = mmring.Semaphore(name("inside"), 0)
    procs = [ctx.Process(target=_bounded_worker, args=(sem, inside, 25)) for _ in range(3)]
    for p in procs:
        p.start()
    assert join_all(procs) == [0, 0, 0]
    assert sem.get_value() == 2
    assert inside.get_value() == 0


def test_semaphore_acquire_timeout_and_nonblocking(name):
    s = mmring.Semaphore(name("s"), 0)
    assert s.acquire(block=False) is False
    t0 = time.monotonic()
    assert s.acquire(timeout=0.05) is False
    assert time.monotonic() - t0 >= 0.05
    assert s.acquire(True, 0) is False
    s.release()
    s.release()
    assert s.get_value() == 2
    assert s.acquire(block=False) is True
    assert s.acquire(timeout=30) is True
    assert s.get_value() == 0
    with pytest.raises(ValueError):
        s.acquire(timeout=-1)
    with pytest.raises(ValueError):
        mmring.Semaphore(name("neg"), -1)
    # Opening again keeps the permits (value applies at creation only).
    s.release()
    assert mmring.Semaphore(name("s"), 5).get_value() == 1


def test_bounded_semaphore_release_past_bound_raises(name):
    bs = mmring.BoundedSemaphore(name("b"), 2)
    assert isinstance(bs, mmring.Semaphore)  # a subclass, as in multiprocessing
    with pytest.raises(ValueError, match="released too many times"):
        bs.release()
    assert bs.get_value() == 2
    with bs:
        assert bs.get_value() == 1
    assert bs.acquire() and bs.acquire()
    assert not bs.acquire(block=False)
    bs.release()
    bs.release()
    with pytest.raises(ValueError):
        bs.release()
    assert bs.get_value() == 2
    # The shape is checked: another bound, or unbounded, is refused.
    with pytest.raises(ValueError, match="holds a BoundedSemaphore of 2, not a BoundedSemaphore of 3"):
        mmring.BoundedSemaphore(name("b"), 3)
    with pytest.raises(mmring.WrongKindError):
        mmring.Semaphore(name("b"), 2)
    with pytest.raises(mmring.WrongKindError):
        mmring.Semaphore.open(name("b"))
    with pytest.raises(mmring.WrongKindError):
        mmring.Lock.open(name("b"))
    with pytest.raises(FileNotFoundError):
        mmring.BoundedSemaphore.open(name("absent"))
    assert mmring.BoundedSemaphore.open(name("b")).get_value() == 2


@pytest.mark.parametrize("kind", ["Semaphore", "BoundedSemaphore"])
def test_permits_of_exited_processes_stay_taken(ctx, name, kind):
    # multiprocessing's semantics: three processes in turn take a permit
    # of two without waiting and exit keeping it: the third finds none.
    s = getattr(mmring, kind)(name("s"), 2)
    for expected in (0, 0, 1):
        p = ctx.Process(target=_take_and_exit, args=(s,))
        p.start()
        assert join_all([p]) == [expected]
    assert s.get_value() == 0
    assert s.acquire(block=False) is False
    # Longer than a blocked acquire's slice (50 ms), after which a
    # recovering acquire would have given the permits back.
    assert s.acquire(timeout=0.2) is False
    # Released by another process than the takers: fine, as multiprocessing.
    s.release()
    assert s.get_value() == 1


def test_a_semaphore_signals_between_processes(ctx, name):
    # One process releases, another acquires and keeps: the permit is
    # consumed for good, even after both exited.
    s = mmring.Semaphore(name("sig"), 0)
    taker = ctx.Process(target=_take_within, args=(s,))
    taker.start()
    giver = ctx.Process(target=_give, args=(s,))
    giver.start()
    assert join_all([giver, taker]) == [0, 0]
    assert s.get_value() == 0
    assert s.acquire(timeout=0.2) is False


def test_a_killed_bounded_semaphore_holder_keeps_its_permit(ctx, name):
    s = mmring.BoundedSemaphore(name("s"), 1)
    acquired = mmring.Event(name("acq"))
    p = ctx.Process(target=_hold, args=(s, acquired, None))
    p.start()
    assert acquired.wait(60)
    p.kill()
    p.join(60)
    assert s.acquire(block=False) is False
    assert s.acquire(timeout=0.2) is False
    # Anyone may give it back (a Lock would have recovered it).
    s.release()
    assert s.acquire(block=False) is True


def test_the_kinds_refuse_each_other(name):
    lock, sem = mmring.Lock(name("l")), mmring.Semaphore(name("s"), 1)
    bs = mmring.BoundedSemaphore(name("b"), 3)
    cases = [
        (mmring.Semaphore, (name("l"),), "holds a Lock or a BoundedSemaphore of 1, not a Semaphore"),
        (mmring.Semaphore, (name("b"),), "holds a BoundedSemaphore of 3, not a Semaphore"),
        (mmring.Lock, (name("s"),), "holds an unbounded Semaphore, not a Lock"),
        (mmring.Lock, (name("b"),), "holds a BoundedSemaphore of 3, not a Lock"),
        (mmring.BoundedSemaphore, (name("s"), 1), "holds an unbounded Semaphore, not a BoundedSemaphore of 1"),
    ]
    for cls, args, msg in cases:
        with pytest.raises(mmring.WrongKindError, match=msg):
            cls(*args)
        with pytest.raises(mmring.WrongKindError):
            cls.open(args[0])
    # A Lock and a BoundedSemaphore of 1 share their file's shape.
    assert mmring.BoundedSemaphore(name("l"), 1).get_value() == 1
    with pytest.raises(ValueError, match="holds a Lock or a BoundedSemaphore of 1, not a BoundedSemaphore of 2"):
        mmring.BoundedSemaphore(name("l"), 2)
    with pytest.raises(ValueError):
        mmring.BoundedSemaphore(name("l"), 0)
    # Nothing changed.
    assert (lock.locked(), sem.get_value(), bs.get_value()) == (False, 1, 3)


# -------------------------------------------------------------- lock


def test_lock_mutual_exclusion_across_processes(ctx, name):
    lock = mmring.Lock(name("l"))
    path = name("count.txt")
    with open(path, "w") as f:
        f.write("0")
    procs = [ctx.Process(target=_locked_increments, args=(lock, path, 40)) for _ in range(3)]
    for p in procs:
        p.start()
    assert join_all(procs) == [0, 0, 0]
    with open(path) as f:
        assert int(f.read()) == 120
    assert not lock.locked()


def test_lock_release_rules(ctx, name):
    lock = mmring.Lock(name("l"))
    with pytest.raises(ValueError, match="released too many times"):
        lock.release()
    acquired, go = mmring.Event(name("acq")), mmring.Event(name("go"))
    p = ctx.Process(target=_hold, args=(lock, acquired, go))
    p.start()
    assert acquired.wait(60)
    assert lock.locked()
    # Held by another process: not ours to release.
    with pytest.raises(ValueError, match="held by process %d" % p.pid):
        lock.release()
    assert lock.acquire(block=False) is False
    go.set()
    assert lock.acquire(timeout=30) is True
    assert join_all([p]) == [0]
    # Any thread of the holding process may release it.
    t = threading.Thread(target=lock.release)
    t.start()
    t.join()
    assert not lock.locked()


def test_a_lock_whose_holder_exited_is_recovered(ctx, name):
    lock = mmring.Lock(name("l"))
    p = ctx.Process(target=_take_and_exit, args=(lock,))
    p.start()
    assert join_all([p]) == [0]
    assert lock.locked()
    assert lock.acquire(block=False) is True
    lock.release()
    assert not lock.locked()


def test_a_killed_lock_holder_is_recovered(ctx, name):
    lock = mmring.Lock(name("l"))
    acquired = mmring.Event(name("acq"))
    p = ctx.Process(target=_hold, args=(lock, acquired, None))
    p.start()
    assert acquired.wait(60)
    assert not lock.acquire(timeout=0.05)
    p.kill()
    p.join(60)
    # The blocked acquire finds the holder dead and takes the lock.
    assert lock.acquire(timeout=30) is True
    assert lock.locked()
    lock.release()
    # Released by its new holder: free again, no extra permit.
    assert lock.acquire(block=False) and not lock.acquire(block=False)
    lock.release()


# -------------------------------------------------------------- barrier


def test_barrier_four_parties_distinct_indices_over_rounds(ctx, name):
    """The parent and three children (under fork, children that never open
    the barrier: they use the inherited object) wait three rounds."""
    b = mmring.Barrier(name("meet"), parties=4)
    q = ctx.Queue()
    rounds = 3
    procs = [ctx.Process(target=_barrier_rounds, args=(b, rounds, q)) for _ in range(3)]
    for p in procs:
        p.start()
    mine = [b.wait(timeout=60) for _ in range(rounds)]
    seen = {r: [mine[r]] for r in range(rounds)}
    for _ in range(3 * rounds):
        r, index = q.get(timeout=60)
        seen[r].append(index)
    assert join_all(procs) == [0, 0, 0]
    for r in range(rounds):
        assert sorted(seen[r]) == [0, 1, 2, 3], (r, seen)
    assert b.parties == 4 and b.n_waiting == 0 and not b.broken


def test_a_killed_barrier_party_breaks_the_round(ctx, name):
    """Three parties pass round 0; one (a fork child uses the inherited
    object: registered on first use) is killed; the other two get
    BrokenBarrierError in round 1 instead of hanging."""
    b = mmring.Barrier(name("meet"), parties=3)
    victim = ctx.Process(target=_barrier_then_sleep, args=(b,))
    other = ctx.Process(target=_barrier_then_broken, args=(b,))
    victim.start()
    other.start()
    b.wait(timeout=60)
    victim.kill()
    victim.join(60)
    t0 = time.monotonic()
    with pytest.raises(threading.BrokenBarrierError):
        b.wait(timeout=60)
    assert time.monotonic() - t0 < 50, "broken by the timeout, not by the death"
    assert join_all([other]) == [0]
    assert b.broken
    b.reset()
    assert not b.broken


def test_a_party_that_exits_normally_leaves_the_barrier(ctx, name):
    """A child that passes a round and ends normally unregisters at exit:
    a wait in the next round times out (a party that died without leaving
    would break it within 50 ms, with another message), and a new child
    then passes a round with the parent."""
    b = mmring.Barrier(name("meet"), parties=2)
    q = ctx.Queue()
    p = ctx.Process(target=_barrier_rounds, args=(b, 1, q))
    p.start()
    b.wait(timeout=60)
    assert q.get(timeout=60)[0] == 0
    assert join_all([p]) == [0]
    with pytest.raises(threading.BrokenBarrierError, match="timed out"):
        b.wait(timeout=0.5)
    b.reset()
    p = ctx.Process(target=_barrier_rounds, args=(b, 1, q))
    p.start()
    b.wait(timeout=60)
    assert q.get(timeout=60)[0] == 0
    assert join_all([p]) == [0]


def test_barrier_timeout_breaks_it_for_everyone_until_reset(ctx, name):
    b = mmring.Barrier(name("meet"), parties=3)
    p = ctx.Process(target=_barrier_expect_broken, args=(b,))
    p.start()
    # Wait until the child is in the round, then time out in it.
    deadline = time.monotonic() + 60
    while b.n_waiting < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert b.n_waiting == 1
    with pytest.raises(threading.BrokenBarrierError):
        b.wait(timeout=0.05)
    assert join_all([p]) == [0]
    assert b.broken and b.n_waiting == 0
    with pytest.raises(threading.BrokenBarrierError):
        b.wait(timeout=30)
    b.reset()
    assert not b.broken and b.n_waiting == 0
    # Usable again; a handle's default timeout applies to wait().
    b2 = mmring.Barrier.open(name("meet"), timeout=0.05)
    with pytest.raises(threading.BrokenBarrierError):
        b2.wait()
    b2.reset()


def test_barrier_abort_and_reset_break_the_waiters(ctx, name):
    b = mmring.Barrier(name("meet"), parties=2)
    for breaker in (b.abort, b.reset):
        p = ctx.Process(target=_barrier_expect_broken, args=(b,))
        p.start()
        deadline = time.monotonic() + 60
        while b.n_waiting < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        breaker()
        assert join_all([p]) == [0]
        b.reset()
        assert not b.broken


def test_barrier_arguments(name):
    with pytest.raises(TypeError):
        mmring.Barrier(name("b"))
    for bad in (0, -1, 65):
        with pytest.raises(ValueError):
            mmring.Barrier(name("b"), parties=bad)
    with pytest.raises(NotImplementedError):
        mmring.Barrier(name("b"), parties=2, action=print)
    with pytest.raises(ValueError):
        mmring.Barrier(name("b"), parties=2, timeout=-1)
    b = mmring.Barrier(name("b"), 2)
    with pytest.raises(ValueError):
        mmring.Barrier(name("b"), parties=3)
    with pytest.raises(mmring.WrongKindError):
        mmring.Lock(name("b"))
    with pytest.raises(FileNotFoundError):
        mmring.Barrier.open(name("absent"))
    one = mmring.Barrier(name("one"), parties=1)
    assert [one.wait() for _ in range(3)] == [0, 0, 0]
    assert b.parties == 2


# -------------------------------------------------------------- signals


def _interrupt_after(pid, entered, ready):
    """Sends SIGINT to ``pid`` once it is about to block (``entered``) and
    ``ready()`` is true; the short pause only makes it likelier that the
    signal finds the call blocked (it raises either way)."""
    assert entered.wait(60)
    deadline = time.monotonic() + 60
    while not ready() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    os.kill(pid, signal.SIGINT)


@pytest.mark.parametrize("kind", ["lock", "semaphore", "barrier"])
def test_ctrl_c_interrupts_a_blocked_wait(name, kind):
    """A blocked call wakes for the signal: with ``timeout=30`` a call that
    did not would return (or raise BrokenBarrierError) instead."""
    if kind == "lock":
        obj = mmring.Lock(name("x"))
        obj.acquire()
        block, ready = lambda: obj.acquire(timeout=30), lambda: True
    elif kind == "semaphore":
        obj = mmring.Semaphore(name("x"), 0)
        block, ready = lambda: obj.acquire(timeout=30), lambda: True
    else:
        obj = mmring.Barrier(name("x"), parties=2)
        block, ready = lambda: obj.wait(timeout=30), lambda: obj.n_waiting == 1
    entered = threading.Event()
    t = threading.Thread(target=_interrupt_after, args=(os.getpid(), entered, ready))
    t.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            entered.set()
            block()
    finally:
        t.join()
    if kind == "barrier":
        # The interrupted party broke its round for the others.
        assert obj.broken


# -------------------------------------------------------------- pickling


def test_pickling_round_trips_every_kind(name):
    objs = [
        mmring.Semaphore(name("s"), 3),
        mmring.BoundedSemaphore(name("bs"), 2),
        mmring.Lock(name("l")),
        mmring.Barrier(name("b"), parties=2, timeout=5),
    ]
    for obj in objs:
        back = pickle.loads(pickle.dumps(obj))
        assert type(back) is type(obj)
        assert back.path == obj.path and back.name == obj.path
    s, bs, lock, b = [pickle.loads(pickle.dumps(o)) for o in objs]
    assert s.get_value() == 3 and bs.get_value() == 2
    assert lock.acquire(block=False) and objs[2].locked()
    lock.release()
    assert b.parties == 2
