"""Two well-behaved users who keep chatting while a hostile client does its worst.

Why a helper: every hostile case must show the same three things, that the server kept serving
others during the attack (``Bystanders`` chat on their own thread the whole time, each message a
full round trip), that nothing was lost or reordered (``finish`` compares what each received
with what was sent, and checks ids rise), and that the server still takes newcomers
(``fresh_client_can_chat``).
"""

from __future__ import annotations

import ssl
import threading
import time
from typing import Any

from tests.wire import WireClient

ROUND_TRIP_SECONDS = 5.0  # one message's echo and copy; generous for a loaded 2-core machine
MAX_MESSAGES = 5000  # bound on the chat loop, whatever the test does
MAX_SECONDS = 120.0
PAUSE_SECONDS = 0.03  # between messages: the pair stays under the default rate limit


class Bystanders:
    """alice and bob, logged in, taking turns sending a message and waiting for both copies."""

    def __init__(
        self,
        port: int,
        names: tuple[str, str] = ("alice", "bob"),
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.port = port
        self.names = names
        self.clients = [WireClient(port, tls=tls), WireClient(port, tls=tls)]
        for client, name in zip(self.clients, names, strict=True):
            client.login(name)
        self.sent: list[str] = []
        self.received: list[list[dict[str, Any]]] = [[], []]
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bystanders", daemon=True)

    def __enter__(self) -> Bystanders:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(ROUND_TRIP_SECONDS * 3)
        for client in self.clients:
            client.close()

    def _run(self) -> None:
        deadline = time.monotonic() + MAX_SECONDS
        try:
            for i in range(MAX_MESSAGES):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                sender = self.clients[i % 2]
                text = f"bystander message {i} from {self.names[i % 2]}"
                sender.send("msg", text)
                self.sent.append(text)
                for index, client in enumerate(self.clients):
                    self._read_until(index, client, text)
                self._stop.wait(PAUSE_SECONDS)
        except Exception as exc:  # reported by finish(), which fails the test
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def _read_until(self, index: int, client: WireClient, text: str) -> None:
        end = time.monotonic() + ROUND_TRIP_SECONDS
        while True:
            obj = client.recv(max(0.01, end - time.monotonic()))
            kind = obj.get("response")
            if kind == "message":
                if obj.get("sender") in self.names:  # a hostile client's messages may come too
                    self.received[index].append(obj)
                if obj.get("content") == text and obj.get("sender") in self.names:
                    return
            elif kind == "error":
                raise AssertionError(f"{self.names[index]} got an error: {obj}")
            # join/leave events of the hostile clients are fine

    def finish(self, min_messages: int = 5) -> None:
        """Stop chatting and check: no errors, at least ``min_messages`` round trips during the
        test, and each bystander got exactly the messages sent, in order, with rising ids."""
        self._stop.set()
        self._thread.join(ROUND_TRIP_SECONDS * 3)
        assert not self._thread.is_alive(), "bystander chat did not stop"
        assert not self.errors, f"bystanders saw: {self.errors}"
        assert len(self.sent) >= min_messages, f"only {len(self.sent)} messages got through"
        for name, got in zip(self.names, self.received, strict=True):
            assert [m["content"] for m in got] == self.sent, f"{name} lost or reordered messages"
            ids = [m["id"] for m in got]
            assert ids == sorted(set(ids)), f"{name}: ids not strictly rising"
            senders = {m["content"]: m["sender"] for m in got}
            assert all(senders[t] == self.names[i % 2] for i, t in enumerate(self.sent))

    def wait_for_rounds(self, count: int, timeout: float = 20.0) -> None:
        """Let at least ``count`` more round trips happen (the attack runs meanwhile)."""
        target = len(self.sent) + count
        deadline = time.monotonic() + timeout
        while len(self.sent) < target and not self.errors:
            assert time.monotonic() < deadline, "bystander chat stalled"
            time.sleep(0.01)


def fresh_client_can_chat(port: int, name: str = "newcomer") -> None:
    """A new connection logs in, sends, and gets its echo: the server still serves."""
    client = WireClient(port)
    try:
        client.login(name)
        client.send("msg", f"hello from {name}")
        echo = client.expect("message")
        while echo["sender"] != name:  # someone else's message; ours must follow (bounded)
            echo = client.expect("message")
        assert echo["sender"] == name and echo["content"] == f"hello from {name}"
    finally:
        client.close()


def names_now(port: int) -> list[str]:
    """Who the server says is logged in, asked over a fresh connection."""
    client = WireClient(port)
    try:
        client.login("observer")
        client.send("names")
        answer = client.recv()
        for _ in range(1000):  # the bystanders may still be chatting: skip what they say
            if answer.get("response") == "info" and "users" in answer:
                break
            answer = client.recv()
        users = answer["users"]
        assert isinstance(users, list)
        return [u for u in users if u != "observer"]
    finally:
        client.close()
