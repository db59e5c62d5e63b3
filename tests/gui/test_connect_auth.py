"""The connect screen with passwords, against a real server: the name's password and the
server password (hidden text), each login error under its own field, "Remember passwords"
in a keychain, "Register this name…", ``host:port`` in the Server field, a form that does not
move when an error appears, and Cancel for a server that never answers."""

from __future__ import annotations

import json
import socket
import tkinter as tk
from collections.abc import Callable, Iterator
from pathlib import Path

import keyring
import keyring.backend
import pytest
from keyring.backends import fail

from gui.connect_view import split_server
from server.app import ChatServer
from tests.conftest import ROOT
from tests.gui.harness import Person, online, screenshot, wait_until
from tests.wire import WireClient

MakeServer = Callable[..., ChatServer]
SECRET = "correct horse battery"
FAST = {"login_delay_first": 0.01, "login_delay_max": 0.02}
SHOTS = ROOT / "test-output"


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A keychain in memory, for tests: the real ``keyring`` API, no desktop needed."""

    priority = 1
    # Not a candidate when keyring picks the default backend (it lists every subclass):
    # the other tests must see this machine's real keychain, or none.
    viable = False

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        del self.entries[(service, username)]


@pytest.fixture
def keychain() -> Iterator[MemoryKeyring]:
    before = keyring.get_keyring()
    memory = MemoryKeyring()
    keyring.set_keyring(memory)
    yield memory
    keyring.set_keyring(before)


@pytest.fixture
def no_keychain() -> Iterator[None]:
    before = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())  # type: ignore[no-untyped-call]
    yield
    keyring.set_keyring(before)


def _register(port: int, name: str = "alice", password: str = SECRET, **keys: str) -> None:
    client = WireClient(port)
    try:
        client.send("login", name, client="test/1.0", **keys)
        client.expect("info")
        client.expect("history")
        client.send("register", password=password)
        client.expect("info")
    finally:
        client.close()


def _fill(person: Person, port: int, password: str = "", server_password: str = "") -> None:
    view = person.app.connect_view
    person.type_into(view.host_entry, "127.0.0.1")
    person.type_into(view.port_entry, str(port))
    person.type_into(view.name_entry, person.name)
    view.password_var.set(password)
    view.server_password_var.set(server_password)
    person.press(view.name_entry, "Return")


def _text(label: tk.Misc) -> str:
    return str(label.cget("text"))


def _positions(person: Person) -> list[tuple[int, int]]:
    view = person.app.connect_view
    person.root.update()
    widgets = (
        view.host_entry,
        view.name_entry,
        view.password_entry,
        view.remember_check,
        view.connect_button,
    )
    return [(w.winfo_rootx(), w.winfo_rooty()) for w in widgets]


def test_a_registered_name_asks_for_its_password_under_the_password_field(
    root: tk.Tk, make_server: MakeServer, person: Callable[[str], Person]
) -> None:
    server = make_server(**FAST)
    _register(server.port)
    alice = person("alice")
    view = alice.app.connect_view
    assert str(view.password_entry.cget("show")) == "•"  # hidden text
    _fill(alice, server.port)
    wait_until(root, lambda: "password" in _text(view.password_error), "password error", (alice,))
    assert _text(view.password_error) == "alice is a registered name: enter its password."
    assert alice.error == _text(view.password_error)  # nothing anywhere else
    assert "KTN" not in alice.error and not alice.app.on_chat_screen

    _fill(alice, server.port, password="not it at all")
    wait_until(root, lambda: "Wrong" in _text(view.password_error), "wrong password", (alice,))
    assert _text(view.password_error) == "Wrong password for alice."
    alice.top.geometry("560x380")
    wait_until(root, lambda: alice.top.winfo_height() == 380, "the small size", (alice,))
    screenshot(alice.top, SHOTS / "connect-password-error-560x380.png")
    for widget in (view.password_error, view.connect_button, view.password_entry):
        assert widget.winfo_ismapped()
        bottom = widget.winfo_rooty() + widget.winfo_height()
        assert bottom <= alice.top.winfo_rooty() + alice.top.winfo_height(), widget

    _fill(alice, server.port, password=SECRET)
    wait_until(root, online(alice), "alice online with her password", (alice,))


def test_a_taken_name_is_said_under_the_name_field_and_blames_no_server(
    root: tk.Tk, server: ChatServer, person: Callable[[str], Person]
) -> None:
    first = WireClient(server.port)
    try:
        first.login("alice")
        alice = person("alice")
        _fill(alice, server.port)
        view = alice.app.connect_view
        wait_until(root, lambda: _text(view.name_error) != "", "name error", (alice,))
        assert _text(view.name_error) == "The name alice is taken; pick another."
        assert alice.error == _text(view.name_error)
        assert "KTN" not in alice.error and "server" not in alice.error
    finally:
        first.close()


def test_the_server_password_field_appears_when_the_server_asks(
    root: tk.Tk, make_server: MakeServer, person: Callable[[str], Person]
) -> None:
    server = make_server(password="let me in", **FAST)
    alice = person("alice")
    view = alice.app.connect_view
    root.update()
    assert not view.server_password_entry.winfo_ismapped()
    _fill(alice, server.port)
    wait_until(
        root, lambda: _text(view.server_password_error) != "", "server password error", (alice,)
    )
    assert view.server_password_entry.winfo_ismapped()
    assert str(view.server_password_entry.cget("show")) == "•"
    assert _text(view.server_password_error) == "This server needs a password to join."
    assert alice.error == _text(view.server_password_error)
    _fill(alice, server.port, server_password="wrong")
    wait_until(
        root,
        lambda: _text(view.server_password_error) == "Wrong server password.",
        "wrong server password",
        (alice,),
    )
    _fill(alice, server.port, server_password="let me in")
    wait_until(root, online(alice), "alice through the gate", (alice,))


def test_errors_never_move_the_form(
    root: tk.Tk, make_server: MakeServer, person: Callable[[str], Person]
) -> None:
    server = make_server(**FAST)
    _register(server.port)
    alice = person("alice")
    view = alice.app.connect_view
    alice.top.geometry("560x380")
    wait_until(root, lambda: alice.top.winfo_height() == 380, "the small size", (alice,))
    before = _positions(alice)
    _fill(alice, server.port)  # registered: a password error
    wait_until(root, lambda: "registered" in alice.error, "password error", (alice,))
    assert _positions(alice) == before
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    closed_port = probe.getsockname()[1]
    probe.close()
    _fill(alice, closed_port)  # the longest error: cannot reach ... (two lines)
    wait_until(root, lambda: _text(view.server_error) != "", "server error", (alice,))
    assert _positions(alice) == before
    alice.type_into(view.name_entry, "no spaces!")
    alice.press(view.name_entry, "Return")
    assert _text(view.name_error) != ""
    assert _positions(alice) == before


def test_host_and_port_typed_into_the_server_field(
    root: tk.Tk, server: ChatServer, person: Callable[[str], Person]
) -> None:
    alice = person("alice")
    view = alice.app.connect_view
    alice.type_into(view.host_entry, f"127.0.0.1:{server.port}")
    alice.type_into(view.port_entry, "1")  # the port in the Server field wins
    alice.type_into(view.name_entry, "alice")
    alice.press(view.name_entry, "Return")
    wait_until(root, online(alice), "alice online", (alice,))
    assert (view.host_var.get(), view.port_var.get()) == ("127.0.0.1", str(server.port))


def test_cancel_gives_up_on_a_silent_listener(root: tk.Tk, person: Callable[[str], Person]) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts (in the kernel) and never says a word
    try:
        alice = person("alice")
        alice.app.session.login_timeout = 60.0
        view = alice.app.connect_view
        alice.log_in(silent.getsockname()[1])
        wait_until(root, lambda: bool(view.cancel_button.winfo_ismapped()), "Cancel", (alice,))
        assert "disabled" in view.connect_button.state()
        view.cancel_button.invoke()
        root.update()
        assert alice.app.session.state.value == "disconnected"
        assert "disabled" not in view.connect_button.state()
        assert not view.cancel_button.winfo_ismapped()
        assert alice.error == ""
        assert _text(view.status_label) == "Cancelled."
        alice.press(view.name_entry, "Return")  # again, and Escape cancels too
        wait_until(root, lambda: bool(view.cancel_button.winfo_ismapped()), "Cancel", (alice,))
        alice.press(view.name_entry, "Escape")
        assert alice.app.session.state.value == "disconnected"
        assert _text(view.status_label) == "Cancelled."
    finally:
        silent.close()


def test_remembered_passwords_go_to_the_keychain_only(
    root: tk.Tk,
    make_server: MakeServer,
    person: Callable[[str], Person],
    keychain: MemoryKeyring,
    tmp_path: Path,
) -> None:
    server = make_server(password="gate word", **FAST)
    _register(server.port, server_password="gate word")
    alice = person("alice")
    view = alice.app.connect_view
    assert "disabled" not in view.remember_check.state()
    view.remember_var.set(True)
    _fill(alice, server.port, password=SECRET, server_password="gate word")
    wait_until(root, online(alice), "alice online", (alice,))
    assert keychain.entries == {
        ("TkChat", f"name:alice@127.0.0.1:{server.port}"): SECRET,
        ("TkChat", f"server:127.0.0.1:{server.port}"): "gate word",
    }
    alice.close()
    settings = (tmp_path / "config-alice" / "settings.json").read_text()
    assert SECRET not in settings and "gate word" not in settings
    assert json.loads(settings)["remember_passwords"] is True

    again = Person(root, "alice", tmp_path)  # the next start fills both fields
    try:
        view = again.app.connect_view
        assert view.password_var.get() == SECRET
        assert view.server_password_var.get() == "gate word"
        view.remember_var.set(False)  # unticked: the next login forgets them
        again.press(view.name_entry, "Return")
        wait_until(root, online(again), "alice online again", (again,))
        assert keychain.entries == {}
    finally:
        again.close()


def test_without_a_keychain_it_says_passwords_are_not_kept(
    root: tk.Tk, person: Callable[[str], Person], no_keychain: None
) -> None:
    alice = person("alice")
    view = alice.app.connect_view
    assert "disabled" in view.remember_check.state()
    assert "not kept" in str(view.remember_check.cget("text"))
    assert view.remember_var.get() is False


def test_register_this_name_from_the_menu(
    root: tk.Tk, make_server: MakeServer, person: Callable[[str], Person]
) -> None:
    server = make_server(**FAST)
    alice = person("alice")
    alice.log_in(server.port)
    wait_until(root, online(alice), "alice online", (alice,))
    file_menu = alice.app.menus[1]
    last = file_menu.index("end")
    assert last is not None
    labels = [
        file_menu.entrycget(i, "label") for i in range(last + 1) if file_menu.type(i) == "command"
    ]
    assert "Register this name…" in labels
    dialog = alice.app.register_name()
    assert dialog is not None
    alice.type_into(dialog.first_entry, "short")
    dialog.ok_button.invoke()
    assert "8-256" in _text(dialog.error_label)
    alice.type_into(dialog.first_entry, SECRET)
    alice.type_into(dialog.second_entry, SECRET + "x")
    dialog.ok_button.invoke()
    assert "differ" in _text(dialog.error_label)
    alice.type_into(dialog.second_entry, SECRET)
    dialog.ok_button.invoke()
    wait_until(root, lambda: "registered" in alice.shown, "the server's answer", (alice,))
    assert server.accounts.verify("alice", SECRET)
    assert alice.app.session.password == SECRET
    assert alice.app.connect_view.password_var.get() == SECRET
    # A reconnect logs in with the new password by itself.
    for handler in list(server._handlers):
        handler.close()
    wait_until(root, lambda: alice.state.value == "waiting to reconnect", "dropped", (alice,))
    wait_until(root, online(alice), "back online with the password", (alice,))


def test_a_full_server_is_said_under_the_server_field(
    root: tk.Tk, make_server: MakeServer, person: Callable[[str], Person]
) -> None:
    server = make_server(max_connections=1)
    holder = WireClient(server.port)
    try:
        holder.login("bob")
        alice = person("alice")
        alice.log_in(server.port)
        view = alice.app.connect_view
        wait_until(root, lambda: "full" in _text(view.server_error), "server error", (alice,))
        assert alice.error == _text(view.server_error)
        assert "KTN" not in alice.error
    finally:
        holder.close()


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("chat.example.org", ("chat.example.org", None)),
        ("chat.example.org:9000", ("chat.example.org", 9000)),
        (" 10.0.0.5:1234 ", ("10.0.0.5", 1234)),
        ("[::1]:9998", ("::1", 9998)),
        ("[fe80::1]", ("fe80::1", None)),
        ("::1", ("::1", None)),  # a bare IPv6 address: no port in it
        ("host:0", None),
        ("host:http", None),
        ("[::1]9998", None),
    ],
)
def test_the_server_field_reads_host_and_port(
    typed: str, expected: tuple[str, int | None] | None
) -> None:
    assert split_server(typed) == expected
