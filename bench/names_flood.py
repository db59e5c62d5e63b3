"""Server memory under the ``names`` amplification (issue 11 item 4).

``names`` answers a 40-byte request with every logged-in name: with a few hundred long names,
kilobytes.  Clients that ask and never read leave the answers queued in the server.  This
script starts ``python -m server``, logs in ``--clients`` non-readers with 32-letter names from
10 loopback addresses (127.0.2.1-10, each socket with a 4 KiB receive buffer), lets each send
``--asks`` ``names`` requests in one write, and prints the server's peak RSS (VmHWM) and how
many connections it dropped for their backlog.

Run:  .venv/bin/python bench/names_flood.py                  (200 clients x 500 asks)
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from server_proc import start_server  # noqa: E402 - a sibling script


def memory_kib(pid: int, key: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--asks", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=15.0, help="time to let it pile up")
    parser.add_argument("server_args", nargs="*", help="extra python -m server flags (after --)")
    args = parser.parse_args(argv)
    proc, port, log = start_server("--max-connections", "2000", *args.server_args)
    socks: list[socket.socket] = []
    try:
        start_rss = memory_kib(proc.pid, "VmRSS")
        for number in range(args.clients):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.bind((f"127.0.2.{1 + number % 10}", 0))
            sock.connect(("127.0.0.1", port))
            name = f"n{number:04d}" + "x" * 27
            login = {"request": "login", "content": name, "client": "bench/1"}
            sock.sendall(json.dumps(login).encode() + b"\n")
            socks.append(sock)
        time.sleep(1.0)
        ask = b'{"request": "names"}\n' * args.asks
        for sock in socks:
            sock.settimeout(5)
            try:
                sock.sendall(ask)
            except OSError:
                pass  # dropped already
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            time.sleep(0.5)
        peak = memory_kib(proc.pid, "VmHWM")
        now = memory_kib(proc.pid, "VmRSS")
        dropped = sum("dropping connection" in line for line in log)
        print(
            f"{args.clients} non-readers x {args.asks} names: server RSS {start_rss / 1024:.0f} "
            f"MiB at start, peak {peak / 1024:.0f} MiB, {now / 1024:.0f} MiB after "
            f"{args.seconds:g} s; {dropped} connections dropped for their backlog"
        )
    finally:
        for sock in socks:
            sock.close()
        proc.terminate()
        proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
