"""Churn soak: clients connect, log in, chat and vanish in every way for minutes; afterwards the
server's threads, open files and RSS must be back near their baseline, and it must sit idle.

Why: leaks only show over time.  A handler thread that never ends on some exit path, a socket
duplicate that is never closed, an outbox or nonce memory kept for a gone user: each is
invisible in a unit test and fatal after a week.  Not a CI test (it takes minutes).

Ways to vanish, picked at random by CHURNERS worker threads: a clean logout; a plain close; a
reset (SO_LINGER 0) mid-request; a connection that never logs in (closed, or left to the login
timeout); garbage then a close; a logged-in reader that never reads and then resets; a 70 KiB
request (``too_large``).  Two steady users chat the whole time and every message they send
must come back to both, in order.

Run:  .venv/bin/python bench/soak.py [--minutes 3] [--churners 8]
Prints a line every --every seconds and a final baseline/after table; exit status 1 when
threads or fds did not come back, the steady chat lost a message, or the idle server spins.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import BinaryIO

ROOT = Path(__file__).resolve().parent.parent
LOGIN_TIMEOUT = 2.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proc_stats(pid: int) -> dict[str, float]:
    """Threads, open fds, RSS (KiB) and CPU seconds of the server, from /proc."""
    stats: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("Threads:", "VmRSS:")):
                key, value = line.split(":", 1)
                stats[key] = float(value.split()[0])
    stats["fds"] = float(len(os.listdir(f"/proc/{pid}/fd")))
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    stats["cpu"] = (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
    return stats


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def request(kind: str, content: str | None = None, **extra: str) -> bytes:
    return json.dumps({"request": kind, "content": content, **extra}).encode() + b"\n"


def reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def read_some(sock: socket.socket, seconds: float) -> bytes:
    sock.settimeout(seconds)
    try:
        return sock.recv(65536)
    except OSError:
        return b""


class Churner(threading.Thread):
    """Opens and abandons connections in one of several ways until ``stop`` is set."""

    WAYS = ("logout", "close", "reset", "no_login", "idle", "garbage", "sloth", "too_large")

    def __init__(self, port: int, index: int, stop: threading.Event, counts: Counter[str]) -> None:
        super().__init__(name=f"churn-{index}", daemon=True)
        self.port, self.index, self.stop, self.counts = port, index, stop, counts
        self.rng = random.Random(index)
        self.serial = 0

    def run(self) -> None:
        while not self.stop.is_set():
            way = self.rng.choice(self.WAYS)
            self.serial += 1
            name = f"c{self.index}x{self.serial}"
            try:
                getattr(self, f"way_{way}")(name)
                self.counts[way] += 1
            except OSError:
                self.counts["oserror"] += 1

    def _login(self, name: str) -> socket.socket:
        sock = connect(self.port)
        sock.sendall(request("login", name, client="soak"))
        read_some(sock, 2.0)
        return sock

    def way_logout(self, name: str) -> None:
        sock = self._login(name)
        for i in range(self.rng.randint(1, 5)):
            sock.sendall(request("msg", f"{name} says {i}"))
        sock.sendall(request("logout"))
        while read_some(sock, 2.0):
            pass
        sock.close()

    def way_close(self, name: str) -> None:
        sock = self._login(name)
        sock.sendall(request("msg", f"{name} leaves"))
        sock.close()

    def way_reset(self, name: str) -> None:
        sock = self._login(name)
        sock.sendall(b'{"request": "msg", "content": "cut o')
        reset(sock)

    def way_no_login(self, name: str) -> None:
        sock = connect(self.port)
        sock.sendall(b'{"request": "help", "content": null}\n')
        read_some(sock, 1.0)
        sock.close()

    def way_idle(self, name: str) -> None:
        sock = connect(self.port)  # never says anything: the login timeout must end it
        sock.sendall(b'{"request": "log')
        self.stop.wait(0.05)
        if self.rng.random() < 0.5:
            sock.close()
        else:  # or left open past the login timeout (a timer closes our end later)
            threading.Timer(LOGIN_TIMEOUT + 3, sock.close).start()

    def way_garbage(self, name: str) -> None:
        sock = connect(self.port)
        sock.sendall(bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 400))))
        sock.sendall(b"\n")
        read_some(sock, 0.2)
        sock.close()

    def way_sloth(self, name: str) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", self.port))
        sock.sendall(request("login", name, client="soak"))
        self.stop.wait(self.rng.uniform(0.5, 2.0))  # never reads while the chat goes on
        reset(sock)

    def way_too_large(self, name: str) -> None:
        sock = self._login(name)
        try:
            sock.sendall(b'{"request": "msg", "content": "' + b"z" * 70_000)
        except OSError:
            pass
        read_some(sock, 1.0)
        sock.close()


class Steady(threading.Thread):
    """Two users taking turns; each message must reach both, in order."""

    def __init__(self, port: int, stop: threading.Event) -> None:
        super().__init__(name="steady", daemon=True)
        self.port, self.stop = port, stop
        self.sent = 0
        self.problems: list[str] = []

    def run(self) -> None:
        socks = [connect(self.port), connect(self.port)]
        files = [s.makefile("rb") for s in socks]
        for sock, name in zip(socks, ("steadyA", "steadyB"), strict=True):
            sock.sendall(request("login", name, client="soak"))
        try:
            while not self.stop.is_set():
                text = f"steady {self.sent}"
                socks[self.sent % 2].sendall(request("msg", text))
                for file in files:
                    self._await(file, text)
                self.sent += 1
                self.stop.wait(0.05)
        except (OSError, ValueError, AssertionError) as exc:
            self.problems.append(f"{type(exc).__name__}: {exc}")
        finally:
            for sock in socks:
                sock.close()

    def _await(self, file: BinaryIO, text: str) -> None:
        for _ in range(100_000):
            line = file.readline()
            if not line:
                raise AssertionError("steady connection closed")
            obj = json.loads(line)
            if obj.get("response") == "message" and obj.get("sender", "").startswith("steady"):
                assert obj["content"] == text, f"expected {text!r}, got {obj['content']!r}"
                return
            if obj.get("response") == "error":
                raise AssertionError(f"steady user got {obj}")
        raise AssertionError("no end of other traffic")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--churners", type=int, default=8)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between lines")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tkchat-soak-") as tmp:
        port = free_port()
        cmd = [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--db", f"{tmp}/soak.sqlite3", "--log-level", "ERROR"]
        cmd += ["--login-timeout", str(LOGIN_TIMEOUT), "--max-queue-bytes", str(256 * 1024)]
        # Every simulated user comes from 127.0.0.1: the per-address limits would cap them.
        cmd += ["--max-per-address", "0", "--address-rate", "0", "--login-rate", "0"]
        server = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE)
        try:
            return soak(server, port, args)
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(10)
            assert server.stderr is not None
            errors = server.stderr.read().decode(errors="replace").strip()
            if errors:
                print(f"server logged errors:\n{errors[-2000:]}")


def soak(server: subprocess.Popen[bytes], port: int, args: argparse.Namespace) -> int:
    deadline = time.monotonic() + 15
    while True:
        try:
            connect(port).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise
            time.sleep(0.05)
    time.sleep(LOGIN_TIMEOUT + 0.5)  # the probe connection above has timed out by now
    base = proc_stats(server.pid)
    print(
        f"baseline: threads {base['Threads']:.0f}, fds {base['fds']:.0f}, "
        f"RSS {base['VmRSS']:.0f} KiB"
    )
    stop = threading.Event()
    counts: Counter[str] = Counter()
    steady = Steady(port, stop)
    steady.start()
    churners = [Churner(port, i, stop, counts) for i in range(args.churners)]
    for churner in churners:
        churner.start()
    start = last_t = time.monotonic()
    last = base
    end = start + args.minutes * 60
    while time.monotonic() < end and server.poll() is None:
        time.sleep(min(args.every, max(0.0, end - time.monotonic())))
        now, cur = time.monotonic(), proc_stats(server.pid)
        cpu = (cur["cpu"] - last["cpu"]) / max(1e-9, now - last_t) * 100
        print(
            f"{now - start:6.0f} s: connections {sum(counts.values()):6}, threads "
            f"{cur['Threads']:4.0f}, fds {cur['fds']:4.0f}, RSS {cur['VmRSS']:7.0f} KiB, "
            f"server CPU {cpu:3.0f}%, steady messages {steady.sent}",
            flush=True,
        )
        last, last_t = cur, now
    stop.set()
    for thread in [steady, *churners]:
        thread.join(15)
    stuck = [t.name for t in [steady, *churners] if t.is_alive()]
    time.sleep(LOGIN_TIMEOUT + 5.5)  # login timeouts, deferred closes and leaves run out
    idle0 = proc_stats(server.pid)
    time.sleep(3.0)
    after = proc_stats(server.pid)
    idle_cpu = (after["cpu"] - idle0["cpu"]) / 3.0 * 100
    print(f"\nways used: {dict(sorted(counts.items()))}")
    print(f"{'':10} {'baseline':>10} {'after':>10}")
    for key, label in (("Threads", "threads"), ("fds", "open fds"), ("VmRSS", "RSS KiB")):
        print(f"{label:10} {base[key]:10.0f} {after[key]:10.0f}")
    print(f"idle server CPU after the soak: {idle_cpu:.1f}% (a spinning thread shows here)")
    ok = (
        after["Threads"] <= base["Threads"]
        and after["fds"] <= base["fds"]
        and idle_cpu < 5.0
        and not steady.problems
        and not stuck
        and server.poll() is None
    )
    if steady.problems or stuck:
        print(f"steady chat problems: {steady.problems}; threads still running: {stuck}")
    print("OK" if ok else "PROBLEM")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
