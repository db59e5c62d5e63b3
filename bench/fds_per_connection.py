"""File descriptors the server holds per logged-in connection (issue 9: one socket, one fd).

Starts ``python -m server`` (per-address limits off: every user comes from 127.0.0.1), logs in
``--users`` TkChat clients, waits until each has its welcome, and counts the server's open
descriptors in ``/proc/PID/fd`` (Linux) before and after.  A user that got no welcome is
reported, not counted: the figure is per logged-in connection.

Run:  .venv/bin/python bench/fds_per_connection.py              (500 users, about 5 s)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from server_proc import start_server  # noqa: E402 - a sibling script

from tests.wire import WireClient  # noqa: E402

NO_ADDRESS_LIMITS = ("--max-per-address", "0", "--address-rate", "0", "--login-rate", "0")


def welcomed(client: WireClient) -> bool:
    """Whether the first answer to the client's login is a successful login's ``info``."""
    try:
        first = client.recv(30)
    except AssertionError:  # nothing in time, or closed
        return False
    return first.get("response") == "info" and "Login successful" in str(first.get("content"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500)
    args = parser.parse_args(argv)
    proc, port, _log = start_server(*NO_ADDRESS_LIMITS)
    clients: list[WireClient] = []
    try:
        before = len(os.listdir(f"/proc/{proc.pid}/fd"))
        for number in range(args.users):
            client = WireClient(port)
            client.send("login", f"u{number}", client="bench/1")
            clients.append(client)
            if number % 100 == 99:
                print(f"  {number + 1} connected", file=sys.stderr, flush=True)
        logged_in = sum(welcomed(client) for client in clients)
        after = len(os.listdir(f"/proc/{proc.pid}/fd"))
        print(
            f"{logged_in} of {args.users} users logged in: server fds {before} -> {after}, "
            f"{(after - before) / max(logged_in, 1):.2f} per connection"
        )
        return 0 if logged_in == args.users else 1
    finally:
        for client in clients:
            client.close()
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    sys.exit(main())
