"""The connect screen against a real server: logging in, the errors a person can hit, hosting
a chat from the app, and the command line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import tkinter as tk
from collections.abc import Callable
from pathlib import Path

from gui.session import State
from server.app import ChatServer
from tests.conftest import ROOT
from tests.gui.harness import Person, online, wait_until
from tests.tls_certs import self_signed


def test_log_in_through_the_connect_screen_and_see_each_other(
    root: tk.Tk, server: ChatServer, person: Callable[[str], Person]
) -> None:
    alice, bob = person("alice"), person("bob")
    alice.log_in(server.port)
    wait_until(root, online(alice), "alice online", (alice,))
    assert alice.app.on_chat_screen
    bob.log_in(server.port)
    wait_until(root, online(bob), "bob online", (alice, bob))
    wait_until(
        root,
        lambda: alice.app.chat_view.users.names == ["alice", "bob"],
        "alice's list to show bob",
        (alice, bob),
    )
    assert bob.app.chat_view.users.names == ["alice", "bob"]
    assert str(bob.app.chat_view.users.header.cget("text")).endswith("2")
    assert "bob joined the chat" in alice.shown
    assert "bob @ 127.0.0.1" in bob.top.title()
    saved = json.loads((alice.app.config_dir / "settings.json").read_text())
    assert (saved["host"], saved["port"], saved["username"]) == ("127.0.0.1", server.port, "alice")


def test_the_connect_screen_remembers_the_last_server_and_name(
    root: tk.Tk, server: ChatServer, person: Callable[[str], Person]
) -> None:
    alice = person("alice")
    alice.log_in(server.port)
    wait_until(root, online(alice), "alice online", (alice,))
    alice.close()
    again = Person(root, "alice", alice.app.config_dir.parent)
    try:
        view = again.app.connect_view
        assert (view.host_var.get(), view.port_var.get(), view.name_var.get()) == (
            "127.0.0.1",
            str(server.port),
            "alice",
        )
    finally:
        again.close()


def test_a_bad_name_is_refused_on_the_spot(
    root: tk.Tk, server: ChatServer, person: Callable[[str], Person]
) -> None:
    alice = person("alice")
    alice.log_in(server.port, name="no spaces!")
    assert "cannot be used" in alice.error
    assert "letters" in alice.error
    assert server.connection_count() == 0  # checked before connecting
    assert not alice.app.on_chat_screen


def test_a_taken_name_is_explained_and_the_user_can_pick_another(
    root: tk.Tk, server: ChatServer, person: Callable[[str], Person]
) -> None:
    alice, impostor = person("alice"), person("impostor")
    alice.log_in(server.port)
    wait_until(root, online(alice), "alice online", (alice,))
    impostor.log_in(server.port, name="ALICE")
    wait_until(root, lambda: "taken" in impostor.error, "a 'taken' error", (alice, impostor))
    assert not impostor.app.on_chat_screen
    impostor.log_in(server.port, name="bob")
    wait_until(root, online(impostor), "second try online", (alice, impostor))


def test_a_server_that_is_not_there_gives_a_clear_error(
    root: tk.Tk, person: Callable[[str], Person]
) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    alice = person("alice")
    alice.log_in(port)
    under_server = alice.app.connect_view.server_error
    wait_until(
        root,
        lambda: "cannot reach" in str(under_server.cget("text")).lower(),
        "a connect error under the server field",
        (alice,),
    )
    assert "Is the server running" in alice.error
    assert str(alice.app.connect_view.connect_button.state()) == "()"  # usable again


def test_a_server_that_never_answers_the_login(
    root: tk.Tk, person: Callable[[str], Person]
) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    try:
        alice = person("alice")
        alice.app.session.login_timeout = 0.5
        alice.log_in(silent.getsockname()[1])
        wait_until(
            root, lambda: "no answer to the login" in alice.error.lower(), "timeout", (alice,)
        )
    finally:
        silent.close()


def test_host_a_chat_and_let_someone_join(
    root: tk.Tk, person: Callable[[str], Person], tmp_path: Path
) -> None:
    alice, bob = person("alice"), person("bob")
    view = alice.app.connect_view
    alice.type_into(view.name_entry, "alice")
    view.host_button.invoke()
    wait_until(root, online(alice), "alice hosting", (alice,))
    hosted = alice.app.host.server
    assert hosted is not None and hosted.fingerprint is not None
    assert f"Others join at 127.0.0.1:{hosted.port} with TLS" in alice.shown
    assert hosted.fingerprint in alice.shown  # for the host to read out to others
    bob.log_in(hosted.port, tls=True)
    wait_until(root, online(bob), "bob online", (alice, bob))
    # Bob's first connection pins the certificate and shows the same fingerprint to compare.
    assert f"fingerprint is {hosted.fingerprint}" in bob.shown
    bob.say("hi host")
    wait_until(root, lambda: "hi host" in alice.shown, "alice to hear bob", (alice, bob))
    key = (tmp_path / "cert-alice" / "tls-key.pem").stat()
    assert key.st_mode & 0o777 == 0o600, "the private key is readable by its owner only"


def test_a_changed_certificate_is_refused_on_the_connect_screen(
    root: tk.Tk,
    person: Callable[[str], Person],
    make_server: Callable[..., ChatServer],
    tmp_path: Path,
) -> None:
    first = self_signed(tmp_path, name="first")
    server = make_server(tls_cert=str(first.cert), tls_key=str(first.key))
    port = server.port
    bob = person("bob")
    bob.log_in(port, tls=True)
    wait_until(root, online(bob), "bob online over TLS", (bob,))
    assert f"fingerprint is {first.fingerprint}" in bob.shown
    # The server goes away and something else answers on its address with another
    # certificate: bob's automatic reconnect is refused, and it stops retrying.
    second = self_signed(tmp_path, name="second")
    server.stop()
    make_server(port=port, tls_cert=str(second.cert), tls_key=str(second.key))
    wait_until(root, lambda: "HAS CHANGED" in bob.error, "the warning", (bob,))
    assert second.fingerprint in bob.error and "man-in-the-middle" in bob.error
    assert bob.state is State.DISCONNECTED and not bob.app.on_chat_screen


def _gui_process(*args: str, config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gui", "--config-dir", str(config), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_the_command_line_connects_and_logs_in(server: ChatServer, tmp_path: Path) -> None:
    proc = _gui_process(
        "--connect", f"127.0.0.1:{server.port}", "--user", "carol", config=tmp_path / "c"
    )
    try:
        deadline = time.monotonic() + 20
        while "carol" not in server.room.names():
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "carol never logged in"
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_command_line_connects_with_tls_and_pins_the_certificate(
    make_server: Callable[..., ChatServer], tmp_path: Path
) -> None:
    pair = self_signed(tmp_path)
    server = make_server(tls_cert=str(pair.cert), tls_key=str(pair.key))
    config = tmp_path / "c"
    proc = _gui_process(
        "--connect", f"127.0.0.1:{server.port}", "--user", "dave", "--tls", config=config
    )
    try:
        deadline = time.monotonic() + 20
        while "dave" not in server.room.names():
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "dave never logged in over TLS"
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(10)
    assert f"127.0.0.1:{server.port} {pair.fingerprint}" in (config / "known_hosts").read_text()


def test_without_tk_the_app_says_how_to_fix_it() -> None:
    code = (
        "import sys; sys.modules['tkinter'] = None; "
        "from gui.__main__ import main; sys.exit(main([]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert "python3-tk" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_without_a_display_the_app_says_so_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    done = subprocess.run(
        [sys.executable, "-m", "gui", "--config-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert "cannot open a window" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_server_that_answers_oddly_is_explained(
    root: tk.Tk, person: Callable[[str], Person]
) -> None:
    """Something else listens on the port (a web server, say): it answers nonsense, closes."""
    odd = socket.socket()
    odd.bind(("127.0.0.1", 0))
    odd.listen()

    def answer() -> None:
        conn, _ = odd.accept()
        with conn:
            conn.settimeout(5)
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        alice = person("alice")
        alice.log_in(odd.getsockname()[1])
        wait_until(root, lambda: "KTN chat server" in alice.error, "an explanation", (alice,))
        assert not alice.app.on_chat_screen
    finally:
        thread.join(5)
        odd.close()
