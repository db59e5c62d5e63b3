"""``kill -9`` the server under load N times (default 20) and count what survived.

Why: PROTOCOL.md promises that a message is committed before anyone sees it, so a SIGKILL at
any moment loses nothing that was echoed, and ids carry on after a restart.  One kill proves
little about timing-dependent bugs; twenty kills at random moments of a pipelined load, on one
database that grows across rounds, make a lost message likely to show if it can happen.

Each round: start ``python -m server`` on a free port with the shared database, let CLIENTS
users send pipelined messages, SIGKILL the server after a random delay, then restart it and
check every message any client saw against the database.  Prints one line per round and a
summary; exit status 1 if anything was lost or an id went backwards.

Run:  .venv/bin/python bench/kill9.py [--rounds 20] [--clients 6]
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BATCH = 25


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(db: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    cmd = [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--db", str(db), "--rate-limit", "0", "--log-level", "WARNING"]
    cmd += ["--max-per-address", "0", "--address-rate", "0", "--login-rate", "0"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, port
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")


class User(threading.Thread):
    """One client: log in, send pipelined batches, record every message it sees."""

    def __init__(self, port: int, name: str, seen: dict[int, str], lock: threading.Lock) -> None:
        super().__init__(name=f"user-{name}", daemon=True)
        self.port, self.user, self.seen, self.lock = port, name, seen, lock
        self.errors: list[str] = []

    def run(self) -> None:
        deadline = time.monotonic() + 30
        buf = b""
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            login = {"request": "login", "content": self.user, "client": "kill9"}
            sock.sendall(json.dumps(login).encode() + b"\n")
            sent = 0
            while time.monotonic() < deadline:
                sock.sendall(
                    b"".join(
                        json.dumps({"request": "msg", "content": f"{self.user} {n}"}).encode()
                        + b"\n"
                        for n in range(sent, sent + BATCH)
                    )
                )
                sent += BATCH
                last = f"{self.user} {sent - 1}"
                done = False
                while not done:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buf += data
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        obj = json.loads(line)
                        if obj["response"] == "message":
                            with self.lock:
                                self.seen[obj["id"]] = obj["content"]
                            done = done or obj["content"] == last
                        elif obj["response"] == "error":
                            self.errors.append(obj["content"])
        except OSError:
            return  # the server was killed: expected


def post_one(port: int, name: str) -> int:
    """Log in to the restarted server, send one message, return its id."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        file = sock.makefile("rb")
        login = {"request": "login", "content": name, "client": "kill9"}
        sock.sendall(json.dumps(login).encode() + b"\n")
        sock.sendall(b'{"request": "msg", "content": "after restart"}\n')
        for _ in range(1000):
            obj = json.loads(file.readline())
            if obj["response"] == "message" and obj["sender"] == name:
                return int(obj["id"])
    raise RuntimeError("no echo from the restarted server")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    total_seen = total_lost = backwards = errors = 0
    with tempfile.TemporaryDirectory(prefix="tkchat-kill9-") as tmp:
        db = Path(tmp) / "history.sqlite3"
        last_max = 0
        for rnd in range(1, args.rounds + 1):
            proc, port = start_server(db)
            seen: dict[int, str] = {}
            lock = threading.Lock()
            users = [User(port, f"r{rnd}u{i}", seen, lock) for i in range(args.clients)]
            for user in users:
                user.start()
            delay = rng.uniform(0.2, 1.5)
            time.sleep(delay)
            proc.kill()  # SIGKILL: no flush, no goodbye
            proc.wait(10)
            for user in users:
                user.join(15)
            with lock:
                echoed = dict(seen)
            restarted, port2 = start_server(db)
            with sqlite3.connect(db) as conn:
                stored = dict(conn.execute("SELECT id, text FROM messages").fetchall())
            lost = sum(1 for i, t in echoed.items() if stored.get(i) != t)
            first_new = min((i for i in echoed), default=last_max + 1)
            next_id = post_one(port2, f"check{rnd}")
            went_back = first_new <= last_max or next_id <= max(stored, default=0)
            restarted.terminate()
            restarted.wait(10)
            with sqlite3.connect(db) as conn:
                stored = dict(conn.execute("SELECT id, text FROM messages").fetchall())
            errs = sum(len(u.errors) for u in users)
            print(
                f"round {rnd:2}: killed after {delay:.2f} s, {len(echoed):6} messages seen, "
                f"{len(stored):7} stored in all, lost {lost}, "
                f"ids {'WENT BACK' if went_back else 'carried on'}, errors {errs}",
                flush=True,
            )
            total_seen += len(echoed)
            total_lost += lost
            backwards += went_back
            errors += errs
            last_max = max(stored, default=last_max)
    print(
        f"\n{args.rounds} kills: {total_seen} messages seen by clients, {total_lost} lost, "
        f"{backwards} rounds with ids going back, {errors} server errors"
    )
    return 0 if total_lost == 0 and backwards == 0 and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
