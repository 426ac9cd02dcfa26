import ctypes
import math
import os
import pickle
from multiprocessing.sharedctypes import typecode_to_type

import pytest

import mmring
from conftest import join_all

TYPECODES = "bBhHiIlLqQfd"
INT_TYPECODES = "bBhHiIlLqQ"


def _bounds(tc):
    """The range ctypes gives the typecode on this platform."""
    bits = 8 * ctypes.sizeof(typecode_to_type[tc])
    if tc.islower():
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


# ---- children (module level: spawn imports them) ----


def _add_many(v, path, arr, fv, rounds):
    # Half the children get the Value pickled (or forked); the others attach
    # to it by name, which must not reset it.
    if path is not None:
        v = mmring.Value("i", 0, name=path)
    for _ in range(rounds):
        v.fetch_add(1)
        arr.fetch_add(0, 1)  # a 'B' element: wraps at 256
        fv.fetch_add(0.5)


def _try_to_win(ticket, winners, k):
    if ticket.compare_exchange(1, 0):
        winners[k] = 1


def _update_many(v, rounds):
    for _ in range(rounds):
        v.update(lambda x: x + 3)


# ---- across processes ----


def test_fetch_add_from_four_processes_sums_exactly(ctx, name):
    rounds = 1000
    v = mmring.Value("i", 1000, name=name("count"))
    arr = mmring.Array("B", 3, name=name("bytes"))
    fv = mmring.Value("d", 0.0, name=name("float"))
    procs = [
        ctx.Process(target=_add_many, args=(v, name("count") if k % 2 else None, arr, fv, rounds))
        for k in range(4)
    ]
    for p in procs:
        p.start()
    assert join_all(procs) == [0] * 4
    assert v.value == 1000 + 4 * rounds
    assert arr[:] == [(4 * rounds) % 256, 0, 0]
    assert fv.value == 4 * rounds * 0.5


def test_compare_exchange_race_has_exactly_one_winner(ctx, name):
    ticket = mmring.Value("i", 1, name=name("ticket"))
    winners = mmring.Array("B", 4, name=name("winners"))
    procs = [ctx.Process(target=_try_to_win, args=(ticket, winners, k)) for k in range(4)]
    for p in procs:
        p.start()
    assert join_all(procs) == [0] * 4
    assert sum(winners) == 1
    assert ticket.value == 0


def test_update_from_two_processes_loses_nothing(ctx, name):
    v = mmring.Value("q", 0, name=name())
    procs = [ctx.Process(target=_update_many, args=(v, 500)) for _ in range(2)]
    for p in procs:
        p.start()
    assert join_all(procs) == [0, 0]
    assert v.value == 2 * 500 * 3


# ---- Value ----


def test_value_operations(name):
    v = mmring.Value("i", 5, name=name())
    assert v.value == 5 and v.typecode == "i"
    assert v.fetch_add(3) == 5 and v.value == 8
    assert v.fetch_sub(10) == 8 and v.value == -2
    assert v.swap(4) == -2 and v.value == 4
    assert v.fetch_max(9) == 4 and v.fetch_max(1) == 9 and v.value == 9
    assert v.fetch_min(-7) == 9 and v.value == -7
    assert v.compare_exchange(1, 2) is False and v.value == -7
    assert v.compare_exchange(-7, 2) is True and v.value == 2
    v.value = 11
    assert v.value == 11
    assert mmring.Value("d", name=name("zero")).value == 0.0  # the default is 0


def test_update_returns_the_new_value_and_reruns_on_a_race(name):
    v = mmring.Value("h", 1, name=name())
    assert v.update(lambda x: x * 10) == 10
    seen = []

    def racing(x):
        seen.append(x)
        if len(seen) == 1:
            v.value = 100  # another process's write, between the read and the swap
        return x + 1

    assert v.update(racing) == 101
    assert seen == [10, 100] and v.value == 101


def test_update_stores_nothing_when_fn_raises_or_returns_what_cannot_be_stored(name):
    v = mmring.Value("b", 7, name=name())

    def boom(x):
        raise KeyError("no")

    with pytest.raises(KeyError):
        v.update(boom)
    with pytest.raises(OverflowError):
        v.update(lambda x: 1000)
    with pytest.raises(TypeError):
        v.update(lambda x: "eight")
    with pytest.raises(TypeError):
        v.update(lambda x: None)
    assert v.value == 7


