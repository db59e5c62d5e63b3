"""Password guesses per second on one connection (issue 11, item 5).

Starts a ``ChatServer`` in this process on a free 127.0.0.1 port with a server-wide password,
opens one connection and sends wrong logins as fast as the server answers them (a window of
``--pipeline`` requests in flight), for at most ``--seconds``.  Each wrong login carries the
guess both as ``server_password`` (the key now) and as ``password`` (the key the older server
checked), so the same script measures the code before and after the change.

Run:  .venv/bin/python bench/password_guessing.py               (35 s at most)
      .venv/bin/python bench/password_guessing.py --seconds 5   (the old code: 5 s is plenty)
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import time

from server.app import ChatServer
from server.config import ServerConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=35.0)
    parser.add_argument("--pipeline", type=int, default=64)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    server = ChatServer(ServerConfig(host="127.0.0.1", port=0, password="the right one"))
    server.start()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=1.0)
    answers: dict[str, int] = {}
    closed = False
    start = time.monotonic()
    sent = 0
    buffer = b""
    try:
        while time.monotonic() - start < args.seconds and not closed:
            while sent - sum(answers.values()) < args.pipeline:
                guess = f"guess {sent}"
                line = {
                    "request": "login",
                    "content": "alice",
                    "client": "bench/1",
                    "password": guess,
                    "server_password": guess,
                }
                sock.sendall((json.dumps(line) + "\n").encode())
                sent += 1
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                closed = True
                break
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                code = json.loads(raw).get("code", "?")
                answers[code] = answers.get(code, 0) + 1
    finally:
        elapsed = time.monotonic() - start
        sock.close()
        server.stop()
    total = sum(answers.values())
    print(f"{total} answers in {elapsed:.1f} s on one connection: {total / elapsed:,.2f}/s")
    print(f"answers by code: {answers}; connection closed by the server: {closed}")


if __name__ == "__main__":
    main()
