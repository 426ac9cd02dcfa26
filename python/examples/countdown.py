"""20 processes count one dict entry down to exactly 0.

The multiprocessing version needs a Manager (a server process) for the dict
and a Lock around every ``d["count"] -= 1``, or updates are lost. Here each
decrement is one atomic ``update_key``: no server, no lock.
"""

import multiprocessing
import os
import sys
import tempfile

import mmring

PROCESSES = 20
EACH = 500


def count_down(d):
    for _ in range(EACH):
        d.update_key("count", lambda n: n - 1)


def main():
    with tempfile.TemporaryDirectory(prefix="mmring-countdown-") as tmp:
        d = mmring.Dict(os.path.join(tmp, "counter"), capacity=16, key_size=16, value_size=64)
        d["count"] = PROCESSES * EACH
        procs = [multiprocessing.Process(target=count_down, args=(d,)) for _ in range(PROCESSES)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        failed = [p.exitcode for p in procs if p.exitcode != 0]
        final = d["count"]
    print(f"{PROCESSES} processes x {EACH} decrements from {PROCESSES * EACH}: count = {final}")
    if failed or final != 0:
        print(f"WRONG: expected 0 (failed children: {failed})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
