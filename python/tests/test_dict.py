import collections.abc
import functools
import os
import pickle
import signal
import sys
import threading
import time

import pytest

import mmring
from conftest import join_all


# ---- children (top level: spawn imports them) ----

def _count_and_claim(d, i, n):
    # Each child: n atomic increments of one key, a nested-dict counter, and
    # one race for "first" (setdefault is atomic: every child sees the winner).
    for _ in range(n):
        d.update_key("count", lambda v: v + 1, default=0)
        d.update_key("nested", lambda m: {**m, "x": m["x"] + 1}, default={"x": 0})
    got = d.setdefault("first", i)
    d.update_key("got", lambda seen: seen + [got], default=[])


def _hold(started, old):
    # Inside update_key's fn: say so, then never return (the parent kills us).
    started.set()
    time.sleep(60)
    return old + 1


def _update_and_hang(d, started):
    d.update_key("k", functools.partial(_hold, started))


def _write_from_child(d):
    d["child"] = {"pid": os.getpid()}
    d.update_key("n", lambda v: v * 10)


# ---- one process ----

def test_the_dict_methods(name):
    d = mmring.Dict(name(), capacity=16, key_size=16, value_size=256)
    assert len(d) == 0 and list(d) == [] and d.copy() == {} and d == {}
    d["a"] = [1, 2]
    d["b"] = {"x": 1}
    assert d["a"] == [1, 2] and d.get("b") == {"x": 1}
    assert d.get("zz") is None and d.get("zz", 7) == 7
    assert "a" in d and "zz" not in d
    assert len(d) == 2
    d["a"] = "replaced"
    assert d["a"] == "replaced" and len(d) == 2
    with pytest.raises(KeyError) as e:
        d["zz"]
    assert e.value.args == ("zz",)
    del d["b"]
    assert "b" not in d
    with pytest.raises(KeyError):
        del d["b"]
    # setdefault: the stored value if present, else stores and returns default.
    assert d.setdefault("a", 0) == "replaced"
    fresh = [9]
    assert d.setdefault("c", fresh) is fresh and d["c"] == [9]
    assert d.setdefault("none") is None and "none" in d and d["none"] is None
    # pop with and without a default.
    assert d.pop("c") == [9] and "c" not in d
    assert d.pop("c", "dflt") == "dflt"
    with pytest.raises(KeyError):
        d.pop("c")
    with pytest.raises(TypeError):
        d.pop("c", 1, 2)
    # update: a mapping, pairs, keyword arguments, another Dict.
    d.update({"m": 1}, kw=2)
    d.update([("p", 3), ["q", 4]])
    other = mmring.Dict(name("other"), capacity=16, key_size=8, value_size=64)
    other["o"] = 5
    d.update(other)
    assert d.copy() == {"a": "replaced", "none": None, "m": 1, "kw": 2, "p": 3, "q": 4, "o": 5}
    assert sorted(d.keys()) == sorted(d) == ["a", "kw", "m", "none", "o", "p", "q"]
    assert sorted(d.items(), key=lambda kv: kv[0]) == sorted(d.copy().items())
    assert sorted(map(repr, d.values())) == sorted(map(repr, d.copy().values()))
    assert type(d.keys()) is list and type(d.copy()) is dict
    # Equality with dicts and Dicts, not with other things; unhashable as dict.
    assert d == d.copy() and not (d != d.copy())
    assert d != {} and d != dict(d.copy(), a=0)
    assert d != 3 and not (d == [])
    other.clear()
    other.update(d)
    assert other == d
    with pytest.raises(TypeError):
        hash(d)
    assert isinstance(d, collections.abc.MutableMapping)
    # popitem until empty.
    left = d.copy()
    while len(d):
        k, v = d.popitem()
        assert left.pop(k) == v
    assert left == {}
    with pytest.raises(KeyError):
        d.popitem()
    d.update(x=1, y=2)
    d.clear()
    assert len(d) == 0 and d.keys() == []
    assert (d.capacity, d.value_size) == (16, 256) and d.key_size >= 16
    assert d.name == name() and d.path == name()
    assert repr(d) == f'mmring.Dict("{name()}")'


