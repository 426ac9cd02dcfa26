"""The nested-dict case that a Manager dict loses, done right.

Through a ``Manager().dict()`` proxy, ``d["a"]["x"] += 1`` fetches a copy of
the inner dict, changes the copy, and never writes it back: the update is
silently lost (shown first, in one process). With ``mmring.Dict`` the whole
inner dict is replaced atomically by ``update_key``, from several processes
at once, and every update is counted.
"""

import multiprocessing
import os
import sys
import tempfile

import mmring

PROCESSES = 4
EACH = 250


def bump(d, me):
    for _ in range(EACH):
        d.update_key(
            "a",
            lambda m: {**m, "x": m["x"] + 1, "by": {**m["by"], me: m["by"].get(me, 0) + 1}},
            default={"x": 0, "by": {}},
        )


def manager_loses():
    with multiprocessing.Manager() as manager:
        d = manager.dict()
        d["a"] = {"x": 0}
        for _ in range(10):
            d["a"]["x"] += 1  # changes a copy of d["a"]
        return d["a"]["x"]


def main():
    lost = manager_loses()
    print(f"Manager().dict(): 10 x d['a']['x'] += 1 -> x = {lost} (the copies were changed)")
    with tempfile.TemporaryDirectory(prefix="mmring-nested-") as tmp:
        d = mmring.Dict(os.path.join(tmp, "nested"), capacity=16, key_size=16, value_size=512)
        procs = [multiprocessing.Process(target=bump, args=(d, i)) for i in range(PROCESSES)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        failed = [p.exitcode for p in procs if p.exitcode != 0]
        a = d["a"]
    print(f"mmring.Dict: {PROCESSES} processes x {EACH} update_key -> x = {a['x']}, by process = {a['by']}")
    want = {"x": PROCESSES * EACH, "by": {i: EACH for i in range(PROCESSES)}}
    if failed or a != want:
        print(f"WRONG: expected {want} (failed children: {failed})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