@pytest.mark.parametrize("tc", INT_TYPECODES)
def test_every_integer_typecode_round_trips_its_bounds(tc, name):
    lo, hi = _bounds(tc)
    v = mmring.Value(tc, hi, name=name())
    assert v.value == hi
    v.value = lo
    assert v.value == lo
    for bad in (lo - 1, hi + 1, 1 << 200, -(1 << 200)):
        with pytest.raises(OverflowError):
            v.value = bad
        with pytest.raises(OverflowError):
            v.compare_exchange(lo, bad)
    with pytest.raises(OverflowError):
        mmring.Value(tc, hi + 1, name=name("never"))
    assert not os.path.exists(name("never"))
    with pytest.raises(TypeError):
        v.value = 1.0
    assert v.value == lo
    # fetch_add and fetch_sub wrap around, as C's fixed-width arithmetic.
    v.value = hi
    assert v.fetch_add(1) == hi and v.value == lo
    assert v.fetch_sub(1) == lo and v.value == hi
    assert v.fetch_add(-1) == hi and v.value == hi - 1
    with pytest.raises(OverflowError):
        v.fetch_add(1 << 64 if hi < (1 << 64) - 1 else 1 << 65)
    # The file records the element type: opened by name, the same range.
    w = mmring.Value.open(name())
    assert (w.value, _bounds(w.typecode)) == (hi - 1, (lo, hi))
    arr = mmring.Array(tc, [lo, 0, hi], name=name("arr"))
    assert arr[:] == [lo, 0, hi]
    with pytest.raises(OverflowError):
        arr[1] = hi + 1
    with pytest.raises(OverflowError):
        arr[0:2] = [0, lo - 1]
    assert arr[:] == [lo, 0, hi]


@pytest.mark.parametrize("tc", "fd")
def test_float_typecodes_round_as_ctypes_and_fetch_add(tc, name):
    ct = typecode_to_type[tc]
    v = mmring.Value(tc, 0.1, name=name())
    assert v.value == ct(0.1).value
    assert v.fetch_add(1.5) == ct(0.1).value
    assert v.value == ct(ct(0.1).value + 1.5).value
    v.value = 3  # an int is a number too
    assert v.value == 3.0 and isinstance(v.value, float)
    v.value = -0.0
    assert math.copysign(1, v.value) == -1
    assert not v.compare_exchange(0.0, 1.0), "compared bit for bit: -0.0 is not 0.0"
    v.value = float("nan")
    assert v.compare_exchange(float("nan"), 2.5) and v.value == 2.5
    v.value = float("inf")
    assert v.fetch_sub(1.0) == float("inf")
    with pytest.raises(TypeError):
        v.value = "1.0"
    assert mmring.Value(tc, 1e300, name=name("big")).value == ct(1e300).value
    assert mmring.Array(tc, [0.25, 2], name=name("arr"))[:] == [0.25, 2.0]


def test_ctypes_types_are_typecodes_and_bad_typecodes_are_refused(name):
    assert mmring.Value(ctypes.c_int, 3, name=name("a")).typecode == "i"
    assert mmring.Value(ctypes.c_double, name=name("b")).typecode == "d"
    assert mmring.Array(ctypes.c_ubyte, 2, name=name("c")).typecode == "B"
    for bad in ("x", "c", "u", "ii", ""):
        with pytest.raises(ValueError):
            mmring.Value(bad, name=name("never"))
    for bad in (3, None, int, ctypes.c_char_p):
        with pytest.raises((TypeError, ValueError)):
            mmring.Value(bad, name=name("never"))
    assert not os.path.exists(name("never"))


def test_no_lock_but_ported_code_gets_a_clear_error(name):
    v = mmring.Value("i", 0, name=name(), lock=True)
    a = mmring.Array("i", 2, name=name("a"), lock=False)
    for obj in (v, a):
        with pytest.raises(AttributeError, match="fetch_add"):
            obj.get_lock()
        with pytest.raises(AttributeError):
            obj.get_obj()
        with pytest.raises(AttributeError):
            obj.no_such_thing
    with pytest.raises(AttributeError):
        del v.value


# ---- Array ----


def test_array_indexing_slices_and_iteration(name):
    a = mmring.Array("q", range(10), name=name())
    assert len(a) == 10 and a.typecode == "q"
    assert a[0] == 0 and a[9] == 9 and a[-1] == 9 and a[-10] == 0
    for bad in (10, -11, 1 << 70):
        with pytest.raises(IndexError):
            a[bad]
        with pytest.raises(IndexError):
            a[bad] = 1
        with pytest.raises(IndexError):
            a.fetch_add(bad, 1)
    with pytest.raises(TypeError):
        a["1"]
    with pytest.raises(TypeError):
        del a[0]
    assert a[:] == list(range(10)) and isinstance(a[:], list)
    assert a[2:5] == [2, 3, 4] and a[::-3] == [9, 6, 3, 0] and a[8:100] == [8, 9] and a[5:2] == []
    assert list(a) == list(range(10)) and 7 in a and sum(a) == 45
    a[-2] = -8
    assert a[8] == -8
    a[::2] = [10, 12, 14, 16, 18]
    assert a[:] == [10, 1, 12, 3, 14, 5, 16, 7, 18, 9]
    a[7:10] = (70, 80, 90)
    assert a[7:] == [70, 80, 90]
    with pytest.raises(ValueError):
        a[0:3] = [1, 2]
    with pytest.raises(TypeError):
        a[0:2] = 5
    with pytest.raises(TypeError):
        a[0:2] = [1, "x"]
    assert a[:3] == [10, 1, 12], "a refused slice assignment stores nothing"


