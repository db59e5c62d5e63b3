"""Helpers for the rooms, direct-message and paging/search tests: a fence that shows what a
client received up to a point, a room join, and registering a name / logging in with it."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

from tests.wire import WireClient

_fences = itertools.count()


def fence(sender: WireClient, *clients: WireClient) -> list[list[dict[str, Any]]]:
    """``sender`` says a unique line in general; return, for each client (the sender first),
    everything it received before that line.  Batches reach every member in one order, so
    what a client was sent earlier is in its list, and what it was not sent is not."""
    text = f"fence {next(_fences)}"
    sender.send("msg", text)
    seen: list[list[dict[str, Any]]] = []
    for client in (sender, *clients):
        before: list[dict[str, Any]] = []
        for _ in range(10_000):
            obj = client.recv()
            if obj.get("response") == "message" and obj.get("content") == text:
                break
            before.append(obj)
        seen.append(before)
    return seen


def logged_in(connect: Callable[[], WireClient], *names: str) -> list[WireClient]:
    """New TkChat clients logged in as ``names``."""
    clients = []
    for name in names:
        client = connect()
        client.login(name)
        clients.append(client)
    return clients


def join(client: WireClient, room: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Join ``room``; return its ``joined`` info and its ``history`` (what others said in the
    meantime is skipped)."""
    client.send("join", room)
    for _ in range(10_000):
        joined = client.recv()
        if joined.get("event") == "joined":
            return joined, client.expect("history")
        assert joined["response"] in ("message", "info"), joined
    raise AssertionError(f"no answer to joining {room}")


def contents(history: dict[str, Any]) -> list[dict[str, Any]]:
    """The message objects of a ``history`` response (each item is JSON text)."""
    return [json.loads(item) for item in history["content"]]


def register(client: WireClient, password: str = "a good password") -> None:
    """Register the client's name (PROTOCOL.md, Registered names): from now on its login is
    proven, and logging in as that name needs the password."""
    client.send("register", password=password)
    assert "registered" in client.expect("info")["content"]


def login_proven(client: WireClient, name: str, password: str = "a good password") -> None:
    """Log in as a registered name with its password."""
    client.send("login", name, client="test/1.0", password=password)
    client.expect("info")
    client.expect("history")


def room_event(client: WireClient, event: str, room: str | None) -> dict[str, Any]:
    """The next ``info`` with this ``event`` about ``room`` (``None``: general, no key),
    skipping everything else (other events, messages)."""
    for _ in range(10_000):
        obj = client.recv()
        if obj.get("event") == event and obj.get("room") == room:
            return obj
        assert obj["response"] in ("message", "info"), obj
    raise AssertionError(f"no {event} event about {room}")
