"""A classic KTN reader in a busy room: does it keep up, and does it lose anything?

A classic client (login without ``"client"``) gets objects one per write, spaced a few ms apart
(PROTOCOL.md, Classic clients); at a few thousand messages per second that pacing alone would
leave it seconds behind.  This script starts ``python -m server`` (no rate limit), logs in one
classic reader, and lets ``--senders`` TkChat clients send ``--rate`` messages per second in all
for ``--seconds``.  Each message carries its send time; the reader reads with ``recv(1024)`` and
splits lines, as a tolerant KTN program does, and reports:

- loss: messages sent that the reader never got (after waiting up to 10 s past the last send);
- lag: time from send to receipt (median, p99, max), and how long after the last send the
  reader had everything.

Run:  .venv/bin/python bench/classic_reader.py                 (2,500 msg/s for 10 s)
      .venv/bin/python bench/classic_reader.py --rate 1000 --seconds 5
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from server_proc import start_server  # noqa: E402 - a sibling script

TICK = 0.01  # senders send what is due every TICK seconds, in one write


def login(port: int, name: str, client: str | None) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    request: dict[str, object] = {"request": "login", "content": name}
    if client:
        request["client"] = client
    sock.sendall(json.dumps(request).encode() + b"\n")
    return sock


def drain(sock: socket.socket, stop: threading.Event) -> None:
    """A TkChat sender reads (and drops) everything, as a fast client does."""
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


def send_paced(
    sock: socket.socket, index: int, rate: float, seconds: float, sent: list[str]
) -> None:
    start = time.monotonic()
    done = 0
    while True:
        now = time.monotonic()
        if now - start >= seconds:
            sent.append(f"end {time.monotonic()}")  # when this sender stopped (not a message)
            return
        due = int((now - start) * rate) - done
        if due > 0:
            texts = [f"s{index}-{done + i} {time.monotonic():.6f}" for i in range(due)]
            sock.sendall(
                b"".join(
                    json.dumps({"request": "msg", "content": t}).encode() + b"\n" for t in texts
                )
            )
            sent.extend(t.split()[0] for t in texts)
            done += due
        time.sleep(TICK)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2500.0, help="messages/s in all")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--senders", type=int, default=5)
    args = parser.parse_args(argv)
    proc, port, _log = start_server(
        *("--rate-limit", "0", "--log-level", "INFO"),
        # every sender comes from 127.0.0.1: the per-address limits would cap them
        *("--max-per-address", "0", "--address-rate", "0", "--login-rate", "0"),
    )
    try:
        reader = login(port, "classic", None)
        reader.settimeout(0.5)
        buffer = b""
        # the login info, then the history (empty here)
        lags: list[float] = []
        got: set[str] = set()
        stop = threading.Event()
        senders = [login(port, f"sender{i}", "bench/1") for i in range(args.senders)]
        drains = [threading.Thread(target=drain, args=(s, stop), daemon=True) for s in senders]
        for thread in drains:
            thread.start()
        time.sleep(0.5)  # logins settle
        sent: list[list[str]] = [[] for _ in senders]
        rate = args.rate / len(senders)
        threads = [
            threading.Thread(
                target=send_paced, args=(s, i, rate, args.seconds, sent[i]), daemon=True
            )
            for i, s in enumerate(senders)
        ]
        for thread in threads:
            thread.start()
        reads = 0
        multi = 0
        end_of_sending: float | None = None
        last_arrival = time.monotonic()
        closed = False
        while True:
            if end_of_sending is None and not any(t.is_alive() for t in threads):
                end_of_sending = max(float(s.pop().split()[1]) for s in sent)
            if end_of_sending is not None:
                expected = sum(len(s) for s in sent)
                if len(got) >= expected or time.monotonic() - end_of_sending > 10:
                    break
            try:
                data = reader.recv(1024)
            except TimeoutError:
                continue
            if not data:
                closed = True
                break
            reads += 1
            now = time.monotonic()
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            if len(lines) > 1:
                multi += 1
            for line in lines:
                obj = json.loads(line)
                if obj.get("response") != "message":
                    continue
                key, stamp = obj["content"].split()
                got.add(key)
                lags.append(now - float(stamp))
                last_arrival = now
        stop.set()
        all_sent = [k for s in sent for k in s]
        lost = len(set(all_sent) - got)
        seconds_after = last_arrival - end_of_sending if end_of_sending else float("nan")
        lags.sort()
        print(
            f"classic reader at {args.rate:,.0f} msg/s for {args.seconds:g} s "
            f"({args.senders} senders): sent {len(all_sent):,}, received {len(got):,}, "
            f"lost {lost:,}{' (connection closed by server)' if closed else ''}"
        )
        if lags:
            print(
                f"lag s: median {statistics.median(lags):.3f}, "
                f"p99 {lags[int(len(lags) * 0.99) - 1]:.3f}, max {lags[-1]:.3f}; "
                f"last message {seconds_after:.3f} s after the last send"
            )
        print(f"reads: {reads:,}, reads holding more than one object: {multi:,}")
        for sock in [reader, *senders]:
            sock.close()
    finally:
        proc.terminate()
        proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
