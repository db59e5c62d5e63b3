"""``StatusLine``: the connection in words, under the chat.

The session reports each state change with a detail ("connecting to ...").  The status line
shows every step, counts down "Reconnecting in N s" while waiting (with the attempt), and
adds how many messages wait to be sent; the chat pane gets only the turning points (lost,
back, ended), so that a flapping connection does not fill the conversation.  The one place
that turns connection states into what the person reads, apart from ``ChatApp``, which only
passes the reports on.  Tk thread only.
"""

from __future__ import annotations

import math
import time
import tkinter as tk

from gui.chat_view import ChatView
from gui.session import Session, State

_KIND = {State.ONLINE: "ok", State.WAITING: "problem", State.DISCONNECTED: "problem"}


class StatusLine:
    """See the module docstring.  ``file_menu`` holds "Reconnect now", enabled only while
    waiting to reconnect."""

    def __init__(self, session: Session, chat_view: ChatView, file_menu: tk.Menu) -> None:
        self.session = session
        self.chat_view = chat_view
        self.file_menu = file_menu
        self.dirty = False  # something it counts changed: write it again on the next turn
        self._text = ""  # the last state's detail
        self._countdown = -1  # the seconds shown in "Reconnecting in N s"
        self._last_state = State.DISCONNECTED
        self._was_lost = False

    def changed(self, state: State, text: str) -> bool:
        """The session is in ``state``, described by ``text``: shown now.  True when this is
        a turning point, for the pane too."""
        self._text = text
        self.refresh()
        previous, self._last_state = self._last_state, state
        turning = (
            (state is State.WAITING and previous is State.ONLINE)
            or (state is State.ONLINE and previous is not State.LOGGING_IN)
            or (state is State.ONLINE and self._was_lost)
            or (state is State.DISCONNECTED and previous is not State.DISCONNECTED)
        )
        if state is State.WAITING:
            self._was_lost = True
        elif state is State.ONLINE:
            self._was_lost = False
        return turning

    def refresh(self) -> None:
        """Write the line: what the connection does, when the next try is (counting down),
        and how much is waiting to be sent."""
        session = self.session
        state = session.state
        retry = session.retry
        text = self._text
        if state is State.WAITING and retry.at is not None:
            left = max(0, math.ceil(retry.at - time.monotonic()))
            self._countdown = left
            # The first sentence only: the pane has the full reason (with its hints).
            reason = retry.reason.split(". ")[0].rstrip(".")
            text = f"Offline: {reason}. Reconnecting in {left} s (attempt {retry.attempt})"
        waiting = len(session.pending)
        if waiting and state is not State.ONLINE:
            text += f" · {waiting} message{'s' if waiting > 1 else ''} waiting to be sent"
        self.chat_view.set_status(text, _KIND.get(state, "busy"), state is State.WAITING)
        self.file_menu.entryconfigure(
            "Reconnect now", state="normal" if state is State.WAITING else "disabled"
        )

    def stale(self) -> bool:
        """Must the line be written again (something counted changed, or the countdown
        moved on)?  Asked once per loop turn."""
        if self.dirty:
            self.dirty = False
            return True
        retry_at = self.session.retry.at
        if retry_at is None or self.session.state is not State.WAITING:
            return False
        return max(0, math.ceil(retry_at - time.monotonic())) != self._countdown