def test_array_atomic_operations(name):
    a = mmring.Array("H", [1, 2, 3], name=name())
    assert a.fetch_add(0, 5) == 1 and a[0] == 6
    assert a.fetch_add(-1, 1) == 3 and a[2] == 4
    assert a.fetch_sub(1, 3) == 2 and a[1] == 65535, "wraps like uint16"
    assert a.compare_exchange(0, 5, 7) is False
    assert a.compare_exchange(0, 6, 7) is True and a[0] == 7
    assert a.update(2, lambda x: x * 3) == 12 and a[2] == 12
    assert a.swap(2, 1) == 12 and a.fetch_max(2, 9) == 1 and a.fetch_min(2, 4) == 9
    assert a[:] == [7, 65535, 4]


def test_array_sizes_and_initializers(name):
    assert mmring.Array("d", 3, name=name("z"))[:] == [0.0, 0.0, 0.0]
    assert mmring.Array("b", b"\x01\x02", name=name("bytes"))[:] == [1, 2]
    for bad in (0, -1, []):
        with pytest.raises(ValueError):
            mmring.Array("i", bad, name=name("never"))
    with pytest.raises(TypeError):
        mmring.Array("i", 2.5, name=name("never"))
    with pytest.raises(OverflowError):
        mmring.Array("B", [1, 256], name=name("never"))
    assert not os.path.exists(name("never"))


# ---- names: attach, never reset; wrong kinds ----


def test_an_existing_value_or_array_is_attached_not_reset(name):
    v = mmring.Value("l", 5, name=name("v"))
    v.value = 7
    assert mmring.Value("l", 99, name=name("v")).value == 7
    assert mmring.Value("q", 0, name=name("v")).value == 7, "'l' and 'q' are one type here"
    assert mmring.Value.open(name("v")).value == 7
    a = mmring.Array("d", [1, 2, 3], name=name("a"))
    a[0] = 10
    assert mmring.Array("d", [9, 9, 9], name=name("a"))[:] == [10.0, 2.0, 3.0]
    assert mmring.Array("d", 3, name=name("a"))[:] == [10.0, 2.0, 3.0]
    opened = mmring.Array.open(name("a"))
    assert opened.typecode == "d" and opened[:] == [10.0, 2.0, 3.0]


def test_another_type_or_length_or_kind_is_refused_and_left_alone(name):
    v = mmring.Value("i", 3, name=name("v"))
    for tc in ("d", "I", "h", "q"):
        with pytest.raises(mmring.WrongKindError, match="Value\\('i'\\)"):
            mmring.Value(tc, name=name("v"))
    a = mmring.Array("d", [1, 2, 3], name=name("a"))
    with pytest.raises(mmring.WrongKindError):
        mmring.Array("f", 3, name=name("a"))
    with pytest.raises(mmring.Error, match="Array\\('d', 3\\)") as err:
        mmring.Array("d", 4, name=name("a"))
    assert not isinstance(err.value, mmring.WrongKindError)
    with pytest.raises(mmring.WrongKindError):
        mmring.Value("d", name=name("a"))
    with pytest.raises(mmring.WrongKindError):
        mmring.Value.open(name("a"))
    c = mmring.Value("q", 1, name=name("counter"))
    with pytest.raises(mmring.WrongKindError):
        mmring.Array.open(name("counter"))
    with pytest.raises(mmring.WrongKindError):
        mmring.Array("q", 1, name=name("counter"))
    mmring.Event(name("ev"))
    with pytest.raises(mmring.WrongKindError):
        mmring.Value("i", name=name("ev"))
    with pytest.raises(mmring.WrongKindError):
        mmring.Array.open(name("ev"))
    with pytest.raises(mmring.WrongKindError):
        mmring.Event(name("v"))
    for opener in (mmring.Value.open, mmring.Array.open):
        with pytest.raises(FileNotFoundError):
            opener(name("absent"))
    assert (v.value, a[:], c.value) == (3, [1.0, 2.0, 3.0], 1)
    # A Value of a typecode other than 'q'/'l' is a one-element array.
    assert mmring.Array.open(name("v"))[:] == [3]


def test_pickles_as_its_path_and_typecode(name):
    v = mmring.Value("l", 4, name=name("v"))
    a = mmring.Array("f", [0.5, 1.5], name=name("a"))
    v2, a2 = pickle.loads(pickle.dumps((v, a)))
    assert (v2.path, v2.typecode, a2.path, a2.typecode) == (v.path, "l", a.path, "f")
    v2.fetch_add(1)
    a2[1] = 2.5
    assert v.value == 5 and a[:] == [0.5, 2.5]
    assert "Value('l', 5" in repr(v) and "Array('f', 2" in repr(a)


def test_an_unnamed_value_removes_its_file_when_collected():
    v = mmring.Value("d", 1.0)
    path = v.path
    assert os.path.exists(path)
    del v
    assert not os.path.exists(path)
