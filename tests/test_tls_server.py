"""The server's TLS port (PROTOCOL.md, TLS), over real sockets with certificates made here.

Clients are the test's own ``ssl`` sockets (``WireClient(tls=...)``), so what is checked is the
server's TLS as any TLS client sees it."""

from __future__ import annotations

import hashlib
import logging
import socket
import ssl
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from server.__main__ import main as server_main
from server.app import ChatServer
from server.certs import ensure_self_signed
from server.tls import TLSConfigError
from tests.bystanders import Bystanders, fresh_client_can_chat
from tests.conftest import TEST_CONFIG, ServerProcess, wait_for
from tests.tls_certs import self_signed, trusting
from tests.wire import WireClient


@pytest.fixture
def tls_server(
    make_server: Callable[..., ChatServer], tmp_path: Path
) -> tuple[ChatServer, ssl.SSLContext]:
    pair = self_signed(tmp_path)
    server = make_server(
        tls_cert=str(pair.cert), tls_key=str(pair.key), plain_port=0, tls_handshake_timeout=1.0
    )
    return server, trusting(pair.cert)


def test_two_tls_clients_log_in_and_chat(tls_server: tuple[ChatServer, ssl.SSLContext]) -> None:
    server, context = tls_server
    alice = WireClient(server.port, tls=context)
    bob = WireClient(server.port, tls=context)
    try:
        assert isinstance(alice.sock, ssl.SSLSocket)
        assert alice.sock.version() in ("TLSv1.2", "TLSv1.3")
        alice.login("alice")
        bob.login("bob")
        alice.send("msg", "hello over TLS")
        for client in (alice, bob):
            echo = client.expect("message")
            assert (echo["sender"], echo["content"]) == ("alice", "hello over TLS")
        bob.send("names")
        assert bob.expect("info")["users"] == ["alice", "bob"]
    finally:
        alice.close()
        bob.close()


def test_tls_1_1_is_refused(tls_server: tuple[ChatServer, ssl.SSLContext]) -> None:
    server, context = tls_server
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1_1 itself is deprecated
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        WireClient(server.port, tls=old)
    fresh_client_can_chat_tls(server.port, context)


def fresh_client_can_chat_tls(port: int, context: ssl.SSLContext) -> None:
    client = WireClient(port, tls=context)
    try:
        client.login("newcomer")
        client.send("msg", "still here")
        assert client.expect("message")["content"] == "still here"
    finally:
        client.close()


def test_plaintext_client_on_tls_port_is_refused_cleanly(
    tls_server: tuple[ChatServer, ssl.SSLContext], caplog: pytest.LogCaptureFixture
) -> None:
    server, context = tls_server
    with Bystanders(server.port, tls=context) as bystanders:
        bystanders.wait_for_rounds(3)
        for _ in range(5):
            plain = WireClient(server.port)
            try:
                plain.send("login", "mallory")
                refusal = plain.expect("error", code="bad_request")
                assert "TLS" in refusal["content"]
                plain.wait_closed()
            finally:
                plain.close()
        bystanders.wait_for_rounds(3)
        bystanders.finish()
    assert any("plaintext on the TLS port" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def test_classic_client_on_plain_port_chats_with_tls_client(
    tls_server: tuple[ChatServer, ssl.SSLContext],
) -> None:
    server, context = tls_server
    assert server.plain_port is not None and server.plain_port != server.port
    secure = WireClient(server.port, tls=context)
    classic = WireClient(server.plain_port)
    try:
        secure.login("alice")
        classic.login("carol", client=None)  # a classic KTN program: no "client" key
        classic.send("msg", "hi from the plain port")
        assert secure.expect("message")["content"] == "hi from the plain port"
        secure.send("msg", "hi back over TLS")
        got = classic.expect("message")
        while got["content"] != "hi back over TLS":  # its own echo comes first
            got = classic.expect("message")
        assert got["sender"] == "alice"
    finally:
        secure.close()
        classic.close()


def test_plain_port_is_never_opened_by_default(
    make_server: Callable[..., ChatServer], tmp_path: Path
) -> None:
    pair = self_signed(tmp_path)
    server = make_server(tls_cert=str(pair.cert), tls_key=str(pair.key))
    assert server.plain_port is None


def test_silent_handshake_times_out_without_blocking_others(
    tls_server: tuple[ChatServer, ssl.SSLContext], caplog: pytest.LogCaptureFixture
) -> None:
    server, context = tls_server  # tls_handshake_timeout=1.0
    silent = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(5)]
    try:
        fresh_client_can_chat_tls(server.port, context)  # while all five say nothing
        for sock in silent:
            assert sock.recv(100) == b"", "the server should close a silent connection"
    finally:
        for sock in silent:
            sock.close()
    wait_for(
        lambda: any("TLS handshake not done within 1s" in r.getMessage() for r in caplog.records),
        what="the handshake timeout logged",
    )


