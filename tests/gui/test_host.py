"""The chat a window hosts (gui/host.py): a port it cannot have is said on the connect
screen (or, by default, another port is taken), and "who else is in it" leaves the host out
whatever the case of the name they typed."""

from __future__ import annotations

import socket
import tkinter as tk
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

from gui.session import State
from tests.gui.harness import Person, online, wait_until


@contextmanager
def _taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 that something else listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_a_port_that_is_taken_is_said_on_the_connect_screen_or_another_is_used(
    root: tk.Tk, person: Callable[[str], Person]
) -> None:
    alice = person("alice")
    host = alice.app.host
    with _taken_port() as port:
        host.config = replace(host.config, port=port, fallback_to_free_port=False)
        alice.app.host_and_join("alice")
        assert alice.app.host.server is None, "nothing started"
        assert alice.state is State.DISCONNECTED, "nothing to join"
        assert "Cannot start a chat server here:" in alice.error, alice.error
        host.config = replace(host.config, fallback_to_free_port=True)
        alice.app.host_and_join("alice")
        server = host.server
        assert server is not None and server.port not in (0, port)
        wait_until(root, online(alice), "hosting on another port", (alice,))
        alice.app.host_and_join("alice")
        assert host.server is server, "started once, joined again"


def test_who_else_is_in_a_hosted_chat_leaves_the_host_out_in_any_case(
    root: tk.Tk, person: Callable[[str], Person]
) -> None:
    alice, bob = person("alice"), person("bob")
    assert alice.app.host.others("alice") == [], "hosting nothing"
    alice.app.host_and_join("Alice")
    wait_until(root, online(alice), "hosting", (alice,))
    server = alice.app.host.server
    assert server is not None
    bob.log_in(server.port, tls=True)
    wait_until(root, online(bob), "bob joined", (alice, bob))
    wait_until(root, lambda: len(server.server.room.names()) == 2, "both in the room")
    assert alice.app.host.others("ALICE") == ["bob"]
    assert alice.app.host.others(alice.app.session.name) == ["bob"]
    assert bob.app.host.others("bob") == [], "bob hosts nothing"
    alice.app.host.stop()
    assert alice.app.host.server is None
    wait_until(root, lambda: bob.state is not State.ONLINE, "bob sees it end", (bob,))
    alice.app.host.stop()  # again: nothing left to stop
