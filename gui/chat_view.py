"""``ChatView``: the conversation screen: message pane and user list side by side, the input
below, and a status line that always says what the connection is doing.

Layout: the input row and the status line are packed before the panes, so pack gives them
their natural height first and the message pane is what shrinks in a small window (a pane
packed first would take all the height and push the input off screen).  The status line
wraps to the width it gets instead of being cut off.  A conversation list can go into
``self.panes`` left of the message pane later without touching the bottom rows.
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from tkinter import font as tkfont
from tkinter import ttk

from gui import theme
from gui.input_box import InputBox
from gui.message_pane import MessagePane
from gui.user_list import UserList

STATUS_MIN_WRAP = 200  # pixels: below this the status would wrap after every word


class ChatView(ttk.Frame):
    def __init__(
        self,
        master: tk.Misc,
        text_font: tkfont.Font,
        scrollback: int,
        on_submit: Callable[[str], bool],
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(master)
        self.panes = ttk.Panedwindow(self, orient="horizontal")
        self.pane = MessagePane(self.panes, text_font, scrollback)
        self.users = UserList(self.panes, text_font)
        self.panes.add(self.pane, weight=5)
        self.panes.add(self.users, weight=0)  # keeps its width: the pane is what gives way
        bottom = ttk.Frame(self, padding=(8, 6, 8, 4))
        self.input = InputBox(bottom, text_font, on_submit, lambda: self.users.names)
        self.send_button = ttk.Button(
            bottom, text="Send", style="Accent.TButton", command=self.send_typed, takefocus=False
        )
        # Send first, on the right: a narrow window squeezes the input, never the button.
        # It sits at the bottom, beside the line being typed, when the input grows.
        self.send_button.pack(side="right", anchor="s", padx=(8, 0))
        self.input.pack(side="left", fill="both", expand=True)
        status_bar = ttk.Frame(self, padding=(10, 0, 10, 6))
        self.status_dot = ttk.Label(status_bar, text="●")
        self.status = ttk.Label(status_bar, text="", wraplength=400, justify="left")
        self.reconnect_button = ttk.Button(
            status_bar,
            text="Reconnect now",
            command=on_reconnect or (lambda: None),
            takefocus=False,
        )
        self.status_dot.pack(side="left", anchor="n")
        self.status.pack(side="left", padx=(6, 0), fill="x", expand=True)
        self.status.bind("<Configure>", self._rewrap, add=True)
        # Bottom rows first (see the module docstring), the panes take what is left.
        status_bar.pack(side="bottom", fill="x")
        bottom.pack(side="bottom", fill="x")
        ttk.Separator(self, orient="horizontal").pack(side="bottom", fill="x")
        self.panes.pack(side="top", fill="both", expand=True)
        self.status_bar = status_bar
        self._kind = "ok"
        self.bind("<<ThemeChanged>>", lambda _e: self._colour_status(), add=True)

    def send_typed(self) -> None:
        self.input.event_generate("<Return>")
        self.input.focus_set()

    def set_status(self, text: str, kind: str = "ok", reconnect: bool = False) -> None:
        """``kind``: "ok" (green dot), "busy" (muted) or "problem" (red); ``reconnect`` shows
        the "Reconnect now" button beside the text."""
        if str(self.status.cget("text")) != text:
            self.status.configure(text=text)
        self._kind = kind
        self._colour_status()
        shown = bool(self.reconnect_button.winfo_manager())
        if reconnect and not shown:
            self.reconnect_button.pack(side="right", anchor="n", padx=(8, 0), before=self.status)
        elif not reconnect and shown:
            self.reconnect_button.pack_forget()

    def _rewrap(self, event: tk.Event[tk.Misc]) -> None:
        """Wrap the status at the width it was given, so nothing is cut off."""
        width = max(STATUS_MIN_WRAP, int(event.width))
        if int(str(self.status.cget("wraplength"))) != width:
            self.status.configure(wraplength=width)

    def _colour_status(self) -> None:
        p = theme.palette(self)
        colour = {"ok": p.info, "busy": p.muted, "problem": p.error}.get(self._kind, p.muted)
        self.status_dot.configure(foreground=colour)
