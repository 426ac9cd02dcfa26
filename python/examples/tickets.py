"""Ten buyers, one ticket, each buyer in its own process, released together:
the classic ``multiprocessing`` program (check the stock, then take one,
under a ``Lock``), ported to mmring with no lock. Buying is one
``compare_exchange``: "if the stock is still what I saw, make it one less",
retried on the fresh stock when another buyer got in first, so the check and
the take cannot be split. Never oversold: exactly one buyer gets the ticket
and the stock ends at zero.

    python python/examples/tickets.py
"""

import multiprocessing
import os
import sys
import tempfile

import mmring

BUYERS = 10
TICKETS = 1


def buy(stock, go, bought, me):
    if not go.wait(30):
        sys.exit(2)
    while True:
        left = stock.value
        if left == 0:
            return  # sold out
        if stock.compare_exchange(left, left - 1):
            bought[me] = 1
            return


def main():
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(prefix="mmring-tickets-", dir=shm) as tmp:
        stock = mmring.Value("i", TICKETS, name=os.path.join(tmp, "stock"))
        go = mmring.Event(os.path.join(tmp, "go"))
        bought = mmring.Array("B", BUYERS, name=os.path.join(tmp, "bought"))
        buyers = [
            multiprocessing.Process(target=buy, args=(stock, go, bought, k))
            for k in range(BUYERS)
        ]
        for p in buyers:
            p.start()
        go.set()  # every buyer is released at once
        for p in buyers:
            p.join(60)
        if any(p.exitcode != 0 for p in buyers):
            for p in buyers:
                p.kill()
            print("tickets: a buyer failed or hung:", [p.exitcode for p in buyers])
            return 1
        winners = [k for k in range(BUYERS) if bought[k]]
        print(f"tickets: {BUYERS} buyers, {TICKETS} ticket: bought by buyer(s) {winners}, "
              f"{stock.value} left")
        ok = len(winners) == TICKETS and stock.value == 0
        print("tickets: OK, never oversold" if ok else "tickets: WRONG")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
