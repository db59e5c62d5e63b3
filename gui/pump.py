"""``EventPump``: the loop that moves network events onto a window's widgets.

It is the only bridge between threads (STYLE.md, Threads): the session's receiver thread only
puts events on a queue, and this loop, on the Tk thread, drains it for a bounded time, lets
the window draw once (``turn``: flush the panes, the title, the status line), and re-arms
itself with ``after`` - at once while a burst is still queued, every ``BUSY_POLL_MS`` while
things happen and every ``IDLE_POLL_MS`` after a quiet spell (each turn is cheap: one
``Queue.get_nowait``).  Drawing and input handling run between two turns, so a burst never
freezes the window.  Kept out of ``ChatApp`` because its timing is a policy of its own.
"""

from __future__ import annotations

import time
import tkinter as tk
from collections.abc import Callable

from gui.session import Session, State

# Per loop turn: at most this long handling events, and at most this many (drawing them in
# the flush that follows costs about 15 us each), so that a turn stays far under 50 ms.
DRAIN_BUDGET_SECONDS = 0.010
DRAIN_LIMIT = 600
# Polling the queue: often while things happen, slowly after a quiet spell.  Each poll costs
# a Tcl timer and a Python call (~0.3 ms under Xvfb); 10 per second keep idle CPU well under
# 1 %, and the first message after a pause shows at most 100 ms late.
BUSY_POLL_MS = 20
IDLE_POLL_MS = 100
QUIET_SECONDS = 2.0


class EventPump:
    """See the module docstring.  ``turn`` draws what the drained events changed and says
    whether anything was drawn.  Runs from creation until ``stop``."""

    def __init__(self, window: tk.Misc, session: Session, turn: Callable[[], bool]) -> None:
        self._window = window
        self._session = session
        self._turn = turn
        self._last_activity = time.monotonic()
        self._stopped = False
        # One Tcl command for the whole life of the loop: ``after(ms, func)`` would create and
        # delete a command per turn, and each of those makes Tcl recompile its procedures.
        self._command = window.register(self._run)
        self._after_id: str | None = None
        self._schedule(BUSY_POLL_MS)

    def _run(self) -> None:
        delay = IDLE_POLL_MS
        try:
            more = self._session.drain(DRAIN_BUDGET_SECONDS, DRAIN_LIMIT)
            now = time.monotonic()
            if self._turn() or more:
                self._last_activity = now
            if more:
                delay = 1
            elif now - self._last_activity < QUIET_SECONDS or self._session.state not in (
                State.ONLINE,
                State.DISCONNECTED,
            ):
                delay = BUSY_POLL_MS
        finally:
            self._schedule(delay)

    def _schedule(self, delay: int) -> None:
        if not self._stopped:
            self._after_id = str(self._window.tk.call("after", delay, self._command))

    def stop(self) -> None:
        """End the loop (the window may be gone already).  Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        if self._after_id is not None:
            try:
                self._window.tk.call("after", "cancel", self._after_id)
                self._window.deletecommand(self._command)
            except tk.TclError:
                pass
