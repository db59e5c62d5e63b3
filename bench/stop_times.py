"""How long ``ChatServer.stop()`` takes with a classic client connected, over many runs.

Issue 9: ``Outbox.pause`` cleared ``drained`` without scheduling the outbox, so when the Sender
flushed between a classic client's ``put`` and its ``pause``, ``stop`` waited the whole flush
timeout (twice: once for the shutdown notice, once in the handler's ``finish``).  A scratch
script hit it in 23 of 300 runs, 4 s each instead of 0.01 s.  This prints the distribution.

Run:  .venv/bin/python bench/stop_times.py            (100 runs)
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.app import ChatServer
from server.config import ServerConfig


def one_stop(number: int) -> float:
    server = ChatServer(ServerConfig(host="127.0.0.1", port=0, db=":memory:"))
    server.start()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        sock.sendall(json.dumps({"request": "login", "content": f"c{number}"}).encode())
        sock.recv(4096)  # the login info
        started = time.monotonic()
        server.stop()
        return time.monotonic() - started
    finally:
        sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    times = sorted(one_stop(n) for n in range(args.runs))
    slow = sum(t > 1.0 for t in times)
    print(
        f"ChatServer.stop() with a classic client, {args.runs} runs: median "
        f"{statistics.median(times) * 1000:.1f} ms, max {times[-1] * 1000:.0f} ms, "
        f"over 1 s: {slow}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
