"""Helpers for the rooms, direct-message and paging/search tests: a fence that shows what a
client received up to a point, a room join, and a stand-in for a password-proven login."""

from __future__ import annotations

import itertools
import json
from typing import Any

from server.app import ChatServer
from tests.conftest import wait_for
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


def prove(server: ChatServer, name: str) -> None:
    """Mark ``name``'s connection as logged in with a registered name's password, as the
    login does once registered names exist (the rooms code only reads ``proven``)."""

    def found() -> bool:
        with server._handlers_lock:
            handlers = [h for h in server._handlers if h.name == name]
        for handler in handlers:
            handler.proven = True
        return bool(handlers)

    wait_for(found, what=f"{name}'s connection")


def room_event(client: WireClient, event: str, room: str | None) -> dict[str, Any]:
    """The next ``info`` with this ``event`` about ``room`` (``None``: general, no key),
    skipping everything else (other events, messages)."""
    for _ in range(10_000):
        obj = client.recv()
        if obj.get("event") == event and obj.get("room") == room:
            return obj
        assert obj["response"] in ("message", "info"), obj
    raise AssertionError(f"no {event} event about {room}")