def test_update_key_reads_modifies_and_writes_one_entry(name):
    d = mmring.Dict(name(), capacity=8, key_size=8, value_size=128)
    # Absent: starts from default (None unless given), and is added.
    assert d.update_key("n", lambda v: (v or 0) + 1) == 1
    assert d.update_key("n", lambda v: v + 1) == 2 and d["n"] == 2
    assert d.update_key("m", lambda m: {**m, "x": m["x"] + 1}, default={"x": 10}) == {"x": 11}
    assert d.update_key("m", lambda m: {**m, "x": m["x"] + 1}, default={"x": 10}) == {"x": 12}
    # fn gets a fresh copy: mutating it in place and returning it is fine,
    # and the caller's default is never touched.
    default = []
    assert d.update_key("l", lambda v: v.append(1) or v, default=default) == [1]
    assert d.update_key("l", lambda v: v.append(2) or v, default=default) == [1, 2]
    assert default == []
    # fn returns the very object it made.
    made = ["made"]
    assert d.update_key("f", lambda v: made) is made
    # Reading the dict inside fn is fine; writing it is refused (the entry is held).
    assert d.update_key("n", lambda v: v + d["m"]["x"]) == 14
    with pytest.raises(RuntimeError, match="inside its own update_key"):
        d.update_key("n", lambda v: d.__setitem__("other", 1))
    with pytest.raises(RuntimeError):
        d.update_key("n", lambda v: d.update_key("n", lambda w: w))
    assert d["n"] == 14 and "other" not in d
    d["other"] = 1  # and writable again afterwards
    with pytest.raises(TypeError, match="callable"):
        d.update_key("n", 5)


def test_update_key_whose_fn_fails_writes_nothing(name):
    d = mmring.Dict(name(), capacity=8, key_size=8, value_size=64)
    d["k"] = {"v": 1}
    calls = []

    def boom(v):
        calls.append(v)
        raise ZeroDivisionError("no")

    with pytest.raises(ZeroDivisionError):
        d.update_key("k", boom)
    assert calls == [{"v": 1}], "fn ran exactly once"
    assert d["k"] == {"v": 1}
    # Absent key, fn raising: still absent.
    with pytest.raises(ZeroDivisionError):
        d.update_key("absent", boom, default=0)
    assert "absent" not in d and len(d) == 1
    # A result that does not pickle, or is too large: nothing written.
    with pytest.raises(Exception, match="pickle|lambda"):
        d.update_key("k", lambda v: (lambda: 1))
    with pytest.raises(ValueError, match="value_size of 64"):
        d.update_key("k", lambda v: "x" * 100)
    with pytest.raises(ValueError):
        d.update_key("absent", lambda v: "x" * 100)
    assert d["k"] == {"v": 1} and "absent" not in d
    assert d.update_key("k", lambda v: {"v": v["v"] + 1}) == {"v": 2}


