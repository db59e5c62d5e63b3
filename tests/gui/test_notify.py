"""Desktop notifications, for real: a private session D-Bus and the dunst notification daemon
(its rule script logs every notification it receives) under the test's X display.  A mention
while the window is not focused reaches the daemon with its text intact; plain lines and a
focused window raise none; View > Desktop notifications turns them off (and is saved)."""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import time
import tkinter as tk
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from server.app import ChatServer
from tests.gui.harness import Person, online_pair, wait_until
from tests.wire import WireClient

NEEDED = ("dbus-daemon", "dbus-send", "dunst", "notify-send")  # .ci/run installs them


@pytest.fixture
def notification_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A session bus of our own with dunst on it; yields the file dunst logs to."""
    missing = [tool for tool in NEEDED if shutil.which(tool) is None]
    assert not missing, f"install {missing} (apt-get install dbus dbus-bin dunst libnotify-bin)"
    received = tmp_path / "received.log"
    script = tmp_path / "log.sh"
    fields = '"$DUNST_APP_NAME" "$DUNST_SUMMARY" "$DUNST_BODY"'
    script.write_text(f"#!/bin/sh\nprintf '%s\\t%s\\t%s\\n' {fields} >> {received}\n")
    script.chmod(0o755)
    config = tmp_path / "dunstrc"
    config.write_text(
        f'[global]\n    font = Monospace 8\n[log]\n    summary = "*"\n    script = {script}\n'
    )
    bus = subprocess.Popen(
        ["dbus-daemon", "--session", "--nofork", "--print-address=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    daemon: subprocess.Popen[bytes] | None = None
    try:
        assert bus.stdout is not None
        address = bus.stdout.readline().strip()
        assert address, "dbus-daemon printed no address"
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
        daemon = subprocess.Popen(
            ["dunst", "-config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=os.environ.copy(),
        )
        deadline = time.monotonic() + 10.0
        while not _name_has_owner("org.freedesktop.Notifications"):
            assert daemon.poll() is None, "dunst exited"
            assert time.monotonic() < deadline, "dunst did not take the notifications name"
            time.sleep(0.05)
        yield received
    finally:
        for process in (daemon, bus):
            if process is not None:
                process.terminate()
                try:
                    process.wait(5.0)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5.0)
        if bus.stdout is not None:
            bus.stdout.close()


def _name_has_owner(name: str) -> bool:
    reply = subprocess.run(
        [
            "dbus-send",
            "--session",
            "--print-reply",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.NameHasOwner",
            f"string:{name}",
        ],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    )
    return "boolean true" in reply.stdout


def _received(log: Path) -> list[tuple[str, str, str]]:
    if not log.exists():
        return []
    rows = [line.split("\t") for line in log.read_text(encoding="utf-8").splitlines()]
    return [(r[0], r[1], html.unescape(r[2])) for r in rows if len(r) == 3]


def test_a_mention_while_away_reaches_the_notification_daemon(
    root: tk.Tk,
    server: ChatServer,
    person: Callable[[str], Person],
    notification_log: Path,
) -> None:
    alice, bob = online_pair(root, server.port, person)
    alice.app.attention.notifier.min_gap = 0.0  # every mention, so that "off" is what stops one
    bob.app.chat_view.input.focus_force()  # bob's window has the focus, alice's does not
    wait_until(
        root, lambda: not alice.app.attention.focused, "alice's window to lose focus", (alice,)
    )
    bob.say("just a line for everyone")
    mention = 'alice: lunch at <b>noon</b> & then "the" review?'
    bob.say(mention)

    def got(count: int) -> Callable[[], bool]:
        return lambda: len(_received(notification_log)) >= count

    wait_until(root, got(1), "dunst to receive the mention", (alice, bob))
    assert _received(notification_log) == [("TkChat", "bob mentioned you", mention)]
    assert alice.app.attention.unread == 2, "the title count stays"
    # Turned off from the View menu: saved, and the next mention raises none.
    view_menu = alice.app.menus[2]
    index = next(
        i
        for i in range(int(view_menu.index("end") or 0) + 1)
        if view_menu.type(i) == "checkbutton"
        and view_menu.entrycget(i, "label") == "Desktop notifications"
    )
    view_menu.invoke(index)
    settings = alice.app.settings
    assert not settings.notifications
    saved = json.loads((alice.app.config_dir / "settings.json").read_text())
    assert saved["notifications"] is False
    bob.say("alice, this one stays in the window")
    wait_until(root, lambda: "stays in the window" in alice.shown, "the quiet mention", (alice,))
    view_menu.invoke(index)
    assert (
        alice.app.notify_var.get()
        and json.loads((alice.app.config_dir / "settings.json").read_text())["notifications"]
    )
    bob.say("alice, and this one notifies again")
    wait_until(root, got(2), "the second notification", (alice, bob))
    assert alice.app.attention.notifier.sent == 2, "none was started while turned off"
    summaries = [body for _app, _title, body in _received(notification_log)]
    assert summaries == [mention, "alice, and this one notifies again"]
    # The focused window raises nothing (carol writes from a plain socket, so alice's window
    # keeps the focus).
    alice.app.chat_view.input.focus_force()
    wait_until(root, lambda: alice.app.attention.focused, "alice back", (alice,))
    sent = alice.app.attention.notifier.sent
    carol = WireClient(server.port)
    try:
        carol.login("carol")
        carol.send("msg", "alice, you are looking")
        wait_until(root, lambda: "you are looking" in alice.shown, "seen", (alice,))
    finally:
        carol.close()
    assert alice.app.attention.focused and alice.app.attention.notifier.sent == sent
