"""File descriptors the server holds per logged-in connection (issue 9: one socket, one fd).

Starts ``python -m server`` (per-address limits off: every user comes from 127.0.0.1), logs in
``--users`` TkChat clients, waits until each has its welcome, and counts the server's open
descriptors in ``/proc/PID/fd`` (Linux) before and after.  A user that got no welcome is
reported, not counted: the figure is per logged-in connection.

Run:  .venv/bin/python bench/fds_per_connection.py              (500 users, about 5 s)
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from server_proc import start_server

NO_ADDRESS_LIMITS = ("--max-per-address", "0", "--address-rate", "0", "--login-rate", "0")


def welcomed(sock: socket.socket, deadline: float) -> bool:
    """Whether the first line the server sends this socket is a successful login's ``info``."""
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except OSError:
            return False
        if not chunk:
            return False
        data += chunk
    first = json.loads(data.split(b"\n", 1)[0])
    return bool(first.get("response") == "info" and "Login successful" in first.get("content", ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500)
    args = parser.parse_args(argv)
    proc, port, _log = start_server(*NO_ADDRESS_LIMITS)
    socks: list[socket.socket] = []
    try:
        before = len(os.listdir(f"/proc/{proc.pid}/fd"))
        for number in range(args.users):
            sock = socket.create_connection(("127.0.0.1", port))
            login = {"request": "login", "content": f"u{number}", "client": "bench/1"}
            sock.sendall(json.dumps(login).encode() + b"\n")
            socks.append(sock)
            if number % 100 == 99:
                print(f"  {number + 1} connected", file=sys.stderr, flush=True)
        deadline = time.monotonic() + 30
        logged_in = sum(welcomed(sock, deadline) for sock in socks)
        after = len(os.listdir(f"/proc/{proc.pid}/fd"))
        print(
            f"{logged_in} of {args.users} users logged in: server fds {before} -> {after}, "
            f"{(after - before) / max(logged_in, 1):.2f} per connection"
        )
        return 0 if logged_in == args.users else 1
    finally:
        for sock in socks:
            sock.close()
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    sys.exit(main())
