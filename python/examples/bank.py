"""A bank balance shared by a depositor and a withdrawer process: the classic
``multiprocessing`` program (``Value`` plus ``get_lock()`` around
``balance.value += amount``), ported to mmring with no lock at all.

A deposit is one atomic ``fetch_add``. A withdrawal takes the amount only if
the balance covers it: read, then ``compare_exchange(seen, seen - amount)``,
which fails (and is retried on the fresh balance) if the other clerk got in
between, so the balance never goes negative. A shared ``Array`` is the
ledger. Both clerks start together on an ``Event``. At the end the balance must be initial + deposited - withdrawn, to
the unit.

    python python/examples/bank.py
"""

import multiprocessing
import os
import sys
import tempfile

import mmring

INITIAL = 100
OPERATIONS = 100_000
DEPOSITED, WITHDRAWN, DECLINED = range(3)


def deposit(balance, ledger, go):
    go.wait(30)
    for i in range(OPERATIONS):
        amount = i % 7 + 1
        balance.fetch_add(amount)
        ledger.fetch_add(DEPOSITED, amount)


def withdraw(balance, ledger, go):
    go.wait(30)
    for i in range(OPERATIONS):
        amount = i % 9 + 1
        while True:
            seen = balance.value
            if seen < amount:
                ledger.fetch_add(DECLINED, 1)
                break
            if balance.compare_exchange(seen, seen - amount):
                ledger.fetch_add(WITHDRAWN, amount)
                break


def main():
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(prefix="mmring-bank-", dir=shm) as tmp:
        balance = mmring.Value("q", INITIAL, name=os.path.join(tmp, "balance"))
        ledger = mmring.Array("q", 3, name=os.path.join(tmp, "ledger"))
        go = mmring.Event(os.path.join(tmp, "go"))
        clerks = [
            multiprocessing.Process(target=deposit, args=(balance, ledger, go)),
            multiprocessing.Process(target=withdraw, args=(balance, ledger, go)),
        ]
        for p in clerks:
            p.start()
        go.set()  # both clerks start together, so their operations interleave
        for p in clerks:
            p.join(60)
        if any(p.exitcode != 0 for p in clerks):
            for p in clerks:
                p.kill()
            print("bank: a clerk failed or hung:", [p.exitcode for p in clerks])
            return 1
        deposited, withdrawn, declined = ledger[:]
        expected_deposits = sum(i % 7 + 1 for i in range(OPERATIONS))
        final = balance.value
        print(
            f"bank: initial {INITIAL} + deposited {deposited} - withdrawn {withdrawn} "
            f"= balance {final} ({declined} withdrawals declined for want of funds)"
        )
        ok = (
            final == INITIAL + deposited - withdrawn
            and deposited == expected_deposits
            and final >= 0
        )
        print("bank: OK, not a unit lost" if ok else "bank: WRONG")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
