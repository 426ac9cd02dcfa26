"""Producer and consumers on an mmring.Queue, ended with shutdown() instead
of one None sentinel per consumer.

The classic multiprocessing version puts a None on the queue for every
consumer, and hangs if it miscounts them. Here the producer calls
``jobs.shutdown()`` once: every consumer's ``get`` returns what is left,
then raises ``mmring.ShutDown``, however many consumers there are.

Each consumer squares the numbers it takes and puts the answers on a
results queue; the parent checks that every item was consumed exactly once
and exits non-zero if not.

    python python/examples/producer_consumer.py
"""

import multiprocessing
import os
import sys
import tempfile

import mmring

ITEMS = 20_000
CONSUMERS = 3


def producer(jobs):
    for i in range(ITEMS):
        jobs.put(i)
    jobs.shutdown()  # the end of the stream, for every consumer at once


def consumer(index, jobs, results):
    while True:
        try:
            n = jobs.get()
        except mmring.ShutDown:  # shut down, and nothing left
            return
        results.put((index, n, n * n))


def main():
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(prefix="mmring-example-", dir=shm) as tmp:
        jobs = mmring.Queue(os.path.join(tmp, "jobs"), maxsize=256, item_size=64)
        results = mmring.Queue(os.path.join(tmp, "results"), maxsize=256, item_size=64)
        procs = [multiprocessing.Process(target=consumer, args=(i, jobs, results)) for i in range(CONSUMERS)]
        procs.append(multiprocessing.Process(target=producer, args=(jobs,)))
        for p in procs:
            p.start()

        taken = [0] * CONSUMERS
        seen = [0] * ITEMS
        wrong = 0
        for _ in range(ITEMS):
            index, n, square = results.get(timeout=60)
            taken[index] += 1
            seen[n] += 1
            wrong += square != n * n
        for p in procs:
            p.join(60)
        codes = [p.exitcode for p in procs]

        print(f"producer put {ITEMS} items, then shutdown()")
        for i, count in enumerate(taken):
            print(f"consumer {i} took {count}")
        missing = sum(1 for s in seen if s == 0)
        twice = sum(1 for s in seen if s > 1)
        leftover = results.qsize()
        ok = missing == 0 and twice == 0 and wrong == 0 and leftover == 0 and codes == [0] * len(procs)
        print(
            f"{sum(taken)} results: {missing} missing, {twice} consumed twice, "
            f"{wrong} wrong, {leftover} extra; exit codes {codes}"
        )
        print("every item consumed exactly once" if ok else "FAILED")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
