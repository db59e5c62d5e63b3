"""File descriptors the server holds per logged-in connection (issue 9: one socket, one fd).

Starts ``python -m server``, logs in ``--users`` TkChat clients, and counts the server's open
descriptors in ``/proc/PID/fd`` (Linux) before and after.

Run:  .venv/bin/python bench/fds_per_connection.py              (500 users)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500)
    args = parser.parse_args(argv)
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", "0", "--db", ":memory:"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    port = 0
    for line in proc.stderr:
        match = re.search(r"listening on [^ ]+:(\d+)", line)
        if match:
            port = int(match.group(1))
            break
    stream = proc.stderr
    threading.Thread(target=lambda: [None for _ in stream], daemon=True).start()
    socks: list[socket.socket] = []
    try:
        before = len(os.listdir(f"/proc/{proc.pid}/fd"))
        for number in range(args.users):
            sock = socket.create_connection(("127.0.0.1", port))
            login = {"request": "login", "content": f"u{number}", "client": "bench/1"}
            sock.sendall(json.dumps(login).encode() + b"\n")
            socks.append(sock)
        time.sleep(3)
        after = len(os.listdir(f"/proc/{proc.pid}/fd"))
        print(
            f"{args.users} users: server fds {before} -> {after}, "
            f"{(after - before) / args.users:.2f} per connection"
        )
    finally:
        for sock in socks:
            sock.close()
        proc.terminate()
        proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
