"""A stranger attacks ``python -m server`` (its defaults) while two people chat.

From 127.0.0.2, at once: two users send their whole allowed burst of the largest messages
(200 x 4,000 emoji), five clients that never read ask for ``names`` 500 times each, and a loop
opens and closes sockets as fast as it can.  Meanwhile a victim on 127.0.0.3 sends 40 messages
and times each echo, and at the end a newcomer from 127.0.0.5 logs in.  Prints the victim's
echo latency, whether the newcomer got in, and how many lines the server logged, by kind.

    .venv/bin/python bench/stranger_attack.py      # about 10 s
"""

from __future__ import annotations

import collections
import json
import re
import socket
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server_proc import start_server  # noqa: E402 - a sibling script

from tests.wire import WireClient  # noqa: E402

ATTACKER, VICTIM, FRIEND, NEWCOMER = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"


def burst(port: int, name: str) -> None:
    """The whole allowed burst of the largest messages, in one write."""
    try:
        wire = WireClient(port, source=ATTACKER)
        wire.login(name)
        big = json.dumps({"request": "msg", "content": "\U0001f600" * 4000}) + "\n"
        wire.sock.sendall(big.encode() * 200)
        time.sleep(3)
        wire.close()
    except (OSError, AssertionError) as exc:  # refused at the address's cap, or dropped
        print(f"  {name}: {exc.__class__.__name__}")


def sloth(port: int, index: int, stop: threading.Event) -> None:
    """Logs in, asks for ``names`` 500 times, never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        sock.bind((ATTACKER, 0))
        sock.connect(("127.0.0.1", port))
        login = {"request": "login", "content": f"sloth{index}", "client": "x"}
        sock.sendall(json.dumps(login).encode() + b"\n")
        sock.sendall(b'{"request": "names"}\n' * 500)
        stop.wait(30)
    except OSError:
        pass
    finally:
        sock.close()


def hammer(port: int, stop: threading.Event) -> int:
    """Open and close sockets as fast as possible (at most 300 held); returns how many."""
    held: collections.deque[socket.socket] = collections.deque()
    opened = 0
    while not stop.is_set():
        sock = socket.socket()
        try:
            sock.bind((ATTACKER, 0))
            sock.settimeout(1)
            sock.connect(("127.0.0.1", port))
            held.append(sock)
            opened += 1
        except OSError:
            sock.close()
            time.sleep(0.01)
        if len(held) > 300:
            held.popleft().close()
    for sock in held:
        sock.close()
    return opened


def main() -> None:
    proc, port, logged = start_server()
    victim = WireClient(port, source=VICTIM)
    victim.login("victim")
    friend = WireClient(port, source=FRIEND)
    friend.login("friend")
    stop = threading.Event()
    opened: list[int] = []
    threads = [threading.Thread(target=burst, args=(port, f"big{i}")) for i in range(2)]
    threads += [threading.Thread(target=sloth, args=(port, i, stop)) for i in range(5)]
    threads.append(threading.Thread(target=lambda: opened.append(hammer(port, stop))))
    for thread in threads:
        thread.start()
    latencies: list[float] = []
    for i in range(40):
        start = time.monotonic()
        victim.send("msg", f"victim {i}", nonce=str(i))
        while True:  # the attackers' messages arrive too: wait for the victim's own echo
            got = victim.recv(20)
            if got.get("sender") == "victim" and got.get("content") == f"victim {i}":
                break
        latencies.append(time.monotonic() - start)
        time.sleep(0.1)
    newcomer = WireClient(port, source=NEWCOMER)
    newcomer.login("newcomer")
    stop.set()
    for thread in threads:
        thread.join(30)
    proc.terminate()
    proc.wait(10)
    latencies.sort()
    print(f"attacker sockets opened: {sum(opened)}")
    print(
        f"victim echo latency: median {latencies[len(latencies) // 2] * 1000:.1f} ms, "
        f"max {latencies[-1] * 1000:.1f} ms (40 messages)"
    )
    print(f"newcomer from {NEWCOMER} logged in: yes; victim still connected: {not victim.closed}")
    kinds = collections.Counter(
        re.sub(r"[\d.:,\-]+", "#", line.split(": ", 1)[-1])[:60].strip() for line in logged
    )
    print(f"server log lines: {len(logged)}; most frequent:")
    for kind, count in kinds.most_common(5):
        print(f"  {count:6d}  {kind}")


if __name__ == "__main__":
    main()