def test_threads_updating_one_key_lose_nothing(name):
    # A tiny switch interval hands the GIL over inside fn, while the entry is
    # held: a waiting thread must wait without the GIL, or nothing progresses.
    d = mmring.Dict(name(), capacity=8, key_size=8, value_size=64)
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        ts = [threading.Thread(target=lambda: [d.update_key("c", lambda v: v + 1, default=0) for _ in range(500)])
              for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        assert not any(t.is_alive() for t in ts)
    finally:
        sys.setswitchinterval(old)
    assert d["c"] == 2000


def test_keys_are_encoded_canonically(name):
    d = mmring.Dict(name(), capacity=64, key_size=24, value_size=64)
    d["1"] = "str"
    d[b"1"] = "bytes"
    d[1] = "int"
    assert len(d) == 3 and (d["1"], d[b"1"], d[1]) == ("str", "bytes", "int")
    # True is 1 and False is 0, as in a dict; they come back as ints.
    assert d[True] == "int"
    d[False] = "zero"
    assert d[0] == "zero" and False in d
    assert {type(k) for k in d.keys()} == {str, bytes, int}
    assert sorted(k for k in d if type(k) is int) == [0, 1]
    # Ints of every size and sign round-trip, each its own key.
    ints = [-1, 127, 128, -128, -129, 255, 256, 2**63 - 1, -2**63, 2**63, -2**63 - 1, 2**64, 10**40, -10**40]
    for i in ints:
        d[i] = i
    for i in ints:
        assert d[i] == i
    assert sorted(k for k in d.keys() if type(k) is int and k not in (0, 1)) == sorted(ints)
    # Empty and non-ASCII keys.
    d[""] = "empty str"
    d[b""] = "empty bytes"
    d["häß"] = "utf8"
    assert (d[""], d[b""], d["häß"]) == ("empty str", "empty bytes", "utf8")
    assert "häß".encode() not in d
    # Subclasses are their base type's key.
    class S(str):
        pass
    assert d[S("1")] == "str"
    # Other types: TypeError, in every method.
    for bad in (1.0, None, (1,), ["x"], bytearray(b"1")):
        with pytest.raises(TypeError, match="str, bytes or int"):
            d[bad] = 1
        with pytest.raises(TypeError):
            bad in d
        with pytest.raises(TypeError):
            d.get(bad)


def test_oversized_keys_and_values_are_refused_and_nothing_is_lost(name):
    d = mmring.Dict(name(), capacity=8, key_size=8, value_size=32)
    size = d.key_size  # the real bound (rounded up to whole words)
    d["k" * size] = 1
    d["v"] = "small"
    with pytest.raises(ValueError, match=f"key_size of {size}"):
        d["k" * (size + 1)] = 1
    with pytest.raises(ValueError):
        d["k" * (size + 1)]
    with pytest.raises(ValueError):
        d.update_key("é" * size, lambda v: 1)  # 2 bytes each in UTF-8
    with pytest.raises(ValueError):
        d[2 ** (8 * size)] = 1
    with pytest.raises(ValueError, match=r"pickles to \d+ bytes, more than the dict's value_size of 32"):
        d["v"] = "x" * 100
    with pytest.raises(ValueError):
        d.setdefault("new", "x" * 100)
    # update checks everything first: nothing of a bad batch is stored.
    with pytest.raises(ValueError):
        d.update({"ok": 1, "big": "x" * 100})
    with pytest.raises(TypeError):
        d.update({"ok": 1, 2.5: 1})
    with pytest.raises(ValueError, match="length 3"):
        d.update([("ok", 1), ("a", 2, 3)])
    assert d.copy() == {"k" * size: 1, "v": "small"}


def test_capacity_bounds_the_keys_present_at_once(name):
    d = mmring.Dict(name(), capacity=8, key_size=8, value_size=32)
    # 100 times the capacity in distinct keys, at most 8 at once.
    for i in range(800):
        d[i] = -i
        if i >= 7:
            assert d.pop(i - 7) == -(i - 7)
    assert len(d) == 7
    d["last"] = 1
    with pytest.raises(mmring.DictFullError, match="full: all 8 entries") as e:
        d["one too many"] = 2
    assert isinstance(e.value, MemoryError)
    with pytest.raises(mmring.DictFullError):
        d.update_key("one too many", lambda v: 1)
    with pytest.raises(mmring.DictFullError):
        d.setdefault("one too many", 1)
    # Nothing lost, existing keys still writable, and a freed entry is reused.
    assert d.copy() == dict({i: -i for i in range(793, 800)}, last=1)
    d[799] = "replaced"
    del d["last"]
    d["one too many"] = 2
    assert len(d) == 8 and d["one too many"] == 2
    # Any positive capacity; rounded up to a power of two.
    assert mmring.Dict(name("c"), capacity=1000).capacity == 1024


def test_shapes_names_and_arguments(name):
    d = mmring.Dict(name(), capacity=16, key_size=16, value_size=100)
    d["kept"] = 1
    # Same shape: opened, never reset. Dict.open takes whatever shape is there.
    again = mmring.Dict(name(), capacity=16, key_size=16, value_size=100)
    assert again["kept"] == 1
    opened = mmring.Dict.open(name())
    assert (opened.capacity, opened.key_size, opened.value_size) == (d.capacity, d.key_size, d.value_size)
    assert opened["kept"] == 1
    for shape in ({"capacity": 32}, {"value_size": 200}, {"key_size": 200}):
        args = dict({"capacity": 16, "key_size": 16, "value_size": 100}, **shape)
        with pytest.raises(ValueError, match="exists with capacity=16") as e:
            mmring.Dict(name(), **args)
        assert "asked for capacity=" in str(e.value)
    assert d["kept"] == 1
    with pytest.raises(FileNotFoundError):
        mmring.Dict.open(name("absent"))
    mmring.Event(name("ev"))
    with pytest.raises(mmring.WrongKindError):
        mmring.Dict(name("ev"))
    with pytest.raises(mmring.WrongKindError):
        mmring.Dict.open(name("ev"))
    for bad in ({"capacity": 0}, {"capacity": -1}, {"capacity": 2**25}, {"key_size": 0}, {"key_size": 256},
                {"value_size": 0}, {"value_size": 4097}):
        with pytest.raises(ValueError):
            mmring.Dict(name("bad"), **bad)
    assert not os.path.exists(name("bad"))


def test_an_unnamed_dict_removes_its_file_when_collected():
    d = mmring.Dict(capacity=4, value_size=16)
    path = d.path
    d[1] = 1
    assert os.path.exists(path)
    del d
    assert not os.path.exists(path)


def test_pickles_as_its_path(ctx, name):
    d = mmring.Dict(name(), capacity=8, key_size=8, value_size=64)
    copy = pickle.loads(pickle.dumps(d))
    assert copy.path == d.path and copy.capacity == 8
    d["n"] = 4
    assert copy["n"] == 4
    p = ctx.Process(target=_write_from_child, args=(d,))
    p.start()
    assert join_all([p]) == [0]
    assert d["n"] == 40 and d["child"] == {"pid": p.pid}


# ---- several processes ----

def test_update_key_from_4_processes_sums_exactly(ctx, name):
    d = mmring.Dict(name(), capacity=16, key_size=8, value_size=256)
    n = 300
    procs = [ctx.Process(target=_count_and_claim, args=(d, i, n)) for i in range(4)]
    for p in procs:
        p.start()
    assert join_all(procs) == [0] * 4
    assert d["count"] == 4 * n
    assert d["nested"] == {"x": 4 * n}
    # setdefault is atomic: one winner, seen by all four.
    assert d["got"] == [d["first"]] * 4 and d["first"] in range(4)


def test_a_process_killed_inside_fn_leaves_the_value_and_the_lock_is_taken_over(ctx, name):
    d = mmring.Dict(name(), capacity=8, key_size=8, value_size=64)
    d["k"] = 1
    started = mmring.Event(name("started"))
    p = ctx.Process(target=_update_and_hang, args=(d, started))
    p.start()
    try:
        assert started.wait(30), "the child never entered fn"
        # The child holds the entry inside fn: readers are not blocked, nor
        # are other keys; a writer of that key waits, and Ctrl-C interrupts it.
        assert d["k"] == 1 and d.get("k") == 1 and d.items() == [("k", 1)]
        d["other"] = 2
        pid = os.getpid()
        timer = threading.Timer(0.2, lambda: os.kill(pid, signal.SIGINT))
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                d["k"] = 99
        finally:
            timer.join()
        assert d["k"] == 1
    finally:
        p.kill()
        join_all([p])
    # Killed inside fn: nothing written; the next writer takes the lock over.
    assert d["k"] == 1
    assert d.update_key("k", lambda v: v + 1) == 2
    d["k"] = 5
    assert d.copy() == {"k": 5, "other": 2}
