"""``common.tls.TLSEngine`` alone: two engines wired back to back in memory, no sockets.

What the server's TLS rests on: records made on several threads reach the peer intact and in
order, bytes may arrive in any split, close_notify and garbage end the stream cleanly."""

from __future__ import annotations

import ssl
import threading
from pathlib import Path

from common.tls import TLSEngine
from server.tls import server_context
from tests.tls_certs import self_signed, trusting


class Wire:
    """One direction of a connection: what a sink was given, in order."""

    def __init__(self) -> None:
        self.data = bytearray()

    def put(self, chunk: bytes) -> None:
        self.data += chunk

    def take(self) -> bytes:
        chunk = bytes(self.data)
        self.data.clear()
        return chunk


def pair(tmp_path: Path) -> tuple[TLSEngine, TLSEngine, Wire, Wire]:
    """A connected (server, client) pair; ``to_client``/``to_server`` carry the ciphertext."""
    cert = self_signed(tmp_path)
    to_client, to_server = Wire(), Wire()
    server = TLSEngine(
        server_context(str(cert.cert), str(cert.key)), to_client.put, server_side=True
    )
    client = TLSEngine(trusting(cert.cert), to_server.put, server_side=False)
    assert not client.handshake()
    for _ in range(10):  # a TLS 1.3 handshake takes two flights each way
        server.handshake(to_server.take())
        if client.handshake(to_client.take()) and server.established:
            break
    assert server.established and client.established
    assert server.version in ("TLSv1.2", "TLSv1.3")
    return server, client, to_client, to_server


def test_data_both_ways_in_any_split(tmp_path: Path) -> None:
    server, client, to_client, to_server = pair(tmp_path)
    assert client.send("héllo 😀".encode())
    raw = to_server.take()
    got = b"".join(server.decrypt(raw[i : i + 1]) for i in range(len(raw)))  # byte by byte
    assert got.decode() == "héllo 😀"
    assert server.send(b"x" * 100_000)  # several records
    assert client.decrypt(to_client.take()) == b"x" * 100_000


def test_records_from_many_threads_arrive_intact(tmp_path: Path) -> None:
    server, client, to_client, _ = pair(tmp_path)

    def send(tag: int) -> None:
        for n in range(200):
            server.send(f"{tag}:{n};".encode())

    threads = [threading.Thread(target=send, args=(tag,)) for tag in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    text = client.decrypt(to_client.take()).decode()
    assert not client.ended(), client.end_reason
    items = text.rstrip(";").split(";")
    assert len(items) == 800
    for tag in range(4):
        assert [i for i in items if i.startswith(f"{tag}:")] == [f"{tag}:{n}" for n in range(200)]


def test_close_notify_ends_the_stream_after_the_data_before_it(tmp_path: Path) -> None:
    server, client, to_client, _ = pair(tmp_path)
    server.send(b"last words")
    server.close()
    assert not server.send(b"after close"), "nothing is sent after close_notify"
    assert client.decrypt(to_client.take()) == b"last words"
    assert client.ended() and "close_notify" in client.end_reason
    assert client.decrypt(b"more") == b""


def test_garbage_ends_the_stream_without_raising(tmp_path: Path) -> None:
    server, _, _, _ = pair(tmp_path)
    assert server.decrypt(b"\x17\x03\x03\x00\x20" + b"\x00" * 32) == b""
    assert server.ended() and "TLS error" in server.end_reason


def test_send_before_the_handshake_sends_nothing(tmp_path: Path) -> None:
    cert = self_signed(tmp_path)
    wire = Wire()
    server = TLSEngine(server_context(str(cert.cert), str(cert.key)), wire.put, server_side=True)
    assert not server.send(b"too early")
    assert wire.take() == b""


def test_a_plaintext_hello_fails_the_handshake(tmp_path: Path) -> None:
    cert = self_signed(tmp_path)
    wire = Wire()
    server = TLSEngine(server_context(str(cert.cert), str(cert.key)), wire.put, server_side=True)
    try:
        server.handshake(b'{"request": "login", "content": "x"}\n')
    except ssl.SSLError:
        pass
    else:
        raise AssertionError("a plaintext request is not a TLS hello")
    assert not server.established
