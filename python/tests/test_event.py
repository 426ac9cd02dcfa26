import os
import pickle
import signal
import threading
import time

import pytest

import mmring
from conftest import join_all


def _wait_then_flag(ev, done):
    # The child got both objects by fork or by pickling, and opens them on first use.
    if ev.wait(30):
        done.set()


def test_set_wakes_a_waiter_in_another_process(ctx, name):
    ev = mmring.Event(name("go"))
    done = mmring.Event(name("done"))
    p = ctx.Process(target=_wait_then_flag, args=(ev, done))
    p.start()
    time.sleep(0.05)
    assert not done.is_set()
    ev.set()
    assert done.wait(30)
    assert join_all([p]) == [0]


def test_wait_times_out_and_returns_the_flag(name):
    ev = mmring.Event(name())
    t0 = time.monotonic()
    assert ev.wait(0.1) is False
    assert time.monotonic() - t0 >= 0.09
    ev.set()
    assert ev.wait(0) is True and ev.wait() is True
    ev.clear()
    assert not ev.is_set()
    with pytest.raises(ValueError):
        ev.wait(-1)


def test_an_existing_event_is_opened_not_reset(name):
    a = mmring.Event(name())
    a.set()
    b = mmring.Event(name())
    assert b.is_set()
    assert mmring.Event.open(name()).is_set()


def test_open_of_a_missing_name_is_file_not_found(name):
    with pytest.raises(FileNotFoundError):
        mmring.Event.open(name("absent"))


def test_pickles_as_its_path(name):
    ev = mmring.Event(name())
    other = pickle.loads(pickle.dumps(ev))
    assert other.path == ev.path == name()
    ev.set()
    assert other.is_set()


def test_a_bare_name_lives_under_dev_shm_and_remove_unlinks_it():
    bare = f"mmring-pytest-{os.getpid()}-event"
    ev = mmring.Event(bare)
    try:
        assert ev.name == bare and ev.path == f"/dev/shm/{bare}"
        assert os.path.exists(ev.path)
    finally:
        mmring.remove(bare)
    assert not os.path.exists(f"/dev/shm/{bare}")
    with pytest.raises(FileNotFoundError):
        mmring.remove(bare)


def test_an_unnamed_event_removes_its_file_when_collected():
    ev = mmring.Event()
    path = ev.path
    assert os.path.exists(path)
    del ev
    assert not os.path.exists(path)


def test_ctrl_c_interrupts_a_blocked_wait(name):
    ev = mmring.Event(name())
    pid = os.getpid()
    threading.Timer(0.2, lambda: os.kill(pid, signal.SIGINT)).start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        ev.wait()
    assert time.monotonic() - t0 < 5