def test_server_sends_close_notify_after_logout(
    tls_server: tuple[ChatServer, ssl.SSLContext],
) -> None:
    server, context = tls_server
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    # Without suppressing ragged EOFs, a close without close_notify raises SSLEOFError.
    sock = context.wrap_socket(raw, server_hostname="127.0.0.1", suppress_ragged_eofs=False)
    try:
        sock.sendall(b'{"request": "logout", "content": null}\n')
        received = b""
        while True:
            data = sock.recv(65536)  # SSLEOFError here: no close_notify
            if not data:
                break
            received += data
        assert b"Logged out" in received
    finally:
        sock.close()


def test_client_close_notify_ends_its_session(
    tls_server: tuple[ChatServer, ssl.SSLContext], caplog: pytest.LogCaptureFixture
) -> None:
    server, context = tls_server
    watcher = WireClient(server.port, tls=context)
    leaver = WireClient(server.port, tls=context)
    try:
        watcher.login("watcher")
        leaver.login("leaver")
        assert isinstance(leaver.sock, ssl.SSLSocket)
        leaver.sock.settimeout(5)
        leaver.sock.unwrap()  # close_notify; the TCP connection stays open
        event = watcher.recv()
        while event.get("event") != "leave":  # first the join; each recv is bounded
            event = watcher.recv()
        assert event["user"] == "leaver"
    finally:
        watcher.close()
        leaver.close()
    assert any("close_notify" in r.getMessage() for r in caplog.records)


def test_concurrent_broadcasts_arrive_intact(
    tls_server: tuple[ChatServer, ssl.SSLContext],
) -> None:
    """Records made on several threads (each sender's answers, the room's broadcasts) reach
    a reader in order: one out-of-order record would fail its MAC and end the connection."""
    server, context = tls_server
    reader = WireClient(server.port, tls=context)
    senders = [WireClient(server.port, tls=context) for _ in range(3)]
    try:
        reader.login("reader")
        for i, sender in enumerate(senders):
            sender.login(f"sender{i}")

        def blast(index: int, sender: WireClient) -> None:
            for n in range(60):
                sender.send("msg", f"{index}-{n} " + "x" * 500)
                sender.send("names")  # an answer from the handler's thread, between broadcasts

        threads = [
            threading.Thread(target=blast, args=(i, s), daemon=True) for i, s in enumerate(senders)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        got: list[dict[str, Any]] = []
        while len(got) < 180:
            got.append(reader.expect("message", timeout=10))
        ids = [m["id"] for m in got]
        assert ids == sorted(set(ids))
        for i in range(3):
            mine = [m["content"].split()[0] for m in got if m["sender"] == f"sender{i}"]
            assert mine == [f"{i}-{n}" for n in range(60)]
    finally:
        reader.close()
        for sender in senders:
            sender.close()


def test_unusable_certificate_is_a_clear_error(tmp_path: Path) -> None:
    from dataclasses import replace

    with pytest.raises(TLSConfigError, match="not found"):
        ChatServer(replace(TEST_CONFIG, tls_cert=str(tmp_path / "missing.pem")))
    pair = self_signed(tmp_path)
    other = self_signed(tmp_path, name="other")
    with pytest.raises(TLSConfigError, match="cannot use"):
        ChatServer(replace(TEST_CONFIG, tls_cert=str(pair.cert), tls_key=str(other.key)))


def test_plain_server_is_unchanged(connect: Callable[[], WireClient]) -> None:
    logging.getLogger(__name__).debug("no TLS: the port is plaintext as before")
    client = connect()
    client.login("plain")
    fresh_client_can_chat(client.sock.getpeername()[1])


def test_python_m_server_with_tls_and_a_plain_port(
    server_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    pair = self_signed(tmp_path)
    proc = server_process(
        "--port", "0", "--db", ":memory:", "--tls-cert", str(pair.cert),
        "--tls-key", str(pair.key), "--plain-port", "0",
    )  # fmt: skip
    wait_for(lambda: any("plaintext port" in line for line in proc.log), what="plain port line")
    line = next(line for line in proc.log if "plaintext port" in line)
    plain_port = int(line.rsplit(":", 1)[1].split()[0])
    assert any("TLS only" in line for line in proc.log)
    secure = WireClient(proc.port, tls=trusting(pair.cert))
    classic = WireClient(plain_port)
    try:
        secure.login("alice")
        classic.login("carol", client=None)
        secure.send("msg", "across ports")
        assert classic.expect("message")["content"] == "across ports"
    finally:
        secure.close()
        classic.close()
    assert proc.stop() == 0


def test_plain_port_without_tls_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        server_main(["--plain-port", "0", "--db", ":memory:"])
    assert exited.value.code == 2
    assert "--plain-port is for a TLS server" in capsys.readouterr().err


def test_host_certificate_is_made_once_with_a_private_key(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    first = ensure_self_signed(folder)
    assert first.key.stat().st_mode & 0o777 == 0o600
    again = ensure_self_signed(folder)
    assert again == first, "the certificate is made on first use only, then kept"
    der = ssl.PEM_cert_to_DER_cert(first.cert.read_text())
    assert first.fingerprint == ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
    first.cert.unlink()  # half of the pair gone: a new pair, not a crash
    assert ensure_self_signed(folder).fingerprint != first.fingerprint
