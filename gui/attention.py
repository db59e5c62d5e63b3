"""``Attention``: is the person looking at this window, and what calls them back when not.

While the window is away, each message from someone else counts in the title ("(3) ...") and
rings the bell (twice for a mention or a direct message, at most once per ``BELL_GAP_SECONDS``
otherwise); a mention or a direct message also raises a desktop notification when that
setting is on (gui/notify.py).  Coming back clears the count.  One per window, Tk thread only.
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable

from common.message import Message
from gui.notify import Notifier

BELL_GAP_SECONDS = 2.0


class Attention:
    """See the module docstring."""

    def __init__(self, window: tk.Misc, notifications_on: Callable[[], bool]) -> None:
        self.window = window
        self.notifications_on = notifications_on
        self.notifier = Notifier()
        self.unread = 0
        self.focused = True
        self.title_dirty = True  # the title must be written again
        self._last_bell = 0.0

    def arrived(self, message: Message, calls_for_you: bool) -> None:
        """A live message from someone else; ``calls_for_you``: a mention or a direct one."""
        if self.focused:
            return
        self.unread += 1
        self.title_dirty = True
        self.ring(loud=calls_for_you)
        if calls_for_you and self.notifications_on():
            what = "sent you a direct message" if message.to is not None else "mentioned you"
            self.notifier.notify(f"{message.user} {what}", message.text)

    def set_focused(self, focused: bool) -> bool:
        """Record the window's focus; True when it changed.  Coming back clears the count."""
        if focused == self.focused:
            return False
        self.focused = focused
        if focused and self.unread:
            self.unread = 0
            self.title_dirty = True
        return True

    def title(self, base: str) -> str:
        """The window title with the unread count in front."""
        self.title_dirty = False
        return f"({self.unread}) {base}" if self.unread else base

    def ring(self, loud: bool) -> None:
        now = float(self.window.tk.call("clock", "milliseconds")) / 1000.0
        if not loud and now - self._last_bell < BELL_GAP_SECONDS:
            return
        self._last_bell = now
        self.window.bell()
        if loud:  # a mention rings twice: Tk has no volume, but a double bell stands out
            self.window.after(180, self.window.bell)

    def close(self) -> None:
        self.notifier.close()
