"""Driving real TkChat windows like a person: type into widgets with generated key events,
press Enter, and wait (pumping the Tk event loop, never sleeping blind) until something shows.

Several ``Person`` windows share one Tk root, each a ``Toplevel`` with its own ``ChatApp``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import tkinter as tk
from collections.abc import Callable
from pathlib import Path

from gui.app import ChatApp
from gui.hosting import HostConfig
from gui.question import Question
from gui.retry import Backoff
from gui.session import State

# Characters typed as key events; anything else is inserted the way an input method would.
_KEYSYMS = {
    " ": "space",
    "!": "exclam",
    ":": "colon",
    "/": "slash",
    ".": "period",
    ",": "comma",
    "?": "question",
    "@": "at",
    "_": "underscore",
    "-": "minus",
    "'": "apostrophe",
}
FAST_BACKOFF = Backoff(first=0.05, maximum=0.3)
WAIT_SECONDS = 10.0


class Person:
    """One user at one TkChat window."""

    def __init__(self, root: tk.Tk, name: str, tmp: Path, host_db: str = ":memory:") -> None:
        self.root = root
        self.name = name
        self.top = tk.Toplevel(root)
        self.app = ChatApp(
            self.top,
            tmp / f"config-{name}",
            host_config=HostConfig(
                bind="127.0.0.1", port=0, db=host_db, cert_dir=str(tmp / f"cert-{name}")
            ),
            backoff=FAST_BACKOFF,
            login_timeout=3.0,
        )

    # ------------------------------------------------------------- looking
    @property
    def shown(self) -> str:
        return self.app.pane.content()

    @property
    def error(self) -> str:
        """Every error the connect screen shows, under its fields and below the buttons."""
        return self.app.connect_view.error_text()

    @property
    def state(self) -> State:
        return self.app.session.state

    def dump(self) -> str:
        return (
            f"--- {self.name}: state={self.state.value} users={self.app.session.users} "
            f"pending={len(self.app.session.pending)} error={self.error!r}\n{self.shown}"
        )

    # -------------------------------------------------------------- acting
    def focus(self, widget: tk.Misc) -> None:
        """Give ``widget`` the keyboard focus and wait (2 s at most) until Tk says it has it.

        A generated KeyPress goes to the window with the focus, and ``focus_force`` is only a
        request to the X server: on a loaded machine the keys of a test typed at once went to
        the previous window (bob's host field stayed empty), so wait for the answer."""
        deadline = time.monotonic() + 2.0
        widget.focus_force()
        self.root.update()
        while widget.focus_get() is not widget and time.monotonic() < deadline:
            time.sleep(0.01)
            widget.focus_force()
            self.root.update()

    def type_into(self, widget: tk.Misc, text: str, clear: bool = True) -> None:
        self.focus(widget)
        if clear:
            if isinstance(widget, tk.Text):
                widget.delete("1.0", "end")
            else:
                widget.delete(0, "end")  # type: ignore[attr-defined]
        for char in text:
            keysym = char if char.isascii() and char.isalnum() else _KEYSYMS.get(char)
            if keysym is not None:
                widget.event_generate("<KeyPress>", keysym=keysym)
            else:
                widget.insert("insert", char)  # type: ignore[attr-defined]
        self.root.update()

    def press(self, widget: tk.Misc, keysym: str) -> None:
        self.focus(widget)
        widget.event_generate("<KeyPress>", keysym=keysym)
        self.root.update()

    def log_in(
        self, port: int, name: str | None = None, host: str = "127.0.0.1", tls: bool = False
    ) -> None:
        """Fill the connect screen (ticking "Use TLS" as asked) and press Enter (no wait)."""
        view = self.app.connect_view
        if view.tls_var.get() != tls:
            view.tls_check.invoke()
        self.type_into(view.host_entry, host)
        self.type_into(view.port_entry, str(port))
        self.type_into(view.name_entry, name or self.name)
        self.press(view.name_entry, "Return")

    def say(self, text: str) -> None:
        """Type a message in the input box and press Enter."""
        box = self.app.chat_view.input
        self.type_into(box, text)
        self.press(box, "Return")

    def close(self) -> None:
        self.app.close()
        self.top.destroy()


def wait_until(
    root: tk.Tk,
    condition: Callable[[], bool],
    what: str,
    people: tuple[Person, ...] = (),
    timeout: float = WAIT_SECONDS,
) -> None:
    """Pump the Tk loop until ``condition`` holds; on timeout fail showing each window."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            dumps = "\n".join(p.dump() for p in people)
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{dumps}")
        root.update()
        time.sleep(0.002)  # let the network threads run between pumps (no busy spin)


def set_size(who: Person, size: str) -> None:
    """Resize the window as a window manager would, and let Tk lay it out."""
    who.top.geometry(size)
    width, height = (int(v) for v in size.split("x"))
    wait_until(
        who.root,
        lambda: (who.top.winfo_width(), who.top.winfo_height()) == (width, height),
        f"the window at {size}",
        (who,),
    )
    for _ in range(3):
        who.root.update()


def fully_shown(widget: tk.Misc) -> bool:
    """Mapped, at least its natural height, and inside its window."""
    top = widget.winfo_toplevel()
    bottom = widget.winfo_rooty() + widget.winfo_height()
    right = widget.winfo_rootx() + widget.winfo_width()
    return (
        bool(widget.winfo_ismapped())
        and widget.winfo_height() >= widget.winfo_reqheight()
        and bottom <= top.winfo_rooty() + top.winfo_height()
        and right <= top.winfo_rootx() + top.winfo_width()
    )


def online(*people: Person) -> Callable[[], bool]:
    return lambda: all(p.state is State.ONLINE for p in people)


def screenshot(window: tk.Misc, path: Path) -> None:
    """A PNG of one window, from the X server (ImageMagick's ``import``)."""
    tool = shutil.which("import")
    assert tool is not None, "screenshots need ImageMagick's 'import' (apt install imagemagick)"
    path.parent.mkdir(parents=True, exist_ok=True)
    window.winfo_toplevel().lift()
    window.update()
    top = window.winfo_toplevel()
    # The menu bar lives in Tk's wrapper window above the toplevel; winfo_y is its height.
    menubar = top.winfo_y() if str(top.cget("menu")) else 0
    x, y = top.winfo_rootx(), top.winfo_rooty() - menubar
    crop = f"{top.winfo_width()}x{top.winfo_height() + menubar}+{x}+{y}"
    subprocess.run([tool, "-window", "root", "-crop", crop, str(path)], check=True, timeout=20)


def online_pair(root: tk.Tk, port: int, person: Callable[[str], Person]) -> tuple[Person, Person]:
    """alice and bob logged in to the server on ``port``, each seeing the other online."""
    alice, bob = person("alice"), person("bob")
    alice.log_in(port)
    bob.log_in(port)
    wait_until(root, online(alice, bob), "both online", (alice, bob))
    wait_until(root, lambda: len(alice.app.session.users) == 2, "alice sees bob", (alice, bob))
    return alice, bob


def answer_next_question(
    root: tk.Tk,
    choice: str,
    seen: list[str],
    shot: Path | None = None,
    where: list[tuple[int, int]] | None = None,
) -> Callable[[], None]:
    """When the app next asks (a modal ``Question``), note its text in ``seen`` (its place
    on screen in ``where``, a screenshot of it in ``shot``), then press the button labelled
    ``choice``.  Polls from the Tk loop the question itself runs.  Returns a function that
    stops waiting (for a test that expects no question)."""
    deadline = time.monotonic() + WAIT_SECONDS
    timer = ""

    def press() -> None:
        nonlocal timer
        question = Question.current
        if question is None or not question.winfo_ismapped():
            if time.monotonic() < deadline:
                timer = root.after(10, press)
            return
        seen.append(str(question.label.cget("text")))
        if where is not None:
            where.append((question.winfo_rootx(), question.winfo_rooty()))
        if shot is not None:
            screenshot(question, shot)
        question.buttons[choice].invoke()

    def stop() -> None:
        root.after_cancel(timer)

    timer = root.after(10, press)
    return stop
