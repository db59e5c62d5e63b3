"""Two ordinary users, one allowed burst each: are the fast readers dropped?

Issue 11 item 1: the history writer joined a batch of broadcasts into one byte string and an
outbox dropped any connection whose queue plus that string passed ``--max-queue-bytes``, so two
users each sending their allowed burst (200 messages of 4,000 emoji, about 48 KB each escaped)
disconnected every reader, even empty, fast ones.  This script starts ``python -m server`` with
its defaults, logs in ``--readers`` TkChat readers from 127.0.0.2, 127.0.0.3, ... that read as
fast as they can, then lets two attackers from 127.0.0.100 and .101 send their burst, and
prints how many readers were dropped and how many messages each reader saw.

Run:  .venv/bin/python bench/batch_attack.py             (25 readers, 5 runs)
      .venv/bin/python bench/batch_attack.py --readers 10 --runs 1
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from server_proc import start_server  # noqa: E402 - a sibling script

BURST = 200
TEXT = "\U0001f600" * 4000


def login(port: int, name: str, source: str) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    request = {"request": "login", "content": name, "client": "bench/1"}
    sock.sendall(json.dumps(request).encode() + b"\n")
    return sock


def read(
    sock: socket.socket, expected: int, counts: list[int], index: int, closed: list[bool]
) -> None:
    """Count ``message`` objects until ``expected`` arrived, the server closed, or 60 s."""
    marker = b'"response": "message"'
    tail = b""
    deadline = time.monotonic() + 60
    sock.settimeout(1.0)
    while counts[index] < expected and time.monotonic() < deadline:
        try:
            data = sock.recv(1 << 20)
        except TimeoutError:
            continue
        except OSError:
            data = b""
        if not data:
            closed[index] = True
            return
        chunk = tail + data
        counts[index] += chunk.count(marker)
        tail = chunk[-len(marker) + 1 :]


def run(readers: int, extra: list[str]) -> tuple[int, list[int], float]:
    proc, port, _log = start_server(*extra)
    try:
        socks = [login(port, f"reader{i}", f"127.0.0.{2 + i}") for i in range(readers)]
        attackers = [login(port, f"attacker{i}", f"127.0.0.{100 + i}") for i in range(2)]
        time.sleep(0.5)
        expected = BURST * len(attackers)
        counts = [0] * readers
        closed = [False] * readers
        threads = [
            threading.Thread(target=read, args=(s, expected, counts, i, closed), daemon=True)
            for i, s in enumerate(socks)
        ]
        stop = threading.Event()
        drains = [threading.Thread(target=_drain, args=(a, stop), daemon=True) for a in attackers]
        for thread in threads + drains:
            thread.start()
        burst = b"".join(
            json.dumps({"request": "msg", "content": TEXT}).encode() + b"\n" for _ in range(BURST)
        )
        start = time.monotonic()
        senders = [threading.Thread(target=a.sendall, args=(burst,)) for a in attackers]
        for thread in senders:
            thread.start()
        for thread in threads:
            thread.join(70)
        took = time.monotonic() - start
        stop.set()
        for sock in socks + attackers:
            sock.close()
        return sum(closed), counts, took
    finally:
        proc.terminate()
        proc.wait(10)


def _drain(sock: socket.socket, stop: threading.Event) -> None:
    # select, not a socket timeout: another thread sends on this socket (sendall would
    # time out with it)
    while not stop.is_set():
        if not select.select([sock], [], [], 0.2)[0]:
            continue
        try:
            if not sock.recv(1 << 20):
                return
        except OSError:
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=25)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("server_args", nargs="*", help="extra python -m server flags (after --)")
    args = parser.parse_args(argv)
    for number in range(args.runs):
        dropped, counts, took = run(args.readers, args.server_args)
        print(
            f"run {number + 1}: {dropped} of {args.readers} readers dropped; messages seen per "
            f"reader min {min(counts)}, max {max(counts)} of {BURST * 2}; {took:.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
