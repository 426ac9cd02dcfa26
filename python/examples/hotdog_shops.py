"""Three hot-dog shops and two customers on an mmring.JoinableQueue: the
classic multiprocessing JoinableQueue tutorial, without a lock or a
sentinel.

Each shop makes its hot dogs and puts them on the counter (a
JoinableQueue: every hot dog is a task). Each customer takes hot dogs off
the counter, eats them, and calls ``task_done()``. The parent waits for the
shops, then ``counter.join()`` (every hot dog eaten, not just taken), then
``counter.shutdown()`` sends both customers home. Each customer reports what
it ate; the parent checks the counts and exits non-zero if a hot dog was
lost or eaten twice.

    python python/examples/hotdog_shops.py
"""

import multiprocessing
import os
import sys
import tempfile

import mmring

SHOPS = ("Frank's", "Wiener World", "Dog House")
CUSTOMERS = ("Ada", "Grace")
HOTDOGS_PER_SHOP = 3_000


def shop(name, counter):
    for number in range(HOTDOGS_PER_SHOP):
        counter.put((name, number, "mustard" if number % 3 else "ketchup"))


def customer(name, counter, receipts):
    eaten = {}
    while True:
        try:
            shop_name, number, topping = counter.get()
        except mmring.ShutDown:  # the shops are closed and the counter empty
            break
        eaten.setdefault(shop_name, []).append(number)
        counter.task_done()
    receipts.put((name, {s: (len(ns), sum(ns)) for s, ns in eaten.items()}))


def main():
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(prefix="mmring-example-", dir=shm) as tmp:
        counter = mmring.JoinableQueue(os.path.join(tmp, "counter"), maxsize=100, item_size=128)
        receipts = mmring.Queue(os.path.join(tmp, "receipts"), maxsize=len(CUSTOMERS))
        shops = [multiprocessing.Process(target=shop, args=(s, counter)) for s in SHOPS]
        customers = [multiprocessing.Process(target=customer, args=(c, counter, receipts)) for c in CUSTOMERS]
        for p in shops + customers:
            p.start()
        for p in shops:
            p.join(60)
        all_eaten = counter.join(timeout=60)  # every hot dog eaten (task_done)
        counter.shutdown()  # sends every customer home
        reports = dict(receipts.get(timeout=60) for _ in CUSTOMERS)
        for p in customers:
            p.join(60)
        codes = [p.exitcode for p in shops + customers]

        ok = all_eaten and codes == [0] * len(codes)
        want = (HOTDOGS_PER_SHOP, HOTDOGS_PER_SHOP * (HOTDOGS_PER_SHOP - 1) // 2)
        for s in SHOPS:
            counts = [reports[c].get(s, (0, 0)) for c in CUSTOMERS]
            eaten = (sum(n for n, _ in counts), sum(t for _, t in counts))
            split = ", ".join(f"{c} {n}" for c, (n, _) in zip(CUSTOMERS, counts))
            good = eaten == want
            ok &= good
            print(f"{s}: made {HOTDOGS_PER_SHOP}, eaten {eaten[0]} ({split}){'' if good else '  <-- WRONG'}")
        for c in CUSTOMERS:
            print(f"{c} ate {sum(n for n, _ in reports[c].values())}")
        print(f"counter.join(): {all_eaten}; unfinished tasks {counter.unfinished_tasks}; exit codes {codes}")
        print("every hot dog eaten exactly once" if ok else "FAILED")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
