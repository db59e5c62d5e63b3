"""The clients' side of TLS (gui/net/trust.py, gui/net/client.py): CA-signed certificates verified,
self-signed ones trusted on first use and pinned per host and port, a changed one refused.
Real servers on 127.0.0.1 with certificates the tests make."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from common.protocol import MessageResponse
from common.requests import SendMessage
from gui.net.client import Client
from gui.net.events import Connected, ConnectFailed, Disconnected
from gui.net.trust import KnownHosts, TLSOptions, host_key
from server.app import ChatServer
from tests.conftest import wait_for
from tests.test_client_core import Events
from tests.tls_certs import CertAuthority, self_signed


@pytest.fixture
def tls_clients() -> Iterator[Callable[..., tuple[Client, Events]]]:
    started: list[Client] = []

    def connect(host: str, port: int, options: TLSOptions) -> tuple[Client, Events]:
        """Start connecting; ``Connected`` or ``ConnectFailed`` follows on ``events``."""
        events = Events()
        client = Client(host, port, events, tls=options, connect_timeout=5.0)
        started.append(client)
        client.run()
        return client, events

    yield connect
    for client in started:
        client.disconnect(5.0)


def refused(connect: Callable[..., tuple[Client, Events]], *args: object) -> ConnectFailed:
    """Connect expecting TLS to refuse: the ConnectFailed, checked to be final (no retries)."""
    _, events = connect(*args)
    failed = events.next(ConnectFailed)
    assert failed.final, failed
    return failed


def test_first_use_pins_then_same_cert_is_accepted_and_two_tls_clients_chat(
    make_server: Callable[..., ChatServer],
    tmp_path: Path,
    tls_clients: Callable[..., tuple[Client, Events]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    pair = self_signed(tmp_path)
    server = make_server(tls_cert=str(pair.cert), tls_key=str(pair.key))
    known = KnownHosts(tmp_path / "known_hosts")
    options = TLSOptions(known)

    alice, alice_events = tls_clients("127.0.0.1", server.port, options)
    connected = alice_events.next(Connected)
    assert connected.tls is not None and connected.tls.trust == "first use"
    assert connected.tls.fingerprint == pair.fingerprint
    assert pair.fingerprint in connected.tls.describe()
    assert known.get("127.0.0.1", server.port) == pair.fingerprint
    assert f"{host_key('127.0.0.1', server.port)} {pair.fingerprint}" in known.path.read_text()

    bob, bob_events = tls_clients("127.0.0.1", server.port, options)
    again = bob_events.next(Connected).tls
    assert again is not None and again.trust == "pinned"
    assert again.fingerprint == pair.fingerprint
    alice.login("alice")
    bob.login("bob")
    bob.send_payload(SendMessage("hello over TLS"))
    for events in (alice_events, bob_events):
        message = events.next(MessageResponse)
        while message.message.text != "hello over TLS":
            message = events.next(MessageResponse)
        assert message.message.user == "bob"
    bob.disconnect(5.0)  # the client ends its TLS with close_notify, which the server notices
    assert bob_events.next(Disconnected).expected
    wait_for(
        lambda: any("TLS close_notify" in r.getMessage() for r in caplog.records),
        what="the server to log the client's close_notify",
    )


def test_changed_certificate_is_refused_with_a_warning(
    make_server: Callable[..., ChatServer],
    tmp_path: Path,
    tls_clients: Callable[..., tuple[Client, Events]],
) -> None:
    first = self_signed(tmp_path, name="first")
    server = make_server(tls_cert=str(first.cert), tls_key=str(first.key))
    port = server.port
    known = KnownHosts(tmp_path / "known_hosts")
    client, events = tls_clients("127.0.0.1", port, TLSOptions(known))
    events.next(Connected)
    client.disconnect(5.0)
    events.next(Disconnected)
    server.stop()

    # The same address now presents another certificate (a new one, or someone in between).
    second = self_signed(tmp_path, name="second")
    make_server(port=port, tls_cert=str(second.cert), tls_key=str(second.key))
    pins_before = known.path.read_text()
    text = refused(tls_clients, "127.0.0.1", port, TLSOptions(known)).reason
    assert "HAS CHANGED" in text and "man-in-the-middle" in text
    assert first.fingerprint in text and second.fingerprint in text
    assert str(known.path) in text
    assert known.path.read_text() == pins_before, "a refused certificate must not be pinned"

    # Deliberately accepting the new certificate: forget the old pin, connect again.
    assert known.forget("127.0.0.1", port)
    _, events = tls_clients("127.0.0.1", port, TLSOptions(known))
    connected = events.next(Connected)
    assert connected.tls is not None and connected.tls.trust == "first use"
    assert connected.tls.fingerprint == second.fingerprint


def test_pins_are_per_host_and_port(tmp_path: Path) -> None:
    known = KnownHosts(tmp_path / "sub" / "known_hosts")
    known.remember("Chat.Example.org", 9998, "AA:BB")
    known.remember("::1", 9998, "CC:DD")
    assert known.get("chat.example.org", 9998) == "AA:BB"
    assert known.get("chat.example.org", 9999) is None
    assert known.get("::1", 9998) == "CC:DD"
    assert "[::1]:9998 CC:DD" in known.path.read_text()
    (tmp_path / "garbage").write_bytes(b"\xff\xfe not text")
    assert KnownHosts(tmp_path / "garbage").get("x", 1) is None


def test_ca_signed_certificate_is_verified_with_the_ca_file(
    make_server: Callable[..., ChatServer],
    tmp_path: Path,
    tls_clients: Callable[..., tuple[Client, Events]],
) -> None:
    ca = CertAuthority(tmp_path)
    cert, key = ca.issue("localhost")
    server = make_server(tls_cert=str(cert), tls_key=str(key))
    known = KnownHosts(tmp_path / "known_hosts")

    client, events = tls_clients("localhost", server.port, TLSOptions(known, str(ca.cert_file)))
    connected = events.next(Connected)
    assert connected.tls is not None and connected.tls.trust == "ca"
    assert not known.path.exists(), "a verified certificate needs no pin"
    client.login("carol")
    client.send_payload(SendMessage("verified"))
    while events.next(MessageResponse).message.text != "verified":
        pass

    # Without the CA file the authority is unknown: refused, and not pinned (not self-signed).
    assert (
        "cannot be verified"
        in refused(tls_clients, "localhost", server.port, TLSOptions(known)).reason
    )
    assert not known.path.exists()


def test_wrong_host_name_is_refused(
    make_server: Callable[..., ChatServer],
    tmp_path: Path,
    tls_clients: Callable[..., tuple[Client, Events]],
) -> None:
    ca = CertAuthority(tmp_path)
    cert, key = ca.issue("chat.example.test")
    server = make_server(tls_cert=str(cert), tls_key=str(key))
    known = KnownHosts(tmp_path / "known_hosts")
    options = TLSOptions(known, str(ca.cert_file))
    assert "not for that name" in refused(tls_clients, "localhost", server.port, options).reason
    assert not known.path.exists()


def test_tls_client_against_a_plaintext_server_says_so(
    server: ChatServer, tmp_path: Path, tls_clients: Callable[..., tuple[Client, Events]]
) -> None:
    options = TLSOptions(KnownHosts(tmp_path / "kh"))
    assert "Is it a TLS server" in refused(tls_clients, "127.0.0.1", server.port, options).reason


def test_tls_client_against_a_silent_server_times_out(
    tmp_path: Path, tls_clients: Callable[..., tuple[Client, Events]]
) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        port = listener.getsockname()[1]
        events = Events()
        client = Client(
            "127.0.0.1",
            port,
            events,
            tls=TLSOptions(KnownHosts(tmp_path / "kh")),
            connect_timeout=0.5,
        )
        client.run()
        failed = events.next(ConnectFailed)
        assert "no TLS answer" in failed.reason and failed.final
        client.disconnect(5.0)
    finally:
        listener.close()
