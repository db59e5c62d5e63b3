"""Per-address limits under attack (issue 11 items 2 and 3): figures for bench/SERVER.md.

Two attacks, each against a fresh ``python -m server`` on a free 127.0.0.1 port, once with the
defaults and once with the per-address limits off and the old 30 s login timeout ("before"):

- **cycling**: threads on 127.0.0.2 log in under ever new names, send 50 messages each
  (pipelined), log out, and go again, for ``--seconds``.  Printed: messages accepted per second
  (echoes) and ``rate_limited`` answers.  The address's limit is ``--address-rate`` (100/s) after
  a burst of 400 requests.
- **lockout**: 127.0.0.2 keeps ``--sockets`` connections open that never log in (reopening each
  one that the server closes or refuses), while a user on 127.0.0.3 logs in, says one line and
  logs out every 0.25 s.  Printed: the user's successful logins / attempts.

Bounded: each phase runs ``--seconds`` (default 8) after the attacker has opened its sockets
(at most 30 s more), about 40-60 s in all.  Run:

    .venv/bin/python bench/address_limits.py
"""

from __future__ import annotations

import argparse
import contextlib
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.decoder import DecodeError, StreamDecoder  # noqa: E402
from common.protocol import MessageParser  # noqa: E402

ATTACKER = "127.0.0.2"
VICTIM = "127.0.0.3"
OFF = ["--max-per-address", "0", "--address-rate", "0", "--login-rate", "0"]
BEFORE = [*OFF, "--login-timeout", "30"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server(*args: str) -> Iterator[int]:
    """A fresh ``python -m server`` (stopped by its own pid afterwards); yields its port."""
    port = free_port()
    cmd = [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--db", ":memory:", "--log-level", "WARNING", *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("server did not start") from None
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class Line:
    """A blocking client socket from a chosen local address, reading decoded objects."""

    def __init__(self, port: int, source: str, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=timeout, source_address=(source, 0)
        )
        self.decoder = StreamDecoder(1 << 24)
        self.pending: list[dict[str, Any]] = []

    def send(self, request: str, content: str | None = None, **extra: Any) -> None:
        self.sock.sendall(MessageParser.encode(MessageParser.request(request, content, **extra)))

    def recv(self) -> dict[str, Any] | None:
        """The next object, or None when the server closed."""
        while not self.pending:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.pending += [i for i in self.decoder.feed(data) if not isinstance(i, DecodeError)]
        return self.pending.pop(0)

    def answer(self) -> dict[str, Any] | None:
        """The next object that is not a join/leave event."""
        while (obj := self.recv()) is not None:
            if obj.get("event") not in ("join", "leave"):
                return obj
        return None

    def close(self) -> None:
        self.sock.close()


def cycling(port: int, seconds: float, threads: int = 4) -> tuple[float, int]:
    """Messages/s accepted and rate_limited answers for one address cycling names."""
    accepted = [0] * threads
    limited = [0] * threads
    deadline = time.monotonic() + seconds

    def run(index: int) -> None:
        cycle = 0
        while time.monotonic() < deadline:
            cycle += 1
            try:
                line = Line(port, ATTACKER)
            except OSError:
                continue
            try:
                name = f"c{index}x{cycle}"
                line.send("login", name, client="bench/1.0")
                first = line.answer()
                if first is None or first.get("response") != "info":
                    limited[index] += first is not None and first.get("code") == "rate_limited"
                    continue
                line.answer()  # history
                line.sock.sendall(
                    b"".join(
                        MessageParser.encode(MessageParser.request("msg", f"{name} {i}"))
                        for i in range(50)
                    )
                )
                for _ in range(50):
                    got = line.answer()
                    if got is None:
                        break
                    if got.get("response") == "message":
                        accepted[index] += 1
                    elif got.get("code") == "rate_limited":
                        limited[index] += 1
                line.send("logout")
            except OSError:
                pass
            finally:
                line.close()

    workers = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
    start = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(seconds + 15)
    return sum(accepted) / (time.monotonic() - start), sum(limited)


def lockout(port: int, seconds: float, sockets: int) -> tuple[int, int]:
    """The victim's successful logins and attempts while one address hogs connections."""
    stop = threading.Event()
    held: list[socket.socket] = []
    opened = [0]  # connections the attacker has opened (refused ones too)

    def hog() -> None:
        """Hold ``sockets`` connections; reopen each one the server closes or refuses."""
        selector = selectors.DefaultSelector()
        try:
            while not stop.is_set():
                while len(held) < sockets and not stop.is_set():
                    try:
                        sock = socket.create_connection(
                            ("127.0.0.1", port), timeout=2, source_address=(ATTACKER, 0)
                        )
                    except OSError:
                        break
                    sock.setblocking(False)
                    opened[0] += 1
                    held.append(sock)
                    selector.register(sock, selectors.EVENT_READ)
                for key, _ in selector.select(0.05):
                    ready = key.fileobj
                    assert isinstance(ready, socket.socket)
                    try:
                        data = ready.recv(4096)
                    except OSError:
                        data = b""
                    if not data or b'"error"' in data:  # closed, refused or timed out
                        selector.unregister(ready)
                        held.remove(ready)
                        ready.close()
        finally:
            selector.close()

    attacker = threading.Thread(target=hog, daemon=True)
    attacker.start()
    # Let the attacker open its sockets first (on a busy machine that takes seconds).
    warm_up = time.monotonic() + 30
    while opened[0] < sockets and time.monotonic() < warm_up:
        time.sleep(0.05)
    ok = attempts = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        attempts += 1
        try:
            line = Line(port, VICTIM, timeout=2)
            try:
                line.send("login", f"victim{attempts}", client="bench/1.0")
                got = line.answer()
                if got is not None and got.get("response") == "info" and "users" in got:
                    ok += 1
                    line.send("logout")
            finally:
                line.close()
        except OSError:
            pass
        time.sleep(0.25)
    stop.set()
    attacker.join(10)
    for sock in held:
        sock.close()
    return ok, attempts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--sockets", type=int, default=1000)
    args = parser.parse_args(argv)
    if sys.platform != "win32":  # the attacker holds --sockets of them
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = args.sockets + 256
        if soft != resource.RLIM_INFINITY and soft < want:
            top = want if hard == resource.RLIM_INFINITY else min(want, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (top, hard))
    rows = []
    for label, flags in (("defaults", []), ("limits off (before)", BEFORE)):
        with server(*flags) as port:
            rate, limited = cycling(port, args.seconds)
        with server(*flags) as port:
            ok, attempts = lockout(port, args.seconds, args.sockets)
        rows.append((label, rate, limited, ok, attempts))
    print(
        f"{'server':22} {'cycling: msgs/s accepted':>25} {'rate_limited':>13} "
        f"{'victim logins ok/attempts':>26}"
    )
    for label, rate, limited, ok, attempts in rows:
        print(f"{label:22} {rate:25,.0f} {limited:13,} {f'{ok}/{attempts}':>26}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
